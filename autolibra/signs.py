"""Reading feedback text: bullets, each bullet's sign, and its topic.

The sign comes from a polarity lexicon with negation scope, so "no rules were
broken" is praise; the topic is the bullet with its evaluative words removed,
which is what clustering and matching compare.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def split_bullets(text: str) -> list[str]:
    """Feedback into statements: bullet lines, else sentences; fragments without content dropped."""
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n") if ln.strip()]
    out: list[str] = []
    for ln in lines:
        ln = _BULLET.sub("", ln).strip()
        out.extend(s.strip() for s in _SENT.split(ln) if s.strip())
    keep = [s for s in out if len(re.findall(r"[A-Za-z]{2,}", s)) >= 2]
    return keep or ([text.strip()] if text.strip() else [])


NEGATORS = {"no", "not", "never", "none", "nothing", "without", "neither", "nor", "didn't", "didnt", "doesn't",
            "don't", "wasn't", "weren't", "isn't", "aren't", "hasn't", "haven't", "cannot", "can't", "couldn't",
            "won't", "lack", "lacked", "lacking", "n't", "nobody"}
NEGATIVE = {
    "fail", "failed", "fails", "failure", "wrong", "incorrect", "incorrectly", "error", "errors", "mistake",
    "mistakes", "ignored", "ignore", "ignores", "ignoring", "broke", "broken", "break", "breaks", "leaked",
    "leak", "revealed", "reveal", "too", "unnecessary", "redundant", "loop", "looped", "looping", "stuck",
    "hallucinated", "hallucination", "invented", "confusing", "confused", "rambles", "rambling", "robotic",
    "unnatural", "rude", "lost", "lose", "missing", "omitted", "poor", "poorly", "bad", "badly", "guessed",
    "assumed", "repeated", "repetitive", "repeating", "risky", "wasted", "unclear", "irrelevant", "disrupts",
    "disrupt", "worse", "lower", "lowers", "weird", "awkward", "odd", "strange", "unrealistic", "forced",
    "aggressive", "pushy", "wordy", "buries", "off", "violated", "violates", "harm", "harmed", "loss", "lied",
    "lying", "dishonest", "refused", "abrupt", "abruptly", "inconsistent", "contradict", "contradicted",
    "unhelpful", "hostile", "manipulative", "slow", "late", "unable", "difficult", "annoying", "generic",
    "fabricated", "anyway", "nowhere", "jargon", "long",
}
POSITIVE = {
    "good", "great", "nice", "well", "clear", "clearly", "concise", "natural", "naturally", "believable",
    "respected", "respectful", "correct", "correctly", "helpful", "polite", "achieved", "achieve", "succeeded",
    "success", "successful", "successfully", "recovered", "efficient", "gained", "gain", "learned", "learnt",
    "improved", "friendly", "kind", "appropriate", "appropriately", "reasonable", "realistic", "accurate",
    "handled", "managed", "maintained", "compromise", "agreed", "fair", "honest", "gracefully", "excellent",
    "strong", "better", "smooth", "empathetic", "understanding", "positive", "convincing", "thoughtful",
    "effective", "effectively", "careful", "carefully", "confirmed", "checked", "asked", "backed",
    "respectfully", "benefit", "benefited", "benefitted", "won", "got", "gets", "obtained", "secured",
    "fixed", "fixes", "worked", "works", "resolved", "solved", "attention", "quickly", "clean", "direct",
}
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


_SCOPE_BREAK = {"and", "but", "so", "then", "which", "while", "because", "although", "though", "however", "yet"}
_NEG_PHRASES = ("made up", "out of nowhere", "went past", "went over", "gave up", "too many", "too much",
                "too long", "not enough", "at odds", "over the top", "fell short", "falls short")
_POS_PHRASES = ("paid attention", "instead of guessing", "instead of assuming", "instead of repeating",
                "stayed within", "kept within", "on point", "on track", "to the point")


def _tokens(text: str) -> list[str]:
    """Words, with "|" where punctuation ends a negation's reach."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?|[.,;:!?()]", text.lower().replace("n't", " n't"))


def detect_sign(text: str) -> int:
    """+1 for praise, -1 for criticism.

    Polarity words count +1/-1; a negator up to four words before flips one,
    unless punctuation or a conjunction comes between ("had no date and asked"
    keeps "asked" positive). "Should have ..." and "instead of ..." mark
    criticism, except "instead of guessing" and kin. With no polarity word, a
    negated statement ("no relationship change") reads as criticism and a
    plain statement of what happened as praise.
    """
    low = text.lower()
    words = _tokens(text)
    score = 0.0
    for i, w in enumerate(words):
        pol = 1 if w in POSITIVE else -1 if w in NEGATIVE else 0
        if not pol:
            continue
        window = []
        for x in reversed(words[max(0, i - 4):i]):
            if x in _SCOPE_BREAK or not x.isalpha() and x != "n't":
                break
            window.append(x)
        if any(x in NEGATORS for x in window):
            pol = -pol
        score += pol
    score -= 2 * sum(p in low for p in _NEG_PHRASES)
    score += 2 * sum(p in low for p in _POS_PHRASES)
    if re.search(r"\bshould(?:n't| not)? (?:have|be|not|never|ask|let|refer|recognize|recognise|check)\b", low) \
            or low.startswith("should") or ("instead of" in low and not any(p in low for p in _POS_PHRASES)):
        score -= 2
    if score == 0:
        return -1 if any(w in NEGATORS for w in words) else 1
    return 1 if score > 0 else -1


_EVALUATIVE = {"good", "great", "nice", "well", "very", "really", "quite", "bad", "poor", "poorly", "pretty",
               "super", "extremely", "so", "too", "just", "overall"}


def topic_text(text: str, names: Sequence[str] = ()) -> str:
    """The aspect's subject with its verdict taken out, for clustering by what is judged.

    People's reasons are often formulaic negations ("no secrets were revealed",
    "no rules broken"); embedding them as written groups them by wording.
    Dropping negators and evaluative words, and replacing the actors' names,
    leaves what the statement is about.
    """
    t = text
    for n in sorted({p for name in names if name for p in [name, *name.split()] if len(p) > 2}, key=len,
                    reverse=True):
        t = re.sub(rf"\b{re.escape(n)}('s)?\b", "the agent", t, flags=re.IGNORECASE)
    t = re.sub(r"\b[a-z]+(?:_[a-z0-9]+)+\b", "the tool", t)  # identifiers are slot fillers, not behaviour
    t = re.sub(r"[$€£]?\d[\d,.]*%?", "N", t)
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*|\d+|[^\sA-Za-z\d]", t)
    kept = [w for w in words if w.lower().replace("’", "'") not in NEGATORS | _EVALUATIVE]
    out = " ".join(kept)
    out = re.sub(r"\s+([.,;:!?])", r"\1", out).strip(" .,;:")
    return out or text
