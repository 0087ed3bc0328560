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

    def define(self, clusters: dict[int, list[tuple[Aspect, float]]], salt: str = "") -> list[Metric]:
        ids = sorted(clusters)
        docs = [" ".join(a.metadata.get("topic", a.behaviour) for a, _ in clusters[c]) for c in ids]
        keywords = ctfidf_keywords(docs)
        generic = self._generic_names(clusters, ids)
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
            about = ", ".join(words[:4])
            expl = f"How the agent does on what people raised about {about}."
            if c in generic:
                name, desc = generic[c]
                expl = f"Whether the agent {desc}. People raised it in terms of {about}."
            while name.lower() in names:
                name += f" ({words[0]})" if f"({words[0]})" not in name else f" ({c})"
            names.add(name.lower())
            good = _examples(members, 1, self.max_examples)
            bad = _examples(members, -1, self.max_examples)
            if good:
                expl += f" Praised: \u201c{good[0].text}\u201d"
            if bad:
                expl += f" Criticised: \u201c{bad[0].text}\u201d"
            metrics.append(Metric(
                metric_id=metric_id_for(name, salt + str(c)), name=name, explanation=expl, good=good, bad=bad,
                metadata={"cluster": c, "keywords": words, "aspects": len(members),
                          "praised": sum(a.sign > 0 for a, _ in members),
                          "criticised": sum(a.sign < 0 for a, _ in members)}))
        return metrics


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
