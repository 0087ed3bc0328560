"""The sign of a remark (praise or criticism) learnt from people's own signed remarks.

The polarity lexicon (`autolibra.signs.detect_sign`) reads "No secrets were
divulged" as criticism and "no secrets were revealed" as praise: a word list
cannot know which words negate which. Where people scored what they wrote
about (Sotopia-π: a score per dimension next to each reason; elsewhere a
note's 1-5 rating), the score says the sign, and a classifier over word
n-grams learns the phrasings, negation included, from them.

scikit-learn conventions: `SignClassifier().fit(texts, signs).predict(texts)`.
The offline grounder uses it: people's own sign where their score gives one,
else the classifier fitted on the notes being grounded (once there are
`MIN_PER_SIGN` remarks of each sign), else the word list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline

# Where each Sotopia-π dimension's score says praise or criticism; scores between say neither.
# (secret and social rules run -10..0: 0 is "nothing leaked / no rule broken")
SOTOPIA_SIGN = {
    "believability": (7, 4), "knowledge": (7, 4), "goal": (7, 4),  # 0..10: >=7 praise, <=4 criticism
    "relationship": (1, -1), "financial_and_material_benefits": (1, -1),  # -5..5
    "secret": (0, -1), "social_rules": (0, -1),  # -10..0
}


def sign_from_score(dimension: str, score: float | None) -> int | None:
    """+1, -1, or None when the score is in the middle (or the dimension is not known)."""
    if score is None or dimension not in SOTOPIA_SIGN:
        return None
    good, bad = SOTOPIA_SIGN[dimension]
    return 1 if score >= good else -1 if score <= bad else None


def sign_from_rating(rating: float | None) -> int | None:
    """A note's 1-5 rating as the sign of what it says: 4-5 praise, 1-2 criticism."""
    if rating is None:
        return None
    return 1 if rating >= 4 else -1 if rating <= 2 else None


@dataclass(frozen=True)
class SignedRemark:
    text: str
    sign: int
    group: str  # the episode or run it is about, for grouped splits


def scored_sign(fb: Any, bullet: str) -> int | None:
    """The sign people's own score gives one statement of a note (Sotopia-style bullets), if any."""
    meta = getattr(fb, "metadata", None) or {}
    scores = meta.get("scores") or {}
    for b in meta.get("bullets") or ():
        if isinstance(b, dict) and isinstance(b.get("text"), str) and bullet[:60] in b["text"]:
            return sign_from_score(b.get("dimension", ""), scores.get(b.get("dimension")))
    return None


MIN_PER_SIGN = 30  # signed remarks of each sign before a classifier replaces the lexicon


def fit_for(notes: Sequence[Any]) -> SignClassifier | None:
    """A classifier fitted on the notes' signed remarks, or None when they are too few."""
    remarks = signed_remarks(notes)
    praised = sum(r.sign > 0 for r in remarks)
    if min(praised, len(remarks) - praised) < MIN_PER_SIGN:
        return None
    return SignClassifier().fit([r.text for r in remarks], [r.sign for r in remarks])


def signed_remarks(notes: Sequence[Any]) -> list[SignedRemark]:
    """Remarks whose sign people gave, from `traces.model.Feedback`-like notes.

    Sotopia-style notes carry per-dimension bullets and scores in their
    metadata; other notes give their rating to each of their statements.
    """
    from autolibra.signs import split_bullets

    out = []
    for fb in notes:
        meta = getattr(fb, "metadata", None) or {}
        group = str(getattr(fb, "run_id", None) or meta.get("episode") or id(fb))
        bullets, scores = meta.get("bullets"), meta.get("scores") or {}
        if bullets:
            for b in bullets:
                s = sign_from_score(b.get("dimension", ""), scores.get(b.get("dimension")))
                if s is not None and b.get("text"):
                    out.append(SignedRemark(b["text"], s, group))
            continue
        s = sign_from_rating(getattr(fb, "rating", None))
        if s is not None:
            out.extend(SignedRemark(t, s, group) for t in split_bullets(getattr(fb, "text", "") or ""))
    return out


class SignClassifier:
    """Word 1-3-grams and character 2-5-grams, logistic regression: +1 praise, -1 criticism."""

    def __init__(self, C: float = 4.0) -> None:  # noqa: N803 - scikit-learn's name
        self.C = C

    def fit(self, texts: Sequence[str], signs: Sequence[int]) -> SignClassifier:
        y = np.asarray(signs)
        if len(set(y.tolist())) < 2:
            raise ValueError("a sign classifier needs both praised and criticised remarks")
        features = FeatureUnion([
            # stop words kept: "no", "not", "without" are what turns a remark around
            ("words", TfidfVectorizer(ngram_range=(1, 3), min_df=1, sublinear_tf=True, lowercase=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)),
        ])
        self.pipeline_ = make_pipeline(features, LogisticRegression(C=self.C, max_iter=2000,
                                                                    class_weight="balanced"))
        self.pipeline_.fit(list(texts), y)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline_.predict(list(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(praise) per text."""
        classes = list(self.pipeline_.classes_)
        return self.pipeline_.predict_proba(list(texts))[:, classes.index(1)]


def cross_validated(remarks: Sequence[SignedRemark], folds: int = 5) -> dict[str, float]:
    """Accuracy of the classifier and of the lexicon on the same remarks, grouped by episode.

    Also the trivial baseline: always the commoner sign of the training folds.
    """
    from sklearn.model_selection import GroupKFold

    from autolibra.signs import detect_sign

    texts = [r.text for r in remarks]
    y = np.array([r.sign for r in remarks])
    groups = [r.group for r in remarks]
    pred = np.zeros_like(y)
    majority = np.zeros_like(y)
    for tr, te in GroupKFold(min(folds, len(set(groups)))).split(texts, y, groups):
        model = SignClassifier().fit([texts[i] for i in tr], y[tr])
        pred[te] = model.predict([texts[i] for i in te])
        majority[te] = 1 if (y[tr] > 0).mean() >= 0.5 else -1
    lexicon = np.array([detect_sign(t) for t in texts])
    return {"remarks": float(len(y)), "praise_share": float((y > 0).mean()),
            "classifier": float((pred == y).mean()), "lexicon": float((lexicon == y).mean()),
            "majority": float((majority == y).mean()),
            "classifier_criticism_recall": float(((pred == -1) & (y == -1)).sum() / max(1, (y == -1).sum())),
            "lexicon_criticism_recall": float(((lexicon == -1) & (y == -1)).sum() / max(1, (y == -1).sum()))}
