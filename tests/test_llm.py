"""The LLM layer against a local fake of the Messages API: faults, cost, cache, budget, batches."""

from __future__ import annotations

import json
import threading
import time
import typing
from pathlib import Path

import anthropic
import pytest
from pydantic import BaseModel, Field

from metrics.llm.fake import FakeAnthropic
from metrics.jobs.ledger import Job
from metrics.llm.budget import Budget, Usage, cost_usd
from metrics.llm.client import DEFAULT_MODEL, LLM, LLMConfig, Request


class Answer(BaseModel):
    label: typing.Literal["good", "bad"]
    score: int = Field(ge=0, le=10)


def req(i: int = 0, rubric: str | None = None) -> Request:
    return Request(purpose="test", tool_name="answer", tool_description="Answer.", schema=Answer,
                   system="Classify the item.", rubric=rubric, user=f"item {i}")


@pytest.fixture
def fake():
    with FakeAnthropic(responder=lambda r: {"label": "good", "score": 7}) as f:
        yield f


def make_llm(fake, store=None, **cfg) -> LLM:
    config = LLMConfig(**{"max_retries": 4, "timeout": 5.0, **cfg})
    client = anthropic.Anthropic(api_key="test-key", base_url=fake.base_url,
                                 max_retries=config.max_retries, timeout=config.timeout)
    return LLM(store, config, client=client)


def test_default_model_is_a_current_sonnet_the_sdk_lists():
    from anthropic._data.deprecated_models import DEPRECATED_MODELS

    assert DEFAULT_MODEL in str(anthropic.types.Model)
    assert "sonnet" in DEFAULT_MODEL and DEFAULT_MODEL not in DEPRECATED_MODELS


def test_structured_answer_is_validated_and_recorded(fake, mem_store):
    llm = make_llm(fake, mem_store)
    out = llm.call(req())
    assert out.ok and out.value == Answer(label="good", score=7)
    assert out.cost == pytest.approx(cost_usd(DEFAULT_MODEL, out.usage))
    sent = fake.requests[0]
    assert sent["tool_choice"] == {"type": "tool", "name": "answer"}
    assert sent["system"][-1]["cache_control"] == {"type": "ephemeral"}
    row = mem_store.execute("SELECT status, input_tokens, output_tokens, cost_usd FROM llm_calls")[0]
    assert row[0] == "ok" and row[1] > 0 and row[2] > 0 and row[3] == pytest.approx(out.cost)


def test_base_url_and_key_come_from_the_environment(fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    out = LLM(None, LLMConfig(max_retries=0)).call(req())
    assert out.ok and len(fake.requests) == 1


@pytest.mark.parametrize("fault", ["429", "500", "529"])
def test_retries_status_faults(fake, mem_store, fault):
    fake.inject(fault, times=2, retry_after=0)
    out = make_llm(fake, mem_store).call(req())
    assert out.ok
    assert len(fake.requests) == 3 and len(fake.ledger) == 1


@pytest.mark.timing
@pytest.mark.parametrize("fault", ["429", "500", "529"])
def test_retries_honour_the_retry_after_the_server_asks_for(fake, mem_store, fault):
    fake.inject(fault, times=2, retry_after=0.3)
    t0 = time.perf_counter()
    out = make_llm(fake, mem_store).call(req())
    took = time.perf_counter() - t0
    assert out.ok
    assert len(fake.requests) == 3 and len(fake.ledger) == 1
    assert took >= 0.55, "waited the retry-after the server asked for"


def test_timeouts_slow_responses_and_dropped_connections(fake, mem_store):
    fake.inject("slow", delay=1.5)
    fake.inject("disconnect")
    out = make_llm(fake, mem_store, timeout=0.5).call(req())
    assert out.ok
    assert len(fake.ledger) >= 1


def test_malformed_json_is_retried(fake, mem_store):
    fake.inject("malformed", times=2)
    out = make_llm(fake, mem_store).call(req())
    assert out.ok and out.attempts == 3


def test_invalid_output_is_reasked_once_then_fails_with_reason(fake, mem_store):
    fake.inject("invalid_tool")
    llm = make_llm(fake, mem_store)
    out = llm.call(req(1))
    assert out.ok
    reask = fake.requests[-1]["messages"]
    assert reask[-1]["content"][0]["type"] == "tool_result" and reask[-1]["content"][0]["is_error"]
    assert [s for s, in mem_store.execute("SELECT status FROM llm_calls ORDER BY created_at")] == ["invalid", "ok"]

    fake.inject("invalid_tool", times=2)
    bad = llm.call(req(2))
    assert not bad.ok and "invalid output after a re-ask" in bad.error
    assert bad.cost > 0  # both attempts were billed, and recorded
    assert mem_store.scalar("SELECT count(*) FROM llm_calls WHERE item_key IS NULL AND status = 'invalid'") == 3


def test_unrecoverable_error_fails_the_item_not_the_job(fake, mem_store):
    fake.inject("500", times=10, retry_after=0.01)
    llm = make_llm(fake, mem_store, max_retries=1)
    res = llm.map([(f"k{i}", req(i)) for i in range(4)])
    failed = [k for k, o in res.items() if not o.ok]
    assert 1 <= len(failed) <= 4 and all("InternalServerError" in res[k].error for k in failed)
    assert mem_store.scalar("SELECT count(*) FROM llm_calls WHERE status = 'error'") == len(failed)


def test_response_cache_makes_reruns_free(fake, mem_store):
    llm = make_llm(fake, mem_store)
    first = llm.map([(f"k{i}", req(i)) for i in range(5)])
    billed = len(fake.ledger)
    again = make_llm(fake, mem_store).map([(f"k{i}", req(i)) for i in range(5)])
    assert billed == 5 and len(fake.ledger) == 5
    assert all(o.cached and o.cost == 0 for o in again.values())
    assert {k: o.value for k, o in again.items()} == {k: o.value for k, o in first.items()}


def test_prompt_caching_of_the_stable_prefix(fake, mem_store):
    rubric = "A long rubric. " * 400  # over the 1024-token minimum
    llm = make_llm(fake, mem_store)
    outs = [llm.call(req(i, rubric)) for i in range(3)]
    assert outs[0].usage.cache_creation_input_tokens > 1000
    assert outs[1].usage.cache_read_input_tokens == outs[0].usage.cache_creation_input_tokens
    assert outs[1].cost < outs[0].cost / 3


@pytest.mark.parametrize("with_store", [True, False])
def test_identical_requests_in_flight_at_once_are_billed_once(fake, mem_store, with_store):
    release, entered, lock = threading.Event(), [0], threading.Lock()

    def held(request):
        release.wait(30)  # the first request is answered only once all eight callers are in
        return {"label": "good", "score": 7}

    fake.responder = held
    llm = make_llm(fake, mem_store if with_store else None, concurrency=8)
    out: dict[int, object] = {}

    def caller(i: int) -> None:
        with lock:
            entered[0] += 1
        out[i] = llm.call(req(1), f"k{i}")  # eight items, one prompt

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 30
    while entered[0] < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # each is past its first line: asking, or waiting on the one who asks
    release.set()
    for th in threads:
        th.join(30)
    assert all(o.ok and o.value.score == 7 for o in out.values()) and len(out) == 8
    assert len(fake.ledger) == 1 and sum(not o.cached for o in out.values()) == 1
    if with_store:
        assert mem_store.scalar("SELECT count(*) FROM llm_calls WHERE status = 'ok'") == 1
        assert mem_store.scalar("SELECT count(*) FROM llm_calls WHERE status = 'cached'") == 7
    fake.responder = lambda r: {"label": "good", "score": 7}
    fake.inject("500", times=1, retry_after=0)  # a failed call does not fail the ones waiting on it
    res = make_llm(fake, None, concurrency=4, max_retries=0).map([(f"j{i}", req(2)) for i in range(4)])
    assert sum(o.ok for o in res.values()) >= 3


def test_concurrency_is_bounded(fake, mem_store):
    live, peak, lock = [0], [0], threading.Lock()

    def slow(request):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.1)
        with lock:
            live[0] -= 1
        return {"label": "bad", "score": 1}

    fake.responder = slow
    res = make_llm(fake, mem_store, concurrency=3).map([(f"k{i}", req(i)) for i in range(12)])
    assert all(o.ok for o in res.values())
    assert peak[0] == 3


def test_budget_stops_cleanly_and_a_resumed_job_bills_nothing_twice(fake, mem_store):
    items = [(f"k{i}", req(i)) for i in range(10)]
    probe = make_llm(fake, None, max_tokens=64).call(req(99))  # what one call really costs
    fake.reset()
    job = Job.open(mem_store, "unit", {"n": 10}, max_cost=probe.cost * 5.5)
    llm = make_llm(fake, mem_store, concurrency=1, max_tokens=64)
    llm.job_id, llm.budget = job.job_id, Budget(job.max_cost)
    res = llm.map(items)
    done = [k for k, o in res.items() if o.ok]
    job.mark(done, "done")
    assert 0 < len(done) < 10
    assert all(o.budget_exhausted and "budget" in o.error for o in res.values() if not o.ok)
    assert job.spent() <= job.max_cost
    job.finish("stopped", "budget")

    job2 = Job.open(mem_store, "unit", {"n": 10}, max_cost=1.0)
    assert job2.job_id == job.job_id and job2.resumed
    todo = job2.pending([k for k, _ in items])
    assert set(todo) == {k for k, _ in items} - set(done)
    llm2 = make_llm(fake, mem_store, max_tokens=64)
    llm2.job_id, llm2.budget = job2.job_id, Budget(1.0, spent=job2.spent())
    res2 = llm2.map([(k, r) for k, r in items if k in todo])
    assert all(o.ok for o in res2.values())
    keys = [b.key for b in fake.ledger]
    assert len(keys) == 10 and len(set(keys)) == 10, "every item billed exactly once"


def test_batches_api_half_price_and_resume(fake, mem_store):
    llm = make_llm(fake, mem_store)
    llm.call(req(0))  # cached beforehand: not sent in the batch
    submitted = {}
    res = llm.batch([(f"k{i}", req(i)) for i in range(6)], poll_interval=0.01,
                    on_submitted=lambda bid, keys: submitted.update(id=bid, keys=keys))
    assert all(o.ok for o in res.values()) and res["k0"].cached
    assert len(submitted["keys"]) == 5
    batch_bills = [b for b in fake.ledger if b.batch]
    assert len(batch_bills) == 5
    o = res["k1"]
    assert o.cost == pytest.approx(cost_usd(DEFAULT_MODEL, o.usage, batch=True))
    assert o.cost == pytest.approx(cost_usd(DEFAULT_MODEL, o.usage) / 2)
    # a job that stopped after submitting picks the same batch up instead of paying again
    again = make_llm(fake, mem_store).batch([(f"k{i}", req(i)) for i in range(6)], existing_batch=submitted["id"])
    assert all(x.ok for x in again.values())
    assert len([b for b in fake.ledger if b.batch]) == 5


def test_api_key_never_reaches_store_logs_or_exports(fake, store, monkeypatch, tmp_path, caplog):
    secret = "sk-ant-api03-SECRET-never-store-me"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    caplog.set_level("DEBUG")
    llm = LLM(store, LLMConfig(max_retries=2))
    fake.inject("invalid_tool")
    fake.inject("429", retry_after=0.01)
    llm.map([(f"k{i}", req(i)) for i in range(3)])
    from traces.export import export_parquet
    export_parquet(store, tmp_path / "out")
    # what the store holds: its file, or on a lake its Parquet files and a dump of the catalog
    if store.lake:
        from traces.ducklake import lake_parts
        held = [p.read_bytes() for p in Path(lake_parts(store.path)[1]).rglob("*") if p.is_file()]
        held.append(json.dumps(store.execute("SELECT * FROM llm_calls"), default=str).encode())
        held.append(json.dumps(store.execute("SELECT * FROM llm_cache"), default=str).encode())
        assert store.scalar("SELECT count(*) FROM llm_calls") > 0
    else:
        held = [Path(store.path).read_bytes()]
    blobs = held + [p.read_bytes() for p in (tmp_path / "out").iterdir()]
    assert all(secret.encode() not in b for b in blobs)
    assert secret not in caplog.text
    assert all(secret not in json.dumps(r) for r in fake.requests)


def test_prices_come_from_a_maintained_table_and_an_unknown_model_is_refused(monkeypatch):
    from metrics.llm.budget import UnknownModelPrice

    monkeypatch.delenv("LIBRA_MODEL_PRICE", raising=False)
    # genai-prices' table: Sonnet 5.5 is $2 / $10 per million (the old family table said $3 / $15)
    assert cost_usd("claude-sonnet-5-5", Usage(1_000_000, 0)) == pytest.approx(2.0)
    assert cost_usd("claude-sonnet-5-5", Usage(0, 1_000_000)) == pytest.approx(10.0)
    # cached input is billed at the cache rates, far below fresh input (writes above it)
    fresh = cost_usd("claude-sonnet-5-5", Usage(1_000_000, 0))
    assert 0 < cost_usd("claude-sonnet-5-5", Usage(0, 0, 0, 1_000_000)) <= fresh / 10
    assert cost_usd("claude-sonnet-5-5", Usage(0, 0, 1_000_000, 0)) > fresh
    # an unknown model is not priced as some other model: the budget could not be kept
    with pytest.raises(UnknownModelPrice, match="no price is known for model 'acme-proxy-1'.*LIBRA_MODEL_PRICE"):
        LLM(config=LLMConfig(model="acme-proxy-1"), client=object())
    monkeypatch.setenv("LIBRA_MODEL_PRICE", "4,20")
    LLM(config=LLMConfig(model="acme-proxy-1"), client=object())
    assert cost_usd("acme-proxy-1", Usage(1_000_000, 1_000_000)) == pytest.approx(24.0)
    monkeypatch.setenv("LIBRA_MODEL_PRICE", "four")
    with pytest.raises(UnknownModelPrice, match="LIBRA_MODEL_PRICE='four'"):
        cost_usd("acme-proxy-1", Usage(1, 1))
