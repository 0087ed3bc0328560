"""From clusters of aspects to metric definitions: name, explanation, good and bad examples.

Every example is one of the cluster's aspects, so it stays linked to the
feedback and steps it came from.

- `OfflineNamer`: class-based TF-IDF keywords per cluster (each cluster's
  texts as one document, weighed against the other clusters) name the
  metric; the aspects nearest the cluster's centre are its examples.
- `LLMNamer`: one call per cluster with its most central aspects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import re

import numpy as np
from pydantic import BaseModel, Field
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from autolibra.aspects import Aspect
from metrics.definitions import Example, Metric, metric_id_for
from metrics.llm.client import LLM, Request
from metrics.llm.prompts import DATA_NOTICE, data_block

EXTRA_STOP = {"agent", "agents", "user", "users", "did", "does", "didn", "doesn", "just", "really", "like",
              "bit", "lot", "way", "thing", "things", "time", "times", "make", "made", "seemed", "seems", "felt"}


def _examples(members: list[tuple[Aspect, float]], sign: int, k: int) -> tuple[Example, ...]:
    seen, out = set(), []
    for a, _ in sorted((m for m in members if m[0].sign == sign), key=lambda m: -m[1]):
        key = a.bullet.lower().strip(" .")
        if key in seen:
            continue
        seen.add(key)
        out.append(Example(a.bullet, a.run_id, a.steps, a.feedback_id))
        if len(out) >= k:
            break
    return tuple(out)


def ctfidf_keywords(docs: Sequence[str], top: int = 6) -> list[list[tuple[str, float]]]:
    """Top (term, weight) per document, c-TF-IDF style: tf within class times log(1 + A / f_t)."""
    vec = CountVectorizer(ngram_range=(1, 2), stop_words=list(ENGLISH_STOP_WORDS | EXTRA_STOP),
                          token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b", min_df=1)
    try:
        counts = vec.fit_transform(docs).toarray().astype(float)
    except ValueError:  # nothing but stop words
        return [[] for _ in docs]
    terms = vec.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    avg = counts.sum() / max(len(docs), 1)
    idf = np.log(1 + avg / np.maximum(counts.sum(axis=0), 1))
    w = tf * idf
    out = []
    for row in w:
        idx = np.argsort(-row)[:top * 3]
        picked: list[tuple[str, float]] = []
        for i in idx:
            t = terms[i]
            if row[i] <= 0:
                break
            # a bigram makes its own words redundant, and a word already in a picked bigram adds nothing
            if any(t in p or p in t for p, _ in picked):
                continue
            picked.append((t, float(row[i])))
            if len(picked) >= top:
                break
        out.append(picked)
    return out


_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")
_STOPS = frozenset(ENGLISH_STOP_WORDS | EXTRA_STOP)


def phrase_candidates(texts: Sequence[str], max_words: int = 4) -> dict[str, int]:
    """Phrases of 1-4 words people wrote, that neither start nor end with a stop word: phrase -> remarks holding it.

    Written here rather than taken from a keyphrase library: the ones on PyPI (KeyBERT, YAKE,
    RAKE) either pull a model hub or rank single documents, where a cluster is many short ones.
    """
    df: dict[str, int] = {}
    for t in texts:
        seen = set()
        for clause in re.split(r"[.,;:!?()\"“”]+", t.lower()):
            words = _WORD.findall(clause)
            for n in range(1, max_words + 1):
                for i in range(len(words) - n + 1):
                    gram = words[i:i + n]
                    if gram[0] in _STOPS or gram[-1] in _STOPS or len(gram[0]) < 3 or len(gram[-1]) < 3:
                        continue
                    seen.add(" ".join(gram))
        for g in seen:
            df[g] = df.get(g, 0) + 1
    return df


def keyphrases(clusters: dict[int, list[str]], embedder, centres: dict[int, np.ndarray], k: int = 4,
               shortlist: int = 25, diversity: float = 0.5) -> dict[int, list[str]]:
    """Per cluster, `k` phrases from its remarks: frequent in it, rare elsewhere, close to its centre, unlike each other.

    A phrase's weight is its share of the cluster's remarks times how few other
    clusters use it (c-TF-IDF on phrases), longer phrases preferred; the
    shortlist is re-ranked by similarity to the cluster's centre and picked by
    maximal marginal relevance, so the second phrase is not the first reworded.
    """
    dfs = {c: phrase_candidates(t) for c, t in clusters.items()}
    used_by: dict[str, int] = {}
    for d in dfs.values():
        for g in d:
            used_by[g] = used_by.get(g, 0) + 1
    weights, shorts = {}, {}
    for c, d in dfs.items():
        n = max(len(clusters[c]), 1)
        weights[c] = {g: (f / n) * np.log(1 + len(dfs) / used_by[g]) * (1 + 0.35 * (g.count(" ")))
                      for g, f in d.items() if f >= 2 or n < 4}
        shorts[c] = sorted(weights[c], key=lambda g: -weights[c][g])[:shortlist]
    # every cluster's shortlist in one call: one cache lookup, and new phrases batched by length together
    vocab = list(dict.fromkeys(g for short in shorts.values() for g in short))
    row = {g: i for i, g in enumerate(vocab)}
    every = embedder.embed(vocab) if vocab else None
    out = {}
    for c in dfs:
        short, weight = shorts[c], weights[c]
        if not short:
            out[c] = []
            continue
        V = every[[row[g] for g in short]]  # noqa: N806
        centre = centres[c] / (np.linalg.norm(centres[c]) + 1e-9)
        rel = (V @ centre) * np.array([weight[g] for g in short]) ** 0.5
        picked: list[int] = []
        while len(picked) < min(k, len(short)):
            best, best_score = None, -np.inf
            for i in range(len(short)):
                if i in picked or any(short[i] in short[j] or short[j] in short[i] for j in picked):
                    continue
                redundancy = max((float(V[i] @ V[j]) for j in picked), default=0.0)
                score = (1 - diversity) * rel[i] - diversity * redundancy * rel.max()
                if score > best_score:
                    best, best_score = i, score
            if best is None:
                break
            picked.append(best)
        out[c] = [short[i] for i in picked]
    return out


class OfflineNamer:
    """Names from a generic vocabulary when a cluster is close to an entry, else from keywords."""

    backend = "offline-ctfidf"

    def __init__(self, max_examples: int = 5, embedder=None, vocabulary=None, min_similarity: float = 0.45):
        self.max_examples = max_examples
        self.embedder = embedder
        self.vocabulary = vocabulary
        self.min_similarity = min_similarity

    def _generic_names(self, clusters: dict[int, list[tuple[Aspect, float]]], ids: list[int]) -> dict[int, tuple[str, str]]:
        if self.embedder is None:
            return {}
        from autolibra.vocabulary import GENERIC_METRICS

        vocab = list(self.vocabulary or GENERIC_METRICS)
        V = self.embedder.embed([f"{n}: {d}" for n, d in vocab])  # noqa: N806
        out, taken = {}, set()
        wants = []
        for c in ids:
            central = [a.metadata.get("topic", a.behaviour) for a, _ in sorted(clusters[c], key=lambda x: -x[1])[:15]]
            v = self.embedder.embed(central).mean(axis=0)
            sims = V @ (v / (np.linalg.norm(v) + 1e-9))
            wants.append((float(sims.max()), c, int(sims.argmax())))
        for sim, c, j in sorted(wants, reverse=True):  # the closest cluster gets an entry first
            if sim >= self.min_similarity and j not in taken:
                taken.add(j)
                out[c] = vocab[j]
        return out

    def _phrases(self, clusters: dict[int, list[tuple[Aspect, float]]], ids: list[int]) -> dict[int, list[str]]:
        if self.embedder is None:
            return {}
        texts = {c: [a.metadata.get("topic", a.behaviour) for a, _ in clusters[c]] for c in ids}
        central = {c: self.embedder.embed([t for (a, _), t in sorted(zip(clusters[c], texts[c], strict=True),
                                                                       key=lambda x: -x[0][1])[:15]]).mean(axis=0)
                   for c in ids}
        return keyphrases(texts, self.embedder, central)

    def define(self, clusters: dict[int, list[tuple[Aspect, float]]], salt: str = "") -> list[Metric]:
        ids = sorted(clusters)
        docs = [" ".join(a.metadata.get("topic", a.behaviour) for a, _ in clusters[c]) for c in ids]
        keywords = ctfidf_keywords(docs)
        generic = self._generic_names(clusters, ids)
        phrases = self._phrases(clusters, ids)
        names: set[str] = set()
        metrics = []
        for c, kws in zip(ids, keywords, strict=True):
            members = clusters[c]
            words = [k for k, _ in kws] or ["behaviour"]
            name = words[0].capitalize()
            for extra in words[1:]:
                if name.lower() not in names and len(name.split()) >= 2:
                    break
                name = f"{name}, {extra}"
                if len(name.split()) >= 3:
                    break
            said = phrases.get(c) or []
            # a phrase people wrote, not a pair of keywords; of several words when one is among the picks,
            # and one no other metric has taken
            free = [p for p in said if p.lower() not in names]
            pick = next((p for p in free if " " in p), free[0] if free else None)
            if pick:
                name = pick[:1].upper() + pick[1:]
            about = ", ".join(said or words[:4])
            good = _examples(members, 1, self.max_examples)
            bad = _examples(members, -1, self.max_examples)
            expl = _definition(name, about, good, bad)
            if c in generic:
                name, desc = generic[c]
                expl = f"Whether the agent {desc}. " + _definition(name, about, good, bad)
            while name.lower() in names:
                name += f" ({words[0]})" if f"({words[0]})" not in name else f" ({c})"
            names.add(name.lower())
            metrics.append(Metric(
                metric_id=metric_id_for(name, salt + str(c)), name=name, explanation=expl, good=good, bad=bad,
                metadata={"cluster": c, "keywords": words, "phrases": said, "aspects": len(members),
                          "praised": sum(a.sign > 0 for a, _ in members),
                          "criticised": sum(a.sign < 0 for a, _ in members)}))
        return metrics


def _definition(name: str, about: str, good: tuple[Example, ...], bad: tuple[Example, ...]) -> str:
    """What the metric asks, from the cluster's most central remarks (quoted: people's words, not ours)."""
    parts = []
    if good and bad:
        parts.append(f"+1 when the agent does what people praised, as in \u201c{good[0].text}\u201d; "
                     f"\u22121 when it does what they criticised, as in \u201c{bad[0].text}\u201d.")
    elif good:
        parts.append(f"+1 when the agent does what people praised, as in \u201c{good[0].text}\u201d"
                     + (f" or \u201c{good[1].text}\u201d" if len(good) > 1 else "") + "; \u22121 when it fails to.")
    elif bad:
        parts.append(f"\u22121 when the agent does what people criticised, as in \u201c{bad[0].text}\u201d"
                     + (f" or \u201c{bad[1].text}\u201d" if len(bad) > 1 else "") + "; +1 when it avoids it.")
    parts.append(f"People put it as: {about}.")
    return " ".join(parts)


class _Definition(BaseModel):
    name: str = Field(description="a short, generic metric name, e.g. 'Location query correctness'")
    explanation: str = Field(description="what the metric assesses, in one or two sentences")
    good: list[int] = Field(default_factory=list, description="numbers of the aspects that show good behaviour")
    bad: list[int] = Field(default_factory=list, description="numbers of the aspects that show bad behaviour")


NAME_INSTRUCTIONS = """You turn a group of similar remarks people made about an AI agent into one metric.

Give the metric a short generic name that would apply to other agents and tasks (say "Location query
correctness", not "Mapping site usage"), explain in one or two sentences what it assesses, and pick, by
their numbers, the remarks that illustrate good behaviour and those that illustrate bad behaviour.

{notice}"""


class LLMNamer:
    backend = "llm"

    def __init__(self, llm: LLM, max_examples: int = 5, shown: int = 25):
        self.llm = llm
        self.max_examples = max_examples
        self.shown = shown

    def define(self, clusters: dict[int, list[tuple[Aspect, float]]], salt: str = "",
               progress: Callable[[int, int], None] | None = None) -> list[Metric]:
        shown = {c: sorted(m, key=lambda x: -x[1])[: self.shown] for c, m in clusters.items()}
        items = []
        for c, members in shown.items():
            lines = "\n".join(f"{i}. ({'praise' if a.sign > 0 else 'criticism'}) {a.behaviour}"
                              for i, (a, _) in enumerate(members))
            items.append((str(c), Request(
                purpose="name", tool_name="define_metric", tool_description="Define the metric.",
                schema=_Definition, system=NAME_INSTRUCTIONS.format(notice=DATA_NOTICE),
                user="The remarks:\n" + data_block("remarks", lines))))
        res = self.llm.map(items, progress)
        fallback = OfflineNamer(self.max_examples)
        metrics = []
        for c, members in shown.items():
            r = res[str(c)]
            if not r.ok:  # that cluster is named offline rather than lost
                metrics.extend(fallback.define({c: clusters[c]}, salt))
                continue
            d = r.value

            def pick(idx, members=members):
                return tuple(Example(members[i][0].bullet, members[i][0].run_id, members[i][0].steps,
                                     members[i][0].feedback_id)
                             for i in idx if 0 <= i < len(members))[: self.max_examples]

            metrics.append(Metric(metric_id_for(d.name, salt + str(c)), d.name, d.explanation,
                                  pick(d.good), pick(d.bad),
                                  metadata={"cluster": c, "aspects": len(clusters[c]), "named_by": "llm"}))
        return metrics
