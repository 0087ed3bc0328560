"""Proactivity reward models: data, ProactiveBench measures, training, artefacts, LLM judge, agent scoring."""

from __future__ import annotations

import os
import json
import random
import zipfile

import anthropic
import numpy as np
import pytest
from typer.testing import CliRunner

from libra.cli.main import app
from metrics.llm.fake import FakeAnthropic
from metrics.llm.client import LLM, LLMConfig
from pipa.proactive import artefacts
from pipa.proactive.data import Event, Proposal, category, data_hash, from_record, from_store, load_jsonl
from pipa.proactive.evaluate import agent_metrics, cross_validate, reward_model_metrics
from pipa.proactive.reward import EmbeddingRewardModel, LLMRewardModel
from traces.ingest import ingest

TOPICS = {
    "python": (["The user opens 'report.py' in the editor.", "The user types a pandas read_csv call.",
                "The user runs the script and a KeyError traceback appears."],
               ["Explain the KeyError and suggest a fix for the column name.",
                "Offer to check the CSV column names that read_csv loaded."]),
    "essay": (["The user opens a document titled 'Climate essay'.", "The user writes the introduction.",
               "The user searches for statistics on sea level rise."],
              ["Find recent sea level rise statistics with sources.",
               "Suggest a structure for the essay's argument on climate."]),
}
OFF_TOPIC = ["Recommend a new music playlist.", "Offer to book a restaurant for tonight.",
             "Suggest buying a new keyboard."]
IDLE = "The user scrolls slowly through their email inbox."


def synthetic(n_streams: int = 12, seed: int = 0) -> list[dict]:
    """Proposals relevant to what the user does are accepted, unrelated ones rejected;
    silence is right while the user idles and wrong after an error."""
    rng = random.Random(seed)
    rows = []
    for s in range(n_streams):
        topic = list(TOPICS)[s % 2]
        events, good = TOPICS[topic]
        obs = [{"time": f"Day {s}, 10:0{i}", "event": e + (f" (session {s})" if i == 0 else "")}
               for i, e in enumerate(events)]
        for task in good:
            rows.append({"obs": obs, "pred_task": task, "valid": True, "help_needed": True,
                         "annotation": [True, True, rng.random() < 0.8], "category": "Correct-Detection (CD)"})
        for task in rng.sample(OFF_TOPIC, 2):
            rows.append({"obs": obs, "pred_task": task, "valid": False, "help_needed": True,
                         "annotation": [False, False, rng.random() < 0.2], "category": "False-Alarm (FA)"})
        rows.append({"obs": obs[:1] + [{"time": "later", "event": IDLE}], "pred_task": None, "valid": True,
                     "help_needed": False, "annotation": [True, True], "category": "Correct-Rejection (CR)"})
        rows.append({"obs": obs, "pred_task": None, "valid": False, "help_needed": True,
                     "annotation": [False, False], "category": "Missed-Need (MN)"})
    return rows


@pytest.fixture
def train_file(tmp_path):
    p = tmp_path / "train_data.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in synthetic()) + "\n")
    return p



def test_proposals_load_with_categories_and_errors_name_the_line(train_file, tmp_path):
    ps = load_jsonl(train_file)
    assert len(ps) == 12 * 6
    assert {p.category for p in ps} == {"Correct-Detection (CD)", "False-Alarm (FA)", "Correct-Rejection (CR)",
                                        "Missed-Need (MN)"}
    assert all(p.category == r["category"] for p, r in zip(ps, synthetic(), strict=True))
    assert ps[0].majority is True and ps[0].source == "train_data.jsonl:1"
    assert category(silent=True, valid=False) == "Missed-Need (MN)"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(synthetic()[0]) + "\n" + json.dumps({"pred_task": None}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        load_jsonl(bad)
    assert data_hash(ps) == data_hash(load_jsonl(train_file)) != data_hash(ps[:-1])


def test_store_round_trip_keeps_labels(train_file, mem_store):
    ingest(mem_store, [train_file])
    stored = from_store(mem_store)
    assert len(stored) == 72
    direct = {(tuple(e.text for e in p.events), p.task): (p.valid, p.judgements, p.help_needed)
              for p in load_jsonl(train_file)}
    for p in stored:
        assert direct[(tuple(e.text for e in p.events), p.task)] == (p.valid, p.judgements, p.help_needed)


def test_measures_follow_proactivebench():
    ev = (Event(None, "x"),)
    ps = [Proposal(ev, "a", valid=True), Proposal(ev, "b", valid=False), Proposal(ev, None, valid=True),
          Proposal(ev, None, valid=False), Proposal(ev, "c", valid=True)]
    m = reward_model_metrics(ps, [True, True, False, False, False])
    assert m["confusion"] == {"tp": 1, "fp": 1, "fn": 2, "tn": 1}
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(1 / 3) and m["accuracy"] == 0.4
    assert m["categories"]["Correct-Detection (CD)"] == {"n": 2, "agreement": 0.5}
    assert m["categories"]["Missed-Need (MN)"]["agreement"] == 1.0
    a = agent_metrics(ps, [True, False, True, False, True])  # reward model verdict per decision
    assert (a["tp"], a["fp"], a["tn"], a["fn"]) == (2, 1, 1, 1)
    assert a["false_alarm"] == pytest.approx(1 - a["precision"]) == pytest.approx(1 / 3)


def test_embedding_reward_model_learns_relevance_under_grouped_cv(train_file, embedder):
    ps = load_jsonl(train_file)
    cv = cross_validate(lambda: EmbeddingRewardModel(embedder=embedder), ps, n_splits=4)
    assert cv["pooled"]["accuracy"] >= 0.85, cv["pooled"]
    assert cv["pooled"]["f1"] > cv["accept_all"]["f1"] + 0.2
    assert cv["pooled"]["categories"]["False-Alarm (FA)"]["agreement"] >= 0.8


def test_silences_learn_the_need_from_every_labelled_context(embedder):
    """People mark whether help was needed on proposals too. Trained on silences that were
    all right, only that label can teach the model that silence after an error misses a need."""
    rows = synthetic()
    for r in [r for r in rows if r["category"] == "Correct-Rejection (CR)"]:  # the idle moments get proposals too
        rows.append({**r, "pred_task": OFF_TOPIC[0], "valid": False, "help_needed": False,
                     "annotation": [False, False, False], "category": "False-Alarm (FA)"})
    ps = [from_record(r) for r in rows]
    train = [p for i, p in enumerate(ps) if not (p.silent and p.valid is False) and i % 2 == 0]
    held = [p for p in ps if p.silent]
    assert {p.category for p in train if p.silent} == {"Correct-Rejection (CR)"}

    def agreement(model):
        m = reward_model_metrics(held, model.fit(train).predict(held))["categories"]
        return m["Missed-Need (MN)"]["agreement"], m["Correct-Rejection (CR)"]["agreement"]

    assert agreement(EmbeddingRewardModel(embedder=embedder, learn_need=False)) == (0.0, 1.0)
    missed, rejected = agreement(EmbeddingRewardModel(embedder=embedder))
    assert missed >= 0.9 and rejected >= 0.9


def test_artefacts_are_versioned_and_predict_the_same_after_loading(train_file, store, embedder, tmp_path,
                                                                    monkeypatch):
    ps = load_jsonl(train_file)
    model = EmbeddingRewardModel(embedder=embedder).fit(ps)
    m1 = artefacts.save(store, model, "rm", data_hash=data_hash(ps), metrics={"note": 1}, root=tmp_path / "m")
    m2 = artefacts.save(store, model, "rm", data_hash=data_hash(ps), root=tmp_path / "m")
    assert (m1["version"], m2["version"]) == (1, 2) and m1["data_hash"] == data_hash(ps)
    assert json.loads((tmp_path / "m" / "rm" / "v1" / "manifest.json").read_text())["metrics"] == {"note": 1}
    loaded = artefacts.load(store, "rm", 1, embedder=embedder)
    assert loaded.model_id_ == "rm@v1"
    np.testing.assert_allclose(loaded.predict_proba(ps), model.predict_proba(ps))
    assert artefacts.load(store, "rm", embedder=embedder).model_id_ == "rm@v2"
    assert list(artefacts.list_models(store)["model_id"]) == ["rm@v1", "rm@v2"]
    # a machine without the training disk (a worker on a lake) unpacks the model from the store
    import shutil

    shutil.rmtree(tmp_path / "m")
    elsewhere = tmp_path / "other-machine"
    monkeypatch.setenv("LIBRA_MODELS_DIR", str(elsewhere))
    again = artefacts.load(store, "rm", 1, embedder=embedder)
    np.testing.assert_allclose(again.predict_proba(ps), model.predict_proba(ps))
    assert (elsewhere / "rm" / "v1" / "model.json").exists()
    with pytest.raises(KeyError, match="no reward model"):
        artefacts.load(store, "missing")


def _archive(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _plant(store, model_id: str, name: str, archive: bytes, path: str) -> None:
    """What anyone who can write one row of a shared store could leave there."""
    import hashlib

    store.execute("INSERT INTO model_files VALUES (?, ?, ?, ?)",
                  [model_id, archive, hashlib.sha256(archive).hexdigest(), len(archive)])
    store.execute("INSERT INTO reward_models VALUES (?, ?, 1, 'embedding-lr', 'x', '{}', '{}', ?, now())",
                  [model_id, name, path])


def test_a_stored_model_runs_no_code_and_stays_in_its_folder(store, tmp_path, monkeypatch):
    import pickle

    monkeypatch.setenv("LIBRA_MODELS_DIR", str(tmp_path / "models"))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _plant(store, "evil@v1", "evil", _archive({"model.pkl": pickle.dumps(Payload()),
                                              "manifest.json": b"{}"}), str(tmp_path / "nowhere"))
    with pytest.raises(artefacts.UnsafeArtefact, match="not part of a Libra model"):
        artefacts.load(store, "evil")
    assert not marker.exists(), "the pickle ran"
    # an archive that tries to write outside its folder, or holds code, is not unpacked
    _plant(store, "escape@v1", "escape", _archive({"../../outside.json": b"{}", "model.json": b"{}"}),
           str(tmp_path / "nowhere2"))
    with pytest.raises(artefacts.UnsafeArtefact):
        artefacts.load(store, "escape")
    assert not (tmp_path / "outside.json").exists() and not (tmp_path / "models" / "outside.json").exists()
    # names that become paths
    for bad in ("../x", "a/b", "..", ".hidden", ""):
        with pytest.raises(artefacts.UnsafeArtefact):
            artefacts.load(store, bad)
    _plant(store, "../up@v1", "../up", _archive({"model.json": b"{}"}), str(tmp_path / "nowhere3"))
    with pytest.raises(artefacts.UnsafeArtefact):
        artefacts.load(store, "../up")
    # a model of an unknown kind is refused with a clear error
    state = b'{"params": {}, "threshold_": 0.5, "n_train_": 1, "classifiers_": {"all": {"kind": "exec"}}}'
    _plant(store, "odd@v1", "odd", _archive({"model.json": state}), str(tmp_path / "nowhere4"))
    with pytest.raises(artefacts.UnsafeArtefact, match="unknown classifier kind"):
        artefacts.load(store, "odd")


def test_llm_reward_model_through_the_fake_api(train_file, mem_store):
    ps = load_jsonl(train_file)

    def respond(req):
        text = req["messages"][0]["content"]
        proposal = text.split("<data-proposal", 1)[1]
        return {"accept": not any(o in proposal for o in OFF_TOPIC), "reason": "scripted"}

    with FakeAnthropic(responder=respond) as fake:
        client = anthropic.Anthropic(api_key="k", base_url=fake.base_url, max_retries=0)
        model = LLMRewardModel(LLM(mem_store, LLMConfig(max_tokens=200), client=client)).fit(ps)
        fake.inject("500", times=1)
        prob = model.predict_proba(ps[:10])
        assert np.isnan(prob).sum() == 1 and len(model.errors_) == 1
        req = fake.requests[-1]
        assert "People's verdict" in req["system"][-1]["text"] and req["system"][-1]["cache_control"]
        assert "<data-events" in req["messages"][0]["content"]
    proposals = [p for p, v in zip(ps[:10], prob, strict=True) if v == v]
    m = reward_model_metrics(proposals, [v >= 0.5 for v in prob if v == v])
    assert m["categories"]["False-Alarm (FA)"]["agreement"] == 1.0


def stream_zip(path, agents: dict[str, list]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for agent, responses in agents.items():
            events = TOPICS["python"][0]
            items = [{"observation": {"time": str(i), "event": e}, "agent_response": {"candidate_task": r}}
                     for i, (e, r) in enumerate(zip(events, responses, strict=True))]
            z.writestr(f"eval/traces/{agent}/code_1.json", json.dumps(items))


def test_cli_trains_then_scores_agents_as_proactivebench_counts(train_file, tmp_path, location):
    db = location
    runner = CliRunner()
    env = {"LIBRA_MODELS_DIR": str(tmp_path / "models")}
    r = runner.invoke(app, ["proactive", "train", str(train_file), "--db", db, "-q", "--folds", "3"], env=env)
    assert r.exit_code == 0, r.output
    assert "proactive-reward@v1" in r.output and "agreement False-Alarm" in r.output
    traces = tmp_path / "eval_traces.zip"
    stream_zip(traces, {"helpful": [[], [], ["Explain the KeyError and suggest a fix for the column name."]],
                        "noisy": [OFF_TOPIC[:1], OFF_TOPIC[1:2], []]})
    assert runner.invoke(app, ["ingest", "-q", "--db", db, str(traces)]).exit_code == 0
    r = runner.invoke(app, ["proactive", "score", "--db", db, "-q"], env=env)
    assert r.exit_code == 0, r.output
    assert "2 streams scored" in r.output and "false alarm" in r.output
    from pipa.proactive.scoring import agent_report
    from traces.store import Store

    rep = agent_report(Store(db), "proactivity-proactive-reward-v1").set_index("agent")
    assert rep.loc["noisy", "fp"] == 2 and rep.loc["noisy", "fn"] == 1
    assert rep.loc["helpful", "tp"] == 1 and rep.loc["helpful", "precision"] == 1.0
    assert rep.loc["noisy", "false_alarm"] == 1.0
    again = runner.invoke(app, ["proactive", "score", "--db", db, "-q"], env=env)
    assert "0 streams scored" in again.output

    # evaluation: refused without labels; on the training file itself it is not called held out
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "valid"}) + "\n"
                                  for r in synthetic(4, seed=9)))
    r = runner.invoke(app, ["proactive", "eval", str(unlabelled), "--db", db], env=env)
    assert r.exit_code != 0 and "carry no label" in r.output
    r = runner.invoke(app, ["proactive", "eval", str(train_file), "--db", db, "--against", str(train_file)],
                      env={**env, "COLUMNS": "200"})
    assert r.exit_code == 0 and "NOT held out" in r.output, r.output
    fresh = tmp_path / "fresh.jsonl"
    unseen = [{**r, "obs": [{**e, "event": e["event"] + " (another session)"} for e in r["obs"]]}
              for r in synthetic(4, seed=11)]  # the same kinds of moment, in contexts training never saw
    fresh.write_text("".join(json.dumps(r) + "\n" for r in unseen))
    r = runner.invoke(app, ["proactive", "eval", str(fresh), "--db", db, "--against", str(train_file)],
                      env={**env, "COLUMNS": "200"})
    assert r.exit_code == 0 and "(held out)" in r.output, r.output
    # unlabelled records scored one by one
    scored = tmp_path / "p.jsonl"
    r = runner.invoke(app, ["proactive", "score", "--db", db, "--records", str(unlabelled), "--out", str(scored)],
                      env=env)
    assert r.exit_code == 0, r.output
    verdicts = [json.loads(x) for x in scored.read_text().splitlines()]
    assert len(verdicts) == len(synthetic(4, seed=9)) and all(v["label"] is None for v in verdicts)
    assert all(0 <= v["p_accept"] <= 1 and isinstance(v["accept"], bool) for v in verdicts)


@pytest.mark.shared
@pytest.mark.slow
def test_reward_model_on_proactivebench_beats_accepting_everything(shared, mem_store):
    from metrics.embeddings import default_embedder

    embedder = default_embedder(mem_store)  # cached by content: each fold re-embeds the same texts
    ps = load_jsonl(shared / "proactivebench" / "reward_data" / "train_data.jsonl")
    assert len(ps) == 1629
    cv = cross_validate(lambda: EmbeddingRewardModel(embedder=embedder), ps, n_splits=4)
    assert cv["pooled"]["accuracy"] >= 0.60 > cv["accept_all"]["accuracy"]
    assert cv["pooled"]["f1"] > cv["accept_all"]["f1"]
    assert cv["pooled"]["categories"]["False-Alarm (FA)"]["agreement"] >= 0.6


def test_fine_tuned_reward_model_trains_saves_and_reloads(train_file, store, tmp_path):
    from pipa.proactive.reward import FineTunedRewardModel

    ps = load_jsonl(train_file)
    steps = []
    model = FineTunedRewardModel(epochs=1, batch_size=24, max_length=64, progress=lambda d, t: steps.append((d, t)))
    model.fit(ps)
    assert steps[-1] == (3, 3)  # 72 examples, batches of 24, one epoch
    before = model.predict_proba(ps[:8])
    assert before.shape == (8,) and ((before > 0) & (before < 1)).all()
    artefacts.save(store, model, "ft", data_hash=data_hash(ps), root=tmp_path / "m")
    again = artefacts.load(store, "ft")
    np.testing.assert_allclose(again.predict_proba(ps[:8]), before, rtol=1e-4, atol=1e-5)


def test_annotator_agreement_is_each_person_against_the_others():
    ev = (Event(None, "The user opens a file."),)
    ps = [Proposal(ev, "a", judgements=(True, True, False)),     # 3rd dissents; 1st and 2nd face a tie
          Proposal(ev, "b", judgements=(True, True, True)),       # all agree: 3 true positives
          Proposal(ev, "c", judgements=(False, False, False, True)),  # 4th dissents against 3
          Proposal(ev, None, judgements=(True, False))]            # two verdicts: not counted
    from pipa.proactive.evaluate import annotator_agreement

    got = annotator_agreement(ps)
    # a: person 3 says no where the others said yes (fn); b: 3 tp; c: 3 tn, and person 4 a fp
    assert got["n"] == 1 + 3 + 4
    assert got["accuracy"] == pytest.approx(6 / 8) and got["precision"] == pytest.approx(3 / 4)
    assert got["recall"] == pytest.approx(3 / 4)
    assert annotator_agreement(ps[3:]) is None
