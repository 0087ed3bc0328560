"""`libra check`: every invariant of a store, and the repairs that need no guess.

Traces' checks (traces/check.py), the jobs' (metrics/jobs/health.py) and the fitted
locators' (autolibra/locators.py), run
in that order; repairs run one check at a time, each in its own transaction,
and the store is checked again after them.
"""

from __future__ import annotations

from dataclasses import dataclass

from autolibra import locators
from metrics.jobs import health
from traces import check as trace_checks
from traces.check import Check, Finding
from traces.store import Store

CHECKS: tuple[Check, ...] = trace_checks.CHECKS + health.CHECKS + (
    Check("fitted locators that cannot be read", locators.rejected,
          advice="grounding uses the default weights instead; fit again with libra locator fit"),)


@dataclass(frozen=True)
class CheckReport:
    findings: tuple[Finding, ...]  # every check, as the store is now (after repairs)
    repaired: tuple[Finding, ...] = ()  # the problems repaired, as they were found

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.count]

    @property
    def ok(self) -> bool:
        return not self.problems


def _run(store: Store) -> list[Finding]:
    with store.connection() as con:
        return [c.run(con) for c in CHECKS]


def check(store: Store, repair: bool = False) -> CheckReport:
    """Check the store; with `repair`, fix what can be fixed without guessing, then check again."""
    found = _run(store)
    if not repair:
        return CheckReport(tuple(found))
    repaired = []
    for c, f in zip(CHECKS, found, strict=True):
        if f.count and c.repair is not None:
            store.write(c.repair)
            repaired.append(f)
    return CheckReport(tuple(_run(store)), tuple(repaired))
