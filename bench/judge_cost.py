"""Billed tokens for judging R runs on M metrics, through the local fake Messages API.

(a) one call per run and metric, no prompt caching: how most evaluation tools judge;
(b) Libra: one call per run for all metrics, the instructions and rubric in a cached prefix.

    python bench/judge_cost.py --runs 50 --metrics 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anthropic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.definitions import Example, Metric, MetricSet  # noqa: E402
from metrics.llm.fake import FakeAnthropic, verdicts_responder  # noqa: E402
from metrics.judges.llm import LLMJudge, judge_request, judge_schema  # noqa: E402
from metrics.judges.base import RunView
from metrics.llm.budget import Usage, cost_usd  # noqa: E402
from metrics.llm.client import LLM, LLMConfig  # noqa: E402
from libra.demo import generate_runs  # noqa: E402

TOPICS = ["tool error recovery", "confirmation before irreversible actions", "respecting user constraints",
          "grounding claims in tool results", "asking clarifying questions", "concise communication",
          "avoiding redundant calls", "policy adherence", "handling ambiguity", "summarising outcomes",
          "escalating when stuck", "privacy of user data"]


def metric_set(m: int) -> MetricSet:
    metrics = []
    for i in range(m):
        t = TOPICS[i % len(TOPICS)]
        metrics.append(Metric(
            f"m{i}", t.capitalize(),
            f"Whether the agent handles {t} the way careful human reviewers expect. " * 3,
            good=tuple(Example(f"Good {t}: example behaviour number {k} that reviewers praised in detail.")
                       for k in range(4)),
            bad=tuple(Example(f"Bad {t}: example behaviour number {k} that reviewers criticised in detail.")
                      for k in range(4))))
    return MetricSet("bench", 1, "bench", tuple(metrics))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--metrics", type=int, default=8)
    args = ap.parse_args()
    runs = [RunView.of(r) for r in generate_runs(args.runs, seed=5, with_feedback=False)]
    full = metric_set(args.metrics)
    cfg = LLMConfig(max_tokens=1024, concurrency=1)
    rows = {}
    with FakeAnthropic(responder=verdicts_responder()) as fake:
        client = anthropic.Anthropic(api_key="bench", base_url=fake.base_url, max_retries=2)
        # (a) per run and metric, no caching
        llm = LLM(None, cfg, client=client)
        for v in runs:
            for m in full.metrics:
                one = MetricSet("one", 1, "one", (m,))
                r = judge_request(v, one, judge_schema(one))
                llm.call(type(r)(**{**r.__dict__, "cache_prefix": False}))
        rows["(a) per run x metric, uncached"] = fake.billed_tokens()
        fake.reset()
        # (b) Libra: per run, all metrics, cached rubric
        LLMJudge(LLM(None, cfg, client=client)).judge(runs, full)
        rows["(b) Libra: per run, cached rubric"] = fake.billed_tokens()
    model = cfg.model

    def billed_input(t):  # input-token equivalents at the API's prices
        return t["input_tokens"] + 1.25 * t["cache_creation_input_tokens"] + 0.1 * t["cache_read_input_tokens"]

    print(f"R = {args.runs} runs, M = {args.metrics} metrics, model {model} prices\n")
    print(f"{'strategy':<36}{'calls':>7}{'input':>11}{'cache write':>13}{'cache read':>12}"
          f"{'billed input':>14}{'output':>9}{'cost $':>10}")
    for name, t in rows.items():
        u = Usage(t["input_tokens"], t["output_tokens"], t["cache_creation_input_tokens"], t["cache_read_input_tokens"])
        print(f"{name:<36}{t['calls']:>7}{t['input_tokens']:>11,}{t['cache_creation_input_tokens']:>13,}"
              f"{t['cache_read_input_tokens']:>12,}{billed_input(t):>14,.0f}{t['output_tokens']:>9,}"
              f"{cost_usd(model, u):>10.3f}")
    a, b = (billed_input(t) for t in rows.values())
    print(f"\nbilled input (b)/(a) = {b / a:.4f}   goal <= 1/M = {1 / args.metrics:.4f}   "
          f"{'met' if b / a <= 1 / args.metrics else 'NOT met'}")


if __name__ == "__main__":
    main()
