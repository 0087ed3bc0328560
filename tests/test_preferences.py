"""Pairwise preferences: a pairwise queue, people's choices and reasons, the Bradley–Terry ranking
beside the metric one, agreement, and an offline and an LLM pairwise judge against people."""

from __future__ import annotations

import json
import random
import re

import pytest
from typer.testing import CliRunner

import libra
from libra import accounts
from libra.demo import TRAITS, build_demo, latent_traits
from metrics import sets
from metrics.definitions import Metric, MetricSet
from metrics.judges.recorded import RecordedJudge
from metrics.llm.fake import FakeAnthropic
from metrics.preferences import bradley_terry
from metrics.scoring import score_runs
from traces.annotation import feedback, queues
from traces.store import Store

V1, V2 = "travel-concierge@v1", "travel-concierge@v2"
PEOPLE = ("alice", "bao", "chidi")


def _person_choice(traits_a: dict, traits_b: dict, rng: random.Random, flip: float) -> str:
    """A person prefers the run whose behaviours went better on the whole, and sometimes errs."""
    sa, sb = sum(traits_a.values()), sum(traits_b.values())
    choice = "a" if sa > sb else "b" if sb > sa else "tie"
    if rng.random() < flip:
        choice = rng.choice([c for c in ("a", "b", "tie") if c != choice])
    return choice


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("prefs") / "p.duckdb")
    build_demo(store, n=320, seed=9, suite=30)
    for who in ("admin", *PEOPLE):
        accounts.add_user(store, who, "a password", "admin" if who == "admin" else "annotator")
    traits = latent_traits(store)
    ms = sets.save(store, MetricSet("traits", 1, "Behaviours", tuple(Metric(t, t, f"{t}?") for t in TRAITS)),
                   approved_by="admin")
    score_runs(store, ms, RecordedJudge(traits))
    qid = libra.preferences.pairwise_queue(store, "v1 against v2", "admin", agents=[V1, V2], pairs=40, k=2)
    rng = random.Random(0)
    with store.hold():
        _label(store, qid, traits, rng)
    return store, qid, traits


def _label(store: Store, qid: str, traits: dict, rng: random.Random) -> None:
    for person in PEOPLE:
        while (item := queues.next_run(store, qid, person)) is not None:
            a, b = queues.pair(store, qid, item)
            choice = _person_choice(traits[a], traits[b], rng, flip=0.15)
            side = b if choice == "b" else a
            # a reason on every third choice: enough to follow them into notes, fewer journal writes
            done = len(libra.preferences.load(store, queue_id=qid))
            reason = "" if done % 3 else \
                "confirmed before booking" if traits[side].get("confirmation") == 1 else "clearer final summary"
            libra.preferences.record(store, a, b, person, choice, reason, steps_b=[1] if choice == "b" else [],
                                     queue_id=qid)


def test_a_pairwise_queue_holds_same_task_pairs_of_the_two_releases_each_for_k_people(labelled):
    store, qid, _ = labelled
    rows = store.df("SELECT p.run_a, p.run_b, ra.agent AS aa, rb.agent AS ab, ra.task = rb.task AS same "
                    "FROM queue_pairs p JOIN runs ra ON ra.run_id = p.run_a JOIN runs rb ON rb.run_id = p.run_b "
                    "WHERE p.queue_id = ?", [qid])
    assert 10 <= len(rows) <= 40 and rows["same"].all()
    assert all({a, b} == {V1, V2} for a, b in zip(rows["aa"], rows["ab"], strict=True))
    assert 0 < (rows["aa"] == V1).mean() < 1  # sides shuffled: v1 is not always on the left
    prog = queues.progress(store, qid)
    assert prog["done"] == prog["slots"] == 2 * len(rows)
    prefs = libra.preferences.load(store, queue_id=qid)
    assert len(prefs) == prog["done"] and prefs.groupby("pair_id")["author"].nunique().eq(2).all()


def test_reasons_become_notes_on_the_run_they_speak_for_and_reach_induction(labelled):
    store, qid, _ = labelled
    prefs = libra.preferences.load(store, queue_id=qid)
    notes = {f.feedback_id: f for f in feedback.load(store) if (f.metadata or {}).get("preference")}
    assert len(notes) == prefs["reason"].notna().sum()
    for r in prefs[prefs["reason"].notna()].itertuples():
        note = next(n for n in notes.values() if n.metadata["preference"] == r.pref_id)
        assert note.run_id == (r.run_b if r.choice == "b" else r.run_a)
        assert note.text == r.reason and note.author == r.author


def test_bradley_terry_ranks_the_better_release_first_with_intervals_beside_the_metric_ranking(labelled):
    store, qid, _ = labelled
    df = libra.preferences.rank(store, queue_id=qid)
    assert list(df["agent"]) == [V2, V1]
    assert (df["lo"] <= df["strength"]).all() and (df["strength"] <= df["hi"]).all()
    assert df.iloc[0]["lo"] > df.iloc[1]["hi"]  # clearly apart on 80 labels
    assert list(df["metric_rank"]) == [1, 2]  # the metric set agrees on the order
    # choix recovers the strengths a known model generated
    rng = random.Random(1)
    true = {"x": 1.0, "y": 0.0, "z": -1.0}
    rows = []
    for _ in range(3000):
        a, b = rng.sample(sorted(true), 2)
        p = 1 / (1 + pow(2.718281828, true[b] - true[a]))
        rows.append({"agent_a": a, "agent_b": b, "choice": "a" if rng.random() < p else "b"})
    import pandas as pd

    fit = bradley_terry(pd.DataFrame(rows), resamples=50).set_index("item")["strength"]
    assert fit["x"] == pytest.approx(1.0, abs=0.15) and fit["z"] == pytest.approx(-1.0, abs=0.15)


def test_agreement_of_people_and_of_the_offline_judge_beside_it(labelled):
    store, qid, _ = labelled
    a = libra.preferences.agreement(store, queue_id=qid)
    assert a.pairs > 10 and a.comparisons == a.pairs  # two people per pair
    assert 0.55 < a.rate < 0.95 and a.alpha is not None and a.alpha > 0.2
    j = libra.preferences.judge(store, backend="offline", queue_id=qid, set_id="traits")
    f = j.figures
    assert j.backend == "offline-metrics" and f["pairs_judged"] == a.pairs and f["errors"] == 0
    assert f["people_vs_people"] == pytest.approx(a.rate)
    # a judge reading what the behaviours were agrees with people more than a judge that reads nothing
    assert f["judge_vs_people"] > f["always_left_vs_people"] + 0.15


def test_the_llm_pairwise_judge_sends_both_runs_as_data_and_survives_faults(labelled, monkeypatch):
    store, qid, traits = labelled

    def model(request: dict) -> dict:
        text = json.dumps(request["messages"])
        blocks = re.findall(r"<(data-run-[ab]-[0-9a-f]+)>", text)
        assert len(blocks) == 2  # both runs, each in its own delimited block
        a, b = (text.split("Run B")[0], text.split("Run B")[1])
        # a stand-in model: the run with fewer failed tool calls did better
        ea, eb = a.count('is_error\\\\": true'), b.count('is_error\\\\": true')
        return {"choice": "a" if ea < eb else "b" if eb < ea else "tie", "reason": "fewer failed calls"}

    with FakeAnthropic(responder=model) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        fake.inject("overloaded", times=2, retry_after=0)
        j = libra.preferences.judge(store, backend="llm", queue_id=qid)
        assert j.backend == "llm" and j.figures["errors"] == 0
        assert j.figures["pairs_judged"] == libra.preferences.agreement(store, queue_id=qid).pairs
        assert {v.reason for v in j.verdicts} == {"fewer failed calls"}
        assert 0 <= j.figures["judge_vs_people"] <= 1


def test_cli_rank_and_agreement(labelled):
    from libra.cli.main import app

    store, qid, _ = labelled
    r = CliRunner().invoke(app, ["prefs", "rank", "--db", store.path, "--queue", qid, "--json"])
    assert r.exit_code == 0, r.output
    assert [x["agent"] for x in json.loads(r.stdout)] == [V2, V1]
    r = CliRunner().invoke(app, ["prefs", "agreement", "--db", store.path, "--queue", qid, "--backend", "offline"])
    assert r.exit_code == 0, r.output
    assert "people with each other" in r.output and "always the left run" in r.output


def test_the_pairwise_page_shows_two_runs_and_saves_a_choice(labelled, page_test):
    store, _, _ = labelled
    pairs = libra.preferences.load(store)[["run_a", "run_b"]].head(3).itertuples(index=False)
    qid = queues.create_pairwise(store, "one more round", "admin", [tuple(p) for p in pairs], k=1)
    item = queues.next_run(store, qid, "alice")
    at = page_test("prefer", store, "alice", pair_queue=qid, pair_item=item).run()
    assert not at.exception
    assert [h.value for h in at.subheader][:2] == ["Run A", "Run B"]
    at.radio(key=f"pref-choice-{item}").set_value("tie")
    at.text_area(key=f"pref-reason-{item}").input("<b>both</b> fine")
    at.button[0].click().run()
    assert not at.exception
    got = libra.preferences.load(store, queue_id=qid)
    assert list(got["choice"]) == ["tie"] and list(got["reason"]) == ["<b>both</b> fine"]
    assert at.session_state["pair_item"] != item


def test_the_offline_pairwise_judge_learns_which_metric_people_weigh_on_tasks_it_did_not_see(labelled):
    """People here decide by one behaviour only. The net verdict weighs every metric alike and so misses
    it; fitted on other tasks' preferences, the judge finds it, and whichever side a run is shown on,
    its answer is the same."""
    from metrics.preferences import MetricPairJudge, judge_agreement

    store, qid, traits = labelled
    prefs = libra.preferences.load(store, queue_id=qid)

    def by_confirmation(a: str, b: str) -> str:
        ca, cb = traits[a].get("confirmation", 0), traits[b].get("confirmation", 0)
        return "a" if ca > cb else "b" if cb > ca else "tie"

    prefs["choice"] = [by_confirmation(a, b) for a, b in zip(prefs["run_a"], prefs["run_b"], strict=True)]
    tasks = sorted(prefs["task"].unique())
    train, test = prefs[prefs["task"].isin(tasks[0::2])], prefs[prefs["task"].isin(tasks[1::2])]
    pairs = list(dict.fromkeys(zip(test["run_a"], test["run_b"], strict=True)))
    j = MetricPairJudge(store, "traits", 1)
    net = judge_agreement(test, j.judge(pairs))["judge_vs_people"]
    fitted = j.fit(train).judge(pairs)
    assert j.model_ is not None and j.labels_ == len(train)
    got = judge_agreement(test, fitted)["judge_vs_people"]
    assert got >= 0.9 and got > net + 0.2, (got, net)
    swapped = {v.pair_id: v.choice for v in j.judge([(b, a) for a, b in pairs])}
    flip = {"a": "b", "b": "a", "tie": "tie"}
    assert all(swapped[v.pair_id] == flip[v.choice] for v in fitted)
    # too few labels to learn from: it stays on the net verdict rather than fit noise
    assert j.fit(train.head(MetricPairJudge.MIN_LABELS - 1)).model_ is None
    assert [v.choice for v in j.judge(pairs)] == [v.choice for v in MetricPairJudge(store, "traits", 1).judge(pairs)]
    # the library's figure is cross-fitted by task: every pair judged by a judge that never saw its task
    figures = libra.preferences.judge(store, backend="offline", queue_id=qid, set_id="traits").figures
    assert figures["folds"] >= 2 and figures["errors"] == 0
