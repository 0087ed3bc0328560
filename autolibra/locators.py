"""Fitted step locators as versioned artefacts: fitted per format, checked per format, chosen.

A locator fitted on one kind of trace can be worse on another (weights that
learn Magentic-One's turn order mislead on a chat log). So fitting reports,
for every trace format in the examples, the exact and within-one accuracy of
the default weights and of the fitted ones under cross-validation grouped by
run (a run's notes never train the model that is tested on them), and keeps
fitted weights only for the formats where they did better; the others, and
formats it never saw, keep the default weights.

Saved in the store's `step_locators` table as JSON (weights, report), one
version per fit; one version is the chosen one, which grounding uses (the
app's Suggest steps, `libra ground`, offline induction).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from autolibra.locator import DEFAULT_WEIGHTS, FEATURES, StepLocator
from traces.model import Step
from traces.store import Store

log = logging.getLogger(__name__)

ANY = "*"  # the weights for formats the fit has no figures for


@dataclass(frozen=True)
class AnchoredNote:
    """A note anchored to steps by a person: the run's format and id, the text, the steps."""

    fmt: str
    run_id: str
    text: str
    steps: tuple[Step, ...]
    gold: tuple[int, ...]
    focus: str | None = None


@dataclass(frozen=True)
class LocatorFit:
    weights: dict[str, dict[str, float] | None]  # format -> fitted weights, or None for the defaults
    report: dict[str, dict] = field(default_factory=dict)  # format -> cross-validated figures
    embedder: str | None = None
    examples: int = 0
    version: int | None = None
    chosen: bool = False

    def weights_for(self, fmt: str | None) -> dict[str, float]:
        w = self.weights[fmt] if fmt in self.weights else self.weights.get(ANY)
        return dict(w) if w else dict(DEFAULT_WEIGHTS)

    def locator(self, embedder, fmt: str | None) -> StepLocator:
        loc = StepLocator(embedder)
        loc.coef_ = self.weights_for(fmt)
        return loc


def hits(picked: Sequence[int], gold: Sequence[Sequence[int]]) -> tuple[float, float]:
    """Exact and within-one accuracy of picked steps against each note's gold steps."""
    exact = sum(p in g for p, g in zip(picked, gold, strict=True))
    within = sum(any(abs(p - x) <= 1 for x in g) for p, g in zip(picked, gold, strict=True))
    n = max(len(picked), 1)
    return exact / n, within / n


def _accuracy(loc_weights: dict[str, float], feats: list[tuple[np.ndarray, list[int]]]) -> tuple[float, float]:
    w = np.array([loc_weights.get(f, 0.0) for f in FEATURES])
    return hits([int(np.argmax(F @ w)) for F, _ in feats], [g for _, g in feats])


def fit_per_format(examples: Sequence[AnchoredNote], embedder, *, folds: int = 5, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> LocatorFit:
    """Fit on every example; keep the fit for a format only where cross-validation says it helps."""
    usable = [e for e in examples if e.steps and any(0 <= g < len(e.steps) for g in e.gold)]
    if not usable:
        raise ValueError("no note is anchored to a step inside its run: nothing to fit a locator on")
    base = StepLocator(embedder)
    feats = [(base.features(e.text, e.steps, e.focus), [g for g in e.gold if 0 <= g < len(e.steps)])
             for e in usable]
    runs = sorted({e.run_id for e in usable})
    fold_of = {r: i % folds for i, r in enumerate(np.random.default_rng(seed).permutation(runs))}
    fold = np.array([fold_of[e.run_id] for e in usable])
    fitted_pred: dict[int, dict[str, float]] = {}
    n_folds = min(folds, len(runs))
    for k in range(n_folds):
        train = [feats[i] for i in np.where(fold != k)[0]]
        if not train:
            continue
        loc = StepLocator(embedder, random_state=seed)
        # one repeat of the inner search per fold: the outer folds already average over splits
        alpha = max(loc.ALPHAS) if len(train) < 15 else loc._choose_alpha(train, repeats=1)
        fitted_pred[k] = dict(zip(FEATURES, loc._weights(train, alpha), strict=True))
        if progress:
            progress(k + 1, n_folds + 1)
    report, weights = {}, {}
    final = StepLocator(embedder, random_state=seed).fit([(e.text, e.steps, e.gold, e.focus) for e in usable])
    for fmt in sorted({e.fmt for e in usable}):
        idx = [i for i, e in enumerate(usable) if e.fmt == fmt]
        d_exact, d_within = _accuracy(DEFAULT_WEIGHTS, [feats[i] for i in idx])
        hits = [_accuracy(fitted_pred[int(fold[i])], [feats[i]]) for i in idx if int(fold[i]) in fitted_pred]
        f_exact = float(np.mean([h[0] for h in hits])) if hits else 0.0
        f_within = float(np.mean([h[1] for h in hits])) if hits else 0.0
        helps = (f_exact, f_within) > (d_exact, d_within)
        report[fmt] = {"examples": len(idx), "default_exact": round(d_exact, 4), "default_within1": round(d_within, 4),
                       "fitted_exact": round(f_exact, 4), "fitted_within1": round(f_within, 4),
                       "uses": "fitted" if helps else "default"}
        weights[fmt] = final.coef_ if helps else None
    weights[ANY] = None  # a format no note came from keeps the weights that were not fitted on anything
    if progress:
        progress(n_folds + 1, n_folds + 1)
    return LocatorFit(weights, report, getattr(embedder, "name", None), len(usable))


def anchored_examples(store: Store) -> list[AnchoredNote]:
    """Every note a person anchored to steps, with its run."""
    from traces.annotation.feedback import load as load_feedback
    from traces.export import load_runs

    notes = [f for f in load_feedback(store) if f.steps]
    runs = load_runs(store, sorted({f.run_id for f in notes}))
    return [AnchoredNote(runs[f.run_id].format, f.run_id, f.text, runs[f.run_id].steps, tuple(f.steps), f.focus)
            for f in notes if f.run_id in runs]


def save(store: Store, fit: LocatorFit, *, by: str | None = None, choose: bool = True) -> LocatorFit:
    def once(con) -> int:
        version = (con.execute("SELECT max(version) FROM step_locators").fetchone()[0] or 0) + 1
        if choose:
            con.execute("UPDATE step_locators SET chosen = false WHERE chosen")
        con.execute("INSERT INTO step_locators VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [version, json.dumps(fit.weights), json.dumps(fit.report), fit.embedder, fit.examples,
                     datetime.now(UTC).replace(tzinfo=None), by, choose])
        return version

    return replace(fit, version=store.write(once, serialise="step_locators"), chosen=choose)


class LocatorRejected(ValueError):
    """A stored locator row that is not what `save` writes (edited by hand, or by another program)."""


_COLUMNS = "version, weights, report, embedder, examples, chosen"


def _from_row(row: tuple) -> LocatorFit:
    """The row as a fit, or LocatorRejected naming the version and the field that is wrong.

    The store may be shared, so a row is data from outside: weights must be a JSON
    object of formats to finite numbers per known feature (or null for the defaults).
    """
    v, w, rep, emb, n, chosen = row

    def bad(fld: str, why: str) -> LocatorRejected:
        return LocatorRejected(f"step_locators version {v}: field {fld!r} {why}; "
                               "grounding uses the default weights (fit again: libra locator fit)")
    try:
        raw, report = json.loads(w), json.loads(rep)
    except (TypeError, ValueError) as e:
        raise bad("weights/report", f"is not JSON ({e})") from None
    if not isinstance(raw, dict) or not isinstance(report, dict):
        raise bad("weights/report", "is not a JSON object")
    weights: dict[str, dict[str, float] | None] = {}
    for fmt, val in raw.items():
        if val is None:
            weights[fmt] = None
            continue
        if not isinstance(val, dict):
            raise bad(f"weights.{fmt}", "is neither an object of feature weights nor null")
        got = {}
        for f, x in val.items():
            if f not in FEATURES:
                continue  # a feature this Libra does not compute weighs nothing
            if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x):
                raise bad(f"weights.{fmt}.{f}", f"is {x!r}, not a finite number")
            got[f] = float(x)
        weights[fmt] = got
    return LocatorFit(weights, report, emb, int(n or 0), int(v), bool(chosen))


def load(store: Store, version: int | None = None) -> LocatorFit | None:
    """A saved version, or the chosen one (None when none is chosen: grounding uses the defaults)."""
    rows = store.execute(
        f"SELECT {_COLUMNS} FROM step_locators "
        "WHERE (?::INTEGER IS NULL AND chosen) OR version = ? ORDER BY version DESC LIMIT 1", [version, version])
    if not rows:
        if version is not None:
            raise KeyError(f"no fitted locator version {version}")
        return None
    return _from_row(rows[0])


def rejected(con) -> tuple[int, list[str]]:
    """Stored versions that cannot be read (for `libra check`)."""
    problems = []
    for row in con.execute(f"SELECT {_COLUMNS} FROM step_locators ORDER BY version").fetchall():
        try:
            _from_row(row)
        except LocatorRejected as e:
            problems.append(str(e))
    return len(problems), problems


def choose(store: Store, version: int | None) -> None:
    """Make `version` the one grounding uses (None: the default weights again)."""
    if version is not None:
        load(store, version)

    def once(con) -> None:
        con.execute("UPDATE step_locators SET chosen = (version = ?)", [version if version is not None else -1])

    store.write(once, serialise="step_locators")


def versions(store: Store) -> list[LocatorFit]:
    """Every readable version; unreadable ones are logged here and counted by `libra check`."""
    out = []
    for row in store.execute(f"SELECT {_COLUMNS} FROM step_locators ORDER BY version"):
        try:
            out.append(_from_row(row))
        except LocatorRejected as e:
            log.warning("%s", e)
    return out


def locator_for(store: Store, embedder, fmt: str | None) -> StepLocator:
    """The locator grounding uses on a run of `fmt`: the chosen fit's, else the default weights."""
    try:
        fit = load(store)
    except LocatorRejected as e:
        log.warning("%s", e)
        fit = None
    return fit.locator(embedder, fmt) if fit is not None else StepLocator(embedder)
