"""The one module through which Libra calls language models.

- Structured output: every request forces one tool whose input schema is a
  pydantic model; the answer is validated, re-asked once with the validation
  error if invalid, then the item fails with the reason recorded.
- Cost: the stable prefix (instructions, rubric) carries `cache_control`;
  identical requests are answered from a response cache in the store; every
  billed call's tokens and cost are recorded (`llm_calls`); a `Budget` stops a
  job cleanly before it would overspend; bulk work can go through the Message
  Batches API at half price.
- Faults: the SDK retries 408/409/429/5xx/529 and connection errors with
  backoff, honouring `retry-after`; this layer adds retries for malformed
  responses and never lets one item's failure escape its job.
- Secrets: the API key is read by the SDK from `ANTHROPIC_API_KEY` and never
  passed, stored or logged here; `ANTHROPIC_BASE_URL` is honoured the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anthropic
from pydantic import BaseModel, ValidationError

from metrics.llm.budget import Budget, BudgetExceeded, Usage, cost_usd
from metrics.llm.tokens import count_tokens
from traces.store import merge

log = logging.getLogger("libra.llm")

DEFAULT_MODEL = "claude-sonnet-5-5"  # the newest Sonnet the SDK lists that is not deprecated
@dataclass(frozen=True)
class LLMConfig:
    model: str = DEFAULT_MODEL
    max_tokens: int = 4096
    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 4  # the SDK's own retries, per HTTP request
    malformed_retries: int = 2  # ours, for 200 responses we cannot read

    @classmethod
    def from_env(cls, **overrides) -> LLMConfig:
        env = {"model": os.environ.get("LIBRA_MODEL") or DEFAULT_MODEL}
        if os.environ.get("LIBRA_LLM_CONCURRENCY"):
            env["concurrency"] = int(os.environ["LIBRA_LLM_CONCURRENCY"])
        return cls(**{**env, **overrides})


def api_key_available() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))


_CACHE_COLS = ["request_hash", "model", "purpose", "response", "created_at"]


@dataclass(frozen=True)
class Request:
    """One structured question: a stable, cached prefix and the item's own data."""

    purpose: str
    tool_name: str
    tool_description: str
    schema: type[BaseModel]
    system: str
    user: str
    rubric: str | None = None
    cache_prefix: bool = True

    def params(self, config: LLMConfig) -> dict:
        system = [{"type": "text", "text": self.system}]
        if self.rubric:
            system.append({"type": "text", "text": self.rubric})
        if self.cache_prefix:
            system[-1]["cache_control"] = {"type": "ephemeral"}
        return {
            "model": config.model, "max_tokens": config.max_tokens,
            "system": system,
            "tools": [{"name": self.tool_name, "description": self.tool_description,
                       "input_schema": self.schema.model_json_schema()}],
            "tool_choice": {"type": "tool", "name": self.tool_name},
            "messages": [{"role": "user", "content": self.user}],
        }

    def key(self, config: LLMConfig) -> str:
        blob = json.dumps(self.params(config), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def estimate(self, config: LLMConfig, batch: bool = False) -> float:
        """A pessimistic cost bound, used to reserve budget before the call."""
        tokens = count_tokens(self.system) + count_tokens(self.rubric) + count_tokens(self.user) + 200
        return cost_usd(config.model, Usage(tokens, min(config.max_tokens, 1500)), batch)


@dataclass(frozen=True)
class Outcome:
    key: str
    ok: bool
    value: Any = None
    error: str | None = None
    cost: float = 0.0
    cached: bool = False
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    # the job's budget stopped this item (never inferred from an error's text)
    budget_exhausted: bool = False


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _tool_input(message: Any, tool: str) -> Any:
    for block in getattr(message, "content", None) or []:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == tool:
            return block.input
    raise ValueError(f"the model did not call the tool {tool!r}")


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


# Requests being asked right now, by request hash: single flight for identical requests.
_inflight: dict[str, _Flight] = {}
_inflight_lock = threading.Lock()


class LLM:
    """Structured calls with caching, cost records, a budget and bounded concurrency."""

    def __init__(self, store=None, config: LLMConfig | None = None, *, client: anthropic.Anthropic | None = None,
                 budget: Budget | None = None, job_id: str | None = None):
        self.config = config or LLMConfig.from_env()
        self.store = store
        self.client = client or anthropic.Anthropic(max_retries=self.config.max_retries,
                                                    timeout=self.config.timeout)
        self.budget = budget or Budget()
        self.job_id = job_id
        cost_usd(self.config.model, Usage(1, 1))  # an unknown price fails here, before any call is paid for

    # -- persistence ------------------------------------------------------------

    def _cached(self, key: str) -> Any:
        if self.store is None:
            return None
        rows = self.store.execute("SELECT response FROM llm_cache WHERE request_hash = ?", [key])
        return json.loads(rows[0][0]) if rows else None

    def _remember(self, key: str, purpose: str, value: dict) -> None:
        if self.store is None:
            return
        row = [key, self.config.model, purpose, json.dumps(value), _now()]
        self.store.write(lambda con: merge(con, "llm_cache", [row], keys=["request_hash"], columns=_CACHE_COLS))

    def _record(self, *, purpose: str, key: str, item: str | None, status: str, usage: Usage,
                cost: float, attempts: int, latency: float | None, batch: bool, error: str | None = None) -> None:
        if self.store is None:
            return
        with self.store.transaction() as con:
            con.execute(
                "INSERT INTO llm_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [uuid.uuid4().hex, self.job_id, item, purpose, self.config.model, key, status,
                 (error or "")[:2000] or None, usage.input_tokens, usage.output_tokens,
                 usage.cache_creation_input_tokens, usage.cache_read_input_tokens, cost,
                 latency, attempts, batch, _now()],
            )

    # -- one call ---------------------------------------------------------------

    def _create(self, params: dict) -> tuple[Any, float, int]:
        """messages.create with our retries for unreadable 200s on top of the SDK's own."""
        attempts = 0
        while True:
            attempts += 1
            t0 = time.perf_counter()
            try:
                msg = self.client.messages.create(**params)
                return msg, (time.perf_counter() - t0) * 1000, attempts
            except (anthropic.APIResponseValidationError, json.JSONDecodeError, ValueError) as exc:
                if attempts > self.config.malformed_retries:
                    raise RuntimeError(f"unreadable response after {attempts} tries: {exc}") from exc
                time.sleep(min(0.5 * 2 ** (attempts - 1), 8.0))

    def call(self, req: Request, item_key: str | None = None) -> Outcome:
        """One structured call, answered from the response cache when it can be.

        Identical requests in flight at once in this process are asked once: the
        others wait for that answer and take it from the cache, so a job that
        judges the same prompt twice concurrently is billed once.
        """
        key = req.key(self.config)
        while True:
            with _inflight_lock:
                flight = _inflight.get(key)
                if flight is None:
                    mine = _inflight[key] = _Flight()
                    break
            flight.done.wait()
            if flight.outcome is not None and flight.outcome.ok:
                self._record(purpose=req.purpose, key=key, item=item_key, status="cached", usage=Usage(),
                             cost=0.0, attempts=0, latency=None, batch=False)
                return Outcome(key, True, flight.outcome.value, cached=True)
            # that call failed: this one asks for itself
        try:
            mine.outcome = self._call(req, key, item_key)
            return mine.outcome
        finally:
            with _inflight_lock:
                _inflight.pop(key, None)
            mine.done.set()

    def _call(self, req: Request, key: str, item_key: str | None) -> Outcome:
        hit = self._cached(key)
        if hit is not None:
            try:
                value = req.schema.model_validate(hit)
                self._record(purpose=req.purpose, key=key, item=item_key, status="cached", usage=Usage(),
                             cost=0.0, attempts=0, latency=None, batch=False)
                return Outcome(key, True, value, cached=True)
            except ValidationError:
                pass  # the schema changed since; ask again
        if self.budget.exhausted.is_set():
            return Outcome(key, False, error="not attempted: the job's budget is exhausted", budget_exhausted=True)
        params = req.params(self.config)
        total_cost, total_usage, attempts = 0.0, Usage(), 0
        for ask in range(2):  # the question, then at most one re-ask with the validation error
            try:
                estimate = self.budget.reserve(req.estimate(self.config))
            except BudgetExceeded as exc:
                return Outcome(key, False, error=str(exc), cost=total_cost, usage=total_usage, attempts=attempts,
                               budget_exhausted=True)
            try:
                msg, latency, n = self._create(params)
            except Exception as exc:  # noqa: BLE001 - one failed item never aborts a job
                self.budget.settle(estimate, 0.0)
                error = f"{type(exc).__name__}: {exc}"
                self._record(purpose=req.purpose, key=key, item=item_key, status="error", usage=Usage(),
                             cost=0.0, attempts=attempts + 1, latency=None, batch=False, error=error)
                return Outcome(key, False, error=error, cost=total_cost, usage=total_usage,
                               attempts=attempts + 1)
            attempts += n
            usage = Usage.of(msg.usage)
            cost = cost_usd(self.config.model, usage)
            self.budget.settle(estimate, cost)
            total_cost += cost
            total_usage = total_usage + usage
            try:
                raw = _tool_input(msg, req.tool_name)
                value = req.schema.model_validate(raw)
            except (ValidationError, ValueError) as exc:
                problem = str(exc)[:1500]
                self._record(purpose=req.purpose, key=key, item=item_key, status="invalid", usage=usage,
                             cost=cost, attempts=n, latency=latency, batch=False, error=problem)
                if ask == 0:
                    params = self._reask(params, msg, req, problem)
                    continue
                return Outcome(key, False, error=f"invalid output after a re-ask: {problem}",
                               cost=total_cost, usage=total_usage, attempts=attempts)
            self._record(purpose=req.purpose, key=key, item=item_key, status="ok", usage=usage, cost=cost,
                         attempts=n, latency=latency, batch=False)
            self._remember(key, req.purpose, value.model_dump(mode="json"))
            return Outcome(key, True, value, cost=total_cost, usage=total_usage, attempts=attempts)
        raise AssertionError("unreachable")

    @staticmethod
    def _reask(params: dict, msg: Any, req: Request, problem: str) -> dict:
        tool_use = next((b for b in msg.content if getattr(b, "type", None) == "tool_use"), None)
        messages = list(params["messages"])
        if tool_use is not None:
            messages.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": tool_use.id, "name": tool_use.name, "input": tool_use.input}]})
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "is_error": True,
                 "content": f"That input does not match the schema: {problem}. Call {req.tool_name} again "
                            "with input that does."}]})
        else:
            messages.append({"role": "user", "content": f"Answer by calling the tool {req.tool_name}."})
        return {**params, "messages": messages}

    # -- many calls -------------------------------------------------------------

    def map(self, items: Sequence[tuple[str, Request]],
            progress: Callable[[int, int], None] | None = None) -> dict[str, Outcome]:
        """Call for every (item key, request) with at most `concurrency` in flight."""
        out: dict[str, Outcome] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            futures = {pool.submit(self.call, req, key): key for key, req in items}
            for i, fut in enumerate(as_completed(futures), 1):
                out[futures[fut]] = fut.result()
                if progress:
                    progress(i, len(items))
        return out

    def batch(self, items: Sequence[tuple[str, Request]], *, poll_interval: float = 10.0,
              on_submitted: Callable[[str, list[str]], None] | None = None,
              existing_batch: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Outcome]:
        """The Message Batches API for bulk work: half price, answered within a day.

        `existing_batch` resumes a batch submitted before a stop instead of paying again.
        """
        out: dict[str, Outcome] = {}
        todo: list[tuple[str, Request, str]] = []
        for key, req in items:
            hit = self._cached(req.key(self.config))
            if hit is not None:
                try:
                    out[key] = Outcome(req.key(self.config), True, req.schema.model_validate(hit), cached=True)
                    continue
                except ValidationError:
                    pass
            todo.append((key, req, req.key(self.config)))
        if not todo:
            return out
        reserved = []
        if existing_batch is None:
            fits = []
            for key, req, rk in todo:
                try:
                    est = self.budget.reserve(req.estimate(self.config, batch=True))
                except BudgetExceeded as exc:
                    out[key] = Outcome(rk, False, error=str(exc), budget_exhausted=True)
                    continue
                reserved.append(est)
                fits.append((key, req, rk))
            todo = fits
            if not todo:
                return out
            requests = [{"custom_id": f"i{i}", "params": req.params(self.config)} for i, (_, req, _) in enumerate(todo)]
            batch = self.client.messages.batches.create(requests=requests)
            batch_id = batch.id
            if on_submitted:
                on_submitted(batch_id, [k for k, _, _ in todo])
        else:
            batch_id = existing_batch
        while True:
            status = self.client.messages.batches.retrieve(batch_id)
            if status.processing_status == "ended":
                break
            time.sleep(poll_interval)
        by_custom = {f"i{i}": t for i, t in enumerate(todo)}
        done = 0
        for entry in self.client.messages.batches.results(batch_id):
            key, req, rk = by_custom[entry.custom_id]
            res = entry.result
            if res.type != "succeeded":
                out[key] = Outcome(rk, False, error=f"batch item {res.type}")
                continue
            msg = res.message
            usage = Usage.of(msg.usage)
            cost = cost_usd(self.config.model, usage, batch=True)
            self.budget.settle(reserved.pop() if reserved else 0.0, cost)
            try:
                value = req.schema.model_validate(_tool_input(msg, req.tool_name))
            except (ValidationError, ValueError) as exc:
                self._record(purpose=req.purpose, key=rk, item=key, status="invalid", usage=usage, cost=cost,
                             attempts=1, latency=None, batch=True, error=str(exc)[:1500])
                retry = self.call(req, key)  # the re-ask goes direct
                out[key] = Outcome(rk, retry.ok, retry.value, retry.error, retry.cost + cost,
                                   attempts=retry.attempts + 1, usage=retry.usage + usage)
                continue
            self._record(purpose=req.purpose, key=rk, item=key, status="ok", usage=usage, cost=cost,
                         attempts=1, latency=None, batch=True)
            self._remember(rk, req.purpose, value.model_dump(mode="json"))
            out[key] = Outcome(rk, True, value, cost=cost, attempts=1, usage=usage)
            done += 1
            if progress:
                progress(done, len(todo))
        for key, _, rk in todo:
            out.setdefault(key, Outcome(rk, False, error="missing from batch results"))
        return out
