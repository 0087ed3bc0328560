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


def centroids(X: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:  # noqa: N803
    out = {}
    for c in sorted(set(labels.tolist()) - {-1}):
        v = X[labels == c].mean(axis=0)
        out[c] = v / (np.linalg.norm(v) + 1e-9)
    return out
