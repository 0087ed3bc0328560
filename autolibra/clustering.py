"""Clustering aspects into candidate metrics, with HDBSCAN.

Embeddings are reduced with a seeded PCA before HDBSCAN (density estimates
in 384 dimensions are slow and noisy), then re-normalised so euclidean
distance tracks cosine. The fitted HDBSCAN keeps its prediction data, so new
aspects are assigned to existing metrics with `predict` without clustering
again.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import normalize


class AspectClusterer:
    """scikit-learn style: parameters here, learned attributes end in `_`."""

    def __init__(self, min_cluster_size: int = 5, min_samples: int | None = None, n_components: int = 16,
                 cluster_selection_epsilon: float = 0.0, cluster_selection_method: str = "eom",
                 random_state: int = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.n_components = n_components
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.cluster_selection_method = cluster_selection_method
        self.random_state = random_state

    def _reduce(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        Z = self.reducer_.transform(X) if self.reducer_ is not None else X  # noqa: N806
        return normalize(Z).astype(np.float64)

    def fit(self, X: np.ndarray) -> AspectClusterer:  # noqa: N803
        import hdbscan

        n, d = X.shape
        k = min(self.n_components, d, max(n - 1, 1))
        self.reducer_ = PCA(n_components=k, random_state=self.random_state).fit(X) if k < d and n > k else None
        Z = self._reduce(X)  # noqa: N806
        self.hdbscan_ = hdbscan.HDBSCAN(
            min_cluster_size=max(2, self.min_cluster_size), min_samples=self.min_samples,
            cluster_selection_epsilon=self.cluster_selection_epsilon,
            cluster_selection_method=self.cluster_selection_method, prediction_data=True,
            core_dist_n_jobs=1,
        ).fit(Z)
        self.labels_ = self.hdbscan_.labels_.copy()
        self.probabilities_ = self.hdbscan_.probabilities_.copy()
        self.n_clusters_ = int(self.labels_.max() + 1) if len(self.labels_) else 0
        return self

    def fit_predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return self.fit(X).labels_

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """Cluster labels (-1: none) and membership strengths for new aspects."""
        import hdbscan

        if len(X) == 0:
            return np.zeros(0, int), np.zeros(0)
        labels, strengths = hdbscan.approximate_predict(self.hdbscan_, self._reduce(X))
        return labels, strengths


def cluster_sums(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: N803
    """(cluster ids in order, the sum of each cluster's vectors, its size), in one pass (-1 left out).

    One sort and a segment sum, not a mask per cluster: the granularity search computes
    these for hundreds of clusters over tens of thousands of aspects, many times.
    """
    keep = labels >= 0
    lab = labels[keep]
    if not len(lab):
        return np.zeros(0, dtype=np.int64), np.zeros((0, X.shape[1] if X.ndim == 2 else 0)), np.zeros(0)
    order = np.argsort(lab, kind="stable")
    lab = lab[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    sums = np.add.reduceat(X[keep][order].astype(np.float64), starts, axis=0)
    counts = np.diff(np.r_[starts, len(lab)]).astype(np.float64)
    return lab[starts].astype(np.int64), sums, counts


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-9)


def centroids(X: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:  # noqa: N803
    """Each cluster's mean vector, normalised."""
    ids, sums, counts = cluster_sums(X, labels)
    means = _unit(sums / counts[:, None]) if len(ids) else sums
    return {int(c): v for c, v in zip(ids, means, strict=True)}


def merge_close(X: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:  # noqa: N803
    """Join clusters whose centres are closer than `threshold` (cosine), the closest pair first, repeatedly.

    Density clustering splits one behaviour by the wording around it
    ("confirm before booking" and "before refunding"); merging near centres
    makes the metric as general as the feedback allows. Each merge updates the
    joined cluster's centre from the two clusters' sums, not every centre from
    every aspect.
    """
    ids, sums, counts = cluster_sums(X, labels)
    if len(ids) < 2:
        return labels.copy()
    C = _unit(sums / counts[:, None])  # noqa: N806
    S = C @ C.T  # noqa: N806
    np.fill_diagonal(S, -1)
    into = np.arange(len(ids))  # each cluster's index, or the one it was merged into
    alive = np.ones(len(ids), dtype=bool)
    while True:
        i, j = np.unravel_index(int(S.argmax()), S.shape)  # the first of the closest pairs, as before
        if S[i, j] < threshold:
            break
        i, j = min(i, j), max(i, j)
        sums[i] += sums[j]
        counts[i] += counts[j]
        into[into == j] = i
        alive[j] = False
        S[j, :] = S[:, j] = -np.inf  # j is gone
        c = _unit(sums[i] / counts[i])
        row = C @ c
        C[i] = c
        row[~alive] = -np.inf
        S[i, :] = S[:, i] = row
        S[i, i] = -1
    out = labels.copy()
    member = labels >= 0
    out[member] = ids[into[np.searchsorted(ids, labels[member])]]
    return out


def refine(labels: np.ndarray, X: np.ndarray, params: dict) -> np.ndarray:  # noqa: N803
    """A base clustering with close aspects absorbed and close clusters merged, as `params` say."""
    labels = labels.copy()
    absorb_at = params.get("absorb_at")
    if absorb_at:  # aspects close to a cluster join it instead of staying uncovered
        cents = centroids(X, labels)
        if cents:
            ids = sorted(cents)
            noise = np.where(labels == -1)[0]
            sims = X[noise] @ np.vstack([cents[i] for i in ids]).T
            best = sims.argmax(axis=1)
            close = sims[np.arange(len(noise)), best] >= absorb_at
            labels[noise[close]] = np.asarray(ids)[best[close]]
    merge_at = params.get("merge_at")
    if merge_at:
        labels = merge_close(X, labels, merge_at)
    return labels
