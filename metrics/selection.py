"""Choosing runs by what was said and judged about them: `--where` over named metrics.

A condition is clauses joined by `and`, each `NAME OP VALUE`:

    confirm_before_booking = 1                   a metric's verdict (+1, 0 n/a, -1), by id
    "Confirm before booking" = 1                 ... or by its name, quoted
    pipa_tool_efficiency.rate >= 0.9             a unit-scored metric's pass rate (PIPA stages)
    reward >= 1      outcome = success           the run's own reward and outcome
    feedback >= 1    rating <= 2                 how many notes people wrote; their mean rating

OP is one of = != > >= < <=. A metric's verdict is the newest set version's that
scored the run. A name that is no metric is an error listing near names, so a typo
never selects nothing silently. The parser builds parameterised SQL: names and
values are bound, operators come from a fixed table.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass

from traces.store import Store

OPS = {"=": "=", "==": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
RUN_FIELDS = {"reward": "r.reward", "outcome": "r.outcome", "agent": "r.agent", "model": "r.model"}
PEOPLE = {"feedback": "(SELECT count(*) FROM feedback f WHERE f.run_id = r.run_id AND f.deleted_at IS NULL)",
          "rating": "(SELECT avg(f.rating) FROM feedback f WHERE f.run_id = r.run_id AND f.deleted_at IS NULL)"}
_CLAUSE = re.compile(r"^(?P<name>.+?)\s*(?P<op>==|!=|>=|<=|=|>|<)\s*(?P<value>.+)$")


class BadCondition(ValueError):
    """A --where condition that cannot be read; the message says which clause and why."""


@dataclass(frozen=True)
class Clause:
    name: str
    field: str  # "value" or "rate" for a metric; the run field or people's measure otherwise
    op: str
    value: float | str
    metric_id: str | None = None


def _split(condition: str) -> list[str]:
    lexer = shlex.shlex(condition, posix=True, punctuation_chars="=!<>")
    lexer.whitespace_split = True
    lexer.wordchars += ".-+@:/"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise BadCondition(f"cannot read {condition!r}: {exc}") from None
    clauses: list[list[str]] = []
    cur: list[str] = []
    for t in tokens:
        if t.lower() == "and":
            clauses.append(cur)
            cur = []
        else:
            cur.append(t)
    clauses.append(cur)
    if any(not c for c in clauses):
        raise BadCondition(f"an empty clause in {condition!r}")
    return [_join(c) for c in clauses]


def _join(tokens: list[str]) -> str:
    for i, t in enumerate(tokens):
        if t in OPS:
            return "\x00".join([" ".join(tokens[:i]), t, " ".join(tokens[i + 1:])])
    raise BadCondition(f"no operator (one of {' '.join(OPS)}) in {' '.join(tokens)!r}")


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _metric_names(store: Store) -> dict[str, str]:
    """Every defined or scored metric by id and by lower-cased name → its id (one no run was judged on
    selects nothing; it is no typo)."""
    rows = store.execute(
        "SELECT metric_id, name FROM metric_defs UNION SELECT DISTINCT metric_id, metric_id FROM scores")
    names: dict[str, str] = {}
    for metric_id, name in rows:
        names[metric_id] = metric_id
        names.setdefault(str(name).lower(), metric_id)
    return names


def parse(store: Store, condition: str) -> list[Clause]:
    """The clauses of a condition, every metric name resolved; `BadCondition` otherwise."""
    names = None
    out = []
    for raw in _split(condition):
        name, op, value = raw.split("\x00")
        if not name or not value:
            raise BadCondition(f"{raw.replace(chr(0), ' ')!r} needs a name and a value")
        key = name.lower()
        if key in RUN_FIELDS or key in PEOPLE:
            out.append(Clause(name, key, OPS[op], _number(value)))
            continue
        names = names if names is not None else _metric_names(store)
        field = "value"
        if key.endswith(".rate") and (name[:-5] in names or key[:-5] in names):
            name, field = name[:-5], "rate"
        metric_id = names.get(name) or names.get(name.lower())
        if metric_id is None:
            near = difflib.get_close_matches(name, list(names) + list(RUN_FIELDS) + list(PEOPLE), n=3)
            raise BadCondition(f"no metric or field named {name!r}" + (f"; did you mean {', '.join(near)}?"
                                                                       if near else ""))
        v = _number(value)
        if not isinstance(v, float):
            raise BadCondition(f"{name!r} compares with a number, not {value!r}")
        out.append(Clause(name, field, OPS[op], v, metric_id))
    return out


def select_runs(store: Store, condition: str | None = None, *, agent: str | None = None,
                fmt: str | None = None, since: str | None = None, limit: int | None = None) -> list[str]:
    """Run ids meeting the condition (and of `agent`, read from `fmt`, started since), in id order."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    for clause, value in (("r.agent = ?", agent), ("r.format = ?", fmt),
                          ("coalesce(r.started_at, r.ingested_at) >= CAST(? AS TIMESTAMP)", since)):
        if value:
            where.append(clause)
            params.append(value)
    for c in parse(store, condition) if condition else []:
        if c.metric_id is not None:
            column = "s.rate" if c.field == "rate" else "s.value"
            # the newest set version that scored the run decides; OPS' values are fixed strings
            where.append(
                "EXISTS (SELECT 1 FROM (SELECT s.value, s.rate FROM scores s WHERE s.run_id = r.run_id AND "
                "s.metric_id = ? QUALIFY row_number() OVER (ORDER BY s.metric_set_version DESC, s.created_at DESC) "
                f"= 1) s WHERE {column} {c.op} ?)")
            params += [c.metric_id, c.value]
        else:
            expr = RUN_FIELDS.get(c.field) or PEOPLE[c.field]
            where.append(f"{expr} {c.op} ?")
            params.append(c.value)
    sql = "SELECT r.run_id FROM runs r WHERE " + " AND ".join(where) + " ORDER BY r.run_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [r for (r,) in store.execute(sql, params)]


def verdicts(store: Store, run_ids: list[str]) -> dict[str, dict[str, dict[str, object]]]:
    """Per run, each metric's newest verdict: {metric name: {value, rate, set, version, backend}}."""
    rows = store.execute(
        "SELECT s.run_id, s.metric_set_id, s.metric_set_version, s.metric_id, coalesce(d.name, s.metric_id), "
        "s.value, s.rate, s.backend FROM scores s LEFT JOIN metric_defs d ON d.set_id = s.metric_set_id "
        "AND d.version = s.metric_set_version AND d.metric_id = s.metric_id "
        "WHERE s.run_id IN (SELECT unnest(?::VARCHAR[])) AND coalesce(s.focus, '') = '' "
        "QUALIFY row_number() OVER (PARTITION BY s.run_id, s.metric_set_id, s.metric_id "
        "ORDER BY s.metric_set_version DESC, s.created_at DESC) = 1", [run_ids])
    out: dict[str, dict[str, dict[str, object]]] = {}
    for run_id, set_id, version, metric_id, name, value, rate, backend in rows:
        out.setdefault(run_id, {})[metric_id] = {"name": name, "value": int(value), "rate": rate, "set": set_id,
                                                 "version": int(version), "backend": backend}
    return out
