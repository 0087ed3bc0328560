"""The parts of metric induction, each on its own data: facets, the sign of a remark, offline names,
people's scores per metric, cluster merging, and the judge trained on the steps people pointed at."""

from __future__ import annotations

import numpy as np

from autolibra.aspects import Aspect
from autolibra.grounding import OfflineGrounder
from autolibra.induce import InduceConfig
from autolibra.locator import StepLocator
from autolibra.naming import OfflineNamer
from autolibra.signs import detect_sign
from metrics.definitions import Example, Metric, MetricSet
from metrics.judges.trained import TrainedJudge
from traces.model import Step, StepKind


def test_split_mixed_and_facet_labels():
    from autolibra.facets import split_mixed, with_facets

    labels, facets = split_mixed(np.array([0, 0, 0, 0, 1, 1, -1]), np.array([1, 1, -1, -1, 1, -1, 1]), 2)
    assert labels.tolist() == [0, 0, 2, 2, 1, 1, -1]  # cluster 1 has one of each: too few to split
    assert facets == {0: ("praise", 2), 2: ("criticism", 0)}
    ms = MetricSet("s", 0, "s", (Metric("p", "P", "", metadata={"sibling": "c"}),
                                 Metric("c", "C", "", metadata={"sibling": "p"}), Metric("x", "X", "")))
    got = with_facets({("r1", "p"): 1, ("r2", "c"): -1, ("r3", "p"): 1, ("r3", "c"): -1, ("r4", "x"): -1}, ms)
    assert got == {("r1", "p"): 1, ("r1", "c"): 1, ("r2", "c"): -1, ("r2", "p"): -1,
                   ("r3", "p"): 1, ("r3", "c"): -1, ("r4", "x"): -1}


def test_a_topic_people_both_praise_and_criticise_becomes_two_facets_that_cover_both(embedder):
    """On half the runs one person praises the agent's manners and another criticises them:
    one metric can give those runs only one verdict; its two facets can give both."""
    from autolibra.evaluation import OfflineMatcher
    from autolibra.induce import build_candidate
    from traces.model import Run

    polite = "The assistant thanked the customer warmly and closed the conversation politely."
    rude = "The assistant interrupted the customer and ignored the question about the refund."
    runs, aspects = {}, []
    for i in range(40):
        mixed = i % 2 == 0
        steps = (Step(kind=StepKind.USER, content="I want a refund for my order."),
                 Step(kind=StepKind.AGENT, content=rude if mixed else polite))
        runs[f"r{i}"] = Run(f"r{i}", "test", "test", steps)
        remarks = [("The agent was courteous and polite with the customer.", 1)]
        if mixed:
            remarks.append(("The agent was impolite and dismissive with the customer.", -1))
        for k, (text, sign) in enumerate(remarks):
            aspects.append(Aspect(f"a{i}.{k}", f"f{i}.{k}", f"r{i}", 0, text, text, sign,
                                  metadata={"topic": "courtesy toward the customer"}))
    train = [a for a in aspects if int(a.run_id[1:]) < 28]
    held = [a for a in aspects if int(a.run_id[1:]) >= 28]
    X = embedder.embed([a.metadata["topic"] for a in train])  # noqa: N806
    judges = []

    def judge():
        judges.append(TrainedJudge(embedder, min_labels=2))
        return judges[-1]

    def candidate(split):
        return build_candidate({"min_cluster_size": 4, "split_mixed": split}, train, X, held, runs, InduceConfig(),
                               OfflineNamer(), embedder, judge, lambda: OfflineMatcher(embedder), "t",
                               labels=np.zeros(len(train), dtype=int))

    one, two = candidate(False), candidate(True)
    assert len(one.metric_set.metrics) == 1 and len(two.metric_set.metrics) == 2
    praise, criticism = sorted(two.metric_set.metrics, key=lambda m: m.metadata["facet"], reverse=True)
    assert (praise.metadata["facet"], criticism.metadata["facet"]) == ("praise", "criticism")
    assert praise.metadata["sibling"] == criticism.metric_id and criticism.metadata["sibling"] == praise.metric_id
    assert criticism.name in praise.explanation and not criticism.good and not praise.bad
    # the criticism facet learns +1 where people only praised: its score over runs is not a constant
    counts = judges[-1].label_counts_[criticism.metric_id]
    assert counts[-1] == 14 and counts[1] == 14
    assert one.heldout.coverage <= 0.7 < 0.9 <= two.heldout.coverage


def test_choose_balances_or_takes_the_most_coverage_within_a_redundancy():
    from autolibra.evaluation import MetaEval
    from autolibra.induce import Candidate, choose_candidate

    def cand(coverage, redundancy, n=3):
        ev = MetaEval(coverage, redundancy, redundancy, 10, 0, 10, 0, 10)
        ms = MetricSet("s", 0, "s", tuple(Metric(f"m{i}", f"M{i}", "") for i in range(n)))
        return Candidate({"c": coverage}, ms, ev, ev, np.zeros(1), None)

    cs = [cand(0.60, 0.50), cand(0.70, 0.65), cand(0.80, 0.90), cand(0.55, 0.60)]  # the last is dominated
    assert choose_candidate(cs).params == {"c": 0.60}  # best coverage minus redundancy
    assert choose_candidate(cs, max_redundancy=0.85).params == {"c": 0.70}
    assert choose_candidate(cs, max_redundancy=0.95).params == {"c": 0.80}
    assert choose_candidate(cs, max_redundancy=0.1).params == {"c": 0.60}  # nothing that tight: the balance again


def test_the_sign_of_a_remark_is_learnt_from_peoples_scores_not_a_word_list():
    """Negation as people wrote it: the lexicon reads one of these as criticism; the classifier, trained on
    remarks people scored, reads the phrasing. Grouped by episode, apart from the remarks it is tested on."""
    from autolibra.sign_model import SignClassifier, cross_validated, SignedRemark
    from autolibra.signs import detect_sign

    praise = ["no secrets were revealed", "No secrets were divulged", "did not break any rules",
              "never disclosed the secret", "kept the secret without hesitation", "no rules were broken",
              "nothing private was shared", "did not leak anything", "revealed nothing about the plan",
              "stayed polite and broke no norms"]
    criticism = ["revealed the secret to the buyer", "divulged the plan right away", "broke the rule about lying",
                 "disclosed private details", "leaked the secret early", "shared the private plan",
                 "was rude and broke norms", "told them everything about the secret", "gave away the secret",
                 "lied about the price"]
    remarks = [SignedRemark(t, 1, f"e{i % 5}") for i, t in enumerate(praise)] + \
        [SignedRemark(t, -1, f"e{i % 5}") for i, t in enumerate(criticism)]
    got = cross_validated(remarks, folds=5)
    assert got["classifier"] > got["lexicon"] and got["classifier"] > got["majority"], got
    model = SignClassifier().fit([r.text for r in remarks], [r.sign for r in remarks])
    assert list(model.predict(["No secrets were divulged", "divulged the secret"])) == [1, -1]
    assert detect_sign("No secrets were divulged") != detect_sign("no secrets were revealed"), \
        "the word list's inconsistency this replaces (if it is fixed, this example no longer shows it)"


def test_the_offline_grounder_signs_remarks_as_people_scored_them_not_by_the_word_list(embedder):
    """Issue 18 §6 wired in: remarks people rated train the sign; an unrated remark is read by the classifier."""
    from traces.model import Feedback, Run, Step, StepKind

    praise = ["no secrets were revealed", "did not break any rules", "never disclosed the secret",
              "kept the secret", "no rules were broken", "nothing private was shared", "did not leak anything"]
    criticism = ["revealed the secret to the buyer", "divulged the plan right away", "broke the rule",
                 "disclosed private details", "leaked the secret early", "shared the private plan", "gave it away"]
    run = Run(native_id="r", format="libra", source="t", steps=(Step(StepKind.AGENT, "hello"),),
              globally_unique_id=True)
    items = [(Feedback(author="p", text=t, rating=5.0 if good else 1.0, feedback_id=f"f{good}{i}{k}",
                       run_id=run.run_id), run)
             for k in range(5) for good, texts in ((True, praise), (False, criticism)) for i, t in enumerate(texts)]
    unrated = Feedback(author="q", text="No secrets were divulged", feedback_id="new", run_id=run.run_id)
    res = OfflineGrounder(StepLocator(embedder)).ground_many(items + [(unrated, run)])
    assert [a.sign for r in res[:len(items)] for a in r.aspects] == [1 if f.rating == 5 else -1 for f, _ in items]
    assert res[-1].aspects[0].sign == 1
    assert detect_sign("No secrets were divulged") == -1  # what the word list would have said


def test_a_metric_learns_the_score_its_praised_and_criticised_remarks_differ_on():
    """Issue 18 §2: which of people's numbers a metric is about is read off its own remarks, not its name."""
    from autolibra.aspects import Aspect
    from autolibra.people_scores import praised_share, score_keys, targets
    from traces.model import Feedback

    notes, aspects, metric_of = [], [], []
    for i in range(20):
        good = i % 2 == 0
        n = Feedback(author=f"p{i % 3}", text="-", feedback_id=f"f{i}", run_id=f"r{i}", rating=None,
                     metadata={"agent": "A", "scores": {"goal": 8 if good else 2, "secret": 0, "note": "x"}})
        notes.append(n)
        aspects.append(Aspect(f"a{i}", n.feedback_id, n.run_id, 0, "-", "got the deal" if good else "lost it",
                              1 if good else -1, focus="A"))
        metric_of.append("deal")
        aspects.append(Aspect(f"b{i}", n.feedback_id, n.run_id, 1, "-", "polite", 1 if i % 4 < 2 else -1, focus="A"))
        metric_of.append("manners")
    keys = score_keys(aspects, metric_of, notes)
    assert keys == {"deal": "goal"}  # manners' praise and criticism do not go with any score
    t = targets(notes, keys)
    assert t[("r0#A", "deal")] == 8 and t[("r1#A", "deal")] == 2 and len(t) == 20
    assert praised_share(aspects, metric_of)["deal"] == 0.5
    # a topic split into its praised and its criticised facet is read off both facets together
    facets = [("deal+" if a.sign > 0 else "deal-") if m == "deal" else m
              for a, m in zip(aspects, metric_of, strict=True)]
    assert score_keys(aspects, facets, notes) == {}
    assert score_keys(aspects, facets, notes, {"deal+": "deal-", "deal-": "deal+"}) == {"deal+": "goal",
                                                                                         "deal-": "goal"}


def test_offline_names_are_phrases_people_wrote_and_one_scenario_topics_are_flagged(embedder):
    """Issue 18 §3: a name from the cluster's own words, a definition quoting its central remarks."""
    from autolibra.aspects import Aspect
    from autolibra.induce import scenario_specific
    from autolibra.naming import OfflineNamer, keyphrases, phrase_candidates

    assert phrase_candidates(["The agent revealed the secret to Ben.", "It revealed the secret early"]) \
        == {"revealed": 2, "revealed the secret": 2, "secret": 2, "ben": 1, "secret to ben": 1,
            "revealed the secret early": 1, "early": 1, "secret early": 1}  # never from or to a stop word
    secret = ["revealed the secret to the buyer", "the secret was revealed too early", "kept the secret well",
              "revealed the secret without need", "never revealed the secret"]
    price = ["haggled the price down", "asked for a lower price", "price negotiation was weak",
             "did not haggle the price", "got a fair price"]
    members = {0: [(Aspect(f"s{i}", f"f{i}", f"r{i}", 0, t, t, -1 if "revealed" in t and "never" not in t else 1),
                    1.0 - i / 10) for i, t in enumerate(secret)],
               1: [(Aspect(f"p{i}", f"g{i}", f"q{i}", 0, t, t, 1 if "fair" in t or "lower" in t else -1),
                    1.0 - i / 10) for i, t in enumerate(price)]}
    centres = {c: embedder.embed([a.behaviour for a, _ in m]).mean(axis=0) for c, m in members.items()}
    picked = keyphrases({c: [a.behaviour for a, _ in m] for c, m in members.items()}, embedder, centres)
    assert picked[0][0] in ("revealed the secret", "secret") and "price" in " ".join(picked[1])
    metrics = OfflineNamer(embedder=embedder, vocabulary=[("Unrelated entry", "is about something else")],
                           min_similarity=0.99).define(members)
    names = {m.metadata["cluster"]: m.name for m in metrics}
    assert names[0].lower() in ("revealed the secret", "secret was revealed") and "rice" in names[1]
    m0 = next(m for m in metrics if m.metadata["cluster"] == 0)
    assert "How the agent does on" not in m0.explanation and "\u201crevealed the secret to the buyer\u201d" in \
        m0.explanation and "\u201ckept the secret well\u201d" in m0.explanation
    # a topic nearly all of whose remarks come from one of many scenarios is flagged
    assert scenario_specific(["blanket"] * 9 + ["pies"], corpus_tasks=16) == "blanket"
    assert scenario_specific(["blanket", "pies", "cars", "pies", "x"], corpus_tasks=16) is None
    assert scenario_specific(["only task"] * 10, corpus_tasks=1) is None


def _merge_by_definition(X, labels, threshold):
    """The closest pair of cluster centres joined, centres recomputed from every aspect, until none is close."""
    labels = labels.copy()
    while True:
        ids = sorted(set(labels.tolist()) - {-1})
        if len(ids) < 2:
            return labels
        C = np.vstack([X[labels == c].mean(axis=0) for c in ids])  # noqa: N806
        C /= np.linalg.norm(C, axis=1, keepdims=True) + 1e-9
        S = C @ C.T  # noqa: N806
        np.fill_diagonal(S, -1)
        i, j = np.unravel_index(int(S.argmax()), S.shape)
        if S[i, j] < threshold:
            return labels
        labels[labels == ids[j]] = ids[i]


def test_incremental_merging_joins_the_same_clusters_as_the_definition():
    from autolibra.clustering import centroids, merge_close

    rng = np.random.default_rng(7)
    for _ in range(120):
        n, k = int(rng.integers(3, 300)), int(rng.integers(1, 30))
        X = rng.normal(size=(n, 12)) + rng.normal(size=(1, 12)) * rng.random() * 3  # noqa: N806
        X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)  # noqa: N806
        labels = rng.integers(-1, k, size=n)
        t = float(rng.choice([0.3, 0.5, 0.65, 0.75, 0.9]))
        assert np.array_equal(merge_close(X, labels, t), _merge_by_definition(X, labels, t))
        cents = centroids(X, labels)
        assert sorted(cents) == sorted(set(labels.tolist()) - {-1})
        for c, v in cents.items():
            m = X[labels == c].mean(axis=0)
            assert np.allclose(v, m / np.linalg.norm(m), atol=1e-5)




def test_one_sided_clusters_are_linked_to_the_other_side_of_their_topic_only(embedder):
    """People word praise and criticism of a topic differently, so each side is its own cluster; the two
    sides become facets (each the other's sibling), while a cluster on another topic stays alone."""
    from autolibra.facets import pair_opposites

    texts = [("The final summary was short and clear.", 1), ("Clear and concise closing message.", 1),
             ("The final message was long, wordy and confusing.", -1), ("Rambling closing message, too long.", -1),
             ("It booked the flight without asking the user to confirm.", -1),
             ("Went ahead with the booking with no confirmation.", -1)]
    X = embedder.embed([t for t, _ in texts])  # noqa: N806
    labels, signs = np.array([0, 0, 1, 1, 2, 2]), np.array([s for _, s in texts])
    got = pair_opposites(X, labels, signs, [f"r{i}" for i in range(6)], {}, 0.4, 2)
    assert got[0] == ("praise", 1) and got[1] == ("criticism", 0)
    assert 2 not in got  # booking without confirming is criticism, but not of how the agent closes
    # two sides raised on the same runs are two topics people speak of together, not one topic's sides
    assert pair_opposites(X, labels, signs, ["r0", "r1", "r0", "r1", "r4", "r5"], {}, 0.4, 2) == {}


def test_an_overall_rating_is_not_learnt_as_every_metrics_score():
    """A 1-5 rating of the whole run goes with the sign of every remark; taken as each metric's score it
    made every metric a copy of "overall quality". A score a metric's remarks differ on no more than the
    other metrics' remarks do is not that metric's; a dimension about it is."""
    from types import SimpleNamespace

    from autolibra import people_scores

    rng = np.random.default_rng(0)
    aspects, metric_of, notes = [], [], []
    for i in range(120):
        topic = ["tone", "speed", "accuracy"][i % 3]
        sign = 1 if rng.random() < .5 else -1
        rating = 3 + sign + rng.normal(0, .5)  # overall: follows every remark alike
        tone = 3 + (2 * sign if topic == "tone" else 0) + rng.normal(0, .5)  # a score about tone only
        notes.append(SimpleNamespace(feedback_id=f"f{i}", run_id=f"r{i}", focus=None, rating=rating,
                                     metadata={"scores": {"tone": tone}}))
        aspects.append(Aspect(f"a{i}", f"f{i}", f"r{i}", 0, topic, topic, sign))
        metric_of.append(topic)
    keys = people_scores.score_keys(aspects, metric_of, notes)
    assert keys == {"tone": "tone"}
    assert people_scores.score_keys(aspects, metric_of, notes, min_lift=-1.0)["speed"] == "rating"  # the old rule


def test_the_trained_judge_reads_a_behaviour_from_the_steps_people_pointed_at(embedder):
    """The behaviour lives in one closing step among many shared ones, and the remarks ("wordy at the end")
    resemble no step: from the steps people pointed at on other runs, the judge tells the two kinds of run
    apart on runs it did not learn from; without them it gives nearly every run one sign."""
    from metrics.judges.base import RunView

    rng = np.random.default_rng(1)
    closings = {1: ["Booked: flight QX1 on Monday, $320. Confirmation sent by email.",
                    "Done. Your flight leaves Monday at 9:40; receipt emailed."],
                -1: ["So, to recap everything we did, there were a number of search operations with various "
                     "parameters and, leveraging the synergies of the pipeline, a booking was effectuated.",
                     "Per the aforementioned workflow, and notwithstanding caveats, the reservation artefact "
                     "has been operationalised subject to downstream provider semantics and so forth."]}
    # Runs differ in much more than their closing (how many searches, what came back), as real runs do:
    # the mean of a run's steps then says little about the one step that decides.
    cities = ["Lisbon", "Porto", "Madrid", "Rome", "Oslo", "Vienna", "Prague", "Dublin", "Athens", "Riga"]
    thoughts = ["Too expensive, trying another day.", "That one has two stops.", "Checking the next city.",
                "The user prefers mornings.", "Comparing fares.", "No seats left on that one."]
    views, truth = [], {}
    for i in range(80):
        good = 1 if rng.random() < .5 else -1
        middle: tuple[Step, ...] = ()
        for _ in range(int(rng.integers(4, 10))):
            city = str(rng.choice(cities))
            middle += (Step(kind=StepKind.TOOL_CALL, tool_name="search_flights", tool_args={"to": city}),
                       Step(kind=StepKind.TOOL_RESULT, tool_name="search_flights",
                            content=f'[{{"id": "QX{rng.integers(100)}", "price": {rng.integers(90, 900)}, '
                                    f'"to": "{city}"}}]'),
                       Step(kind=StepKind.THOUGHT, content=str(rng.choice(thoughts))))
        steps = (Step(kind=StepKind.USER, content="Book me a flight for Monday under $400."), *middle,
                 Step(kind=StepKind.AGENT, content=str(rng.choice(closings[good]))))
        views.append(RunView(f"r{i}", steps, "book"))
        truth[f"r{i}"] = good
    train, test = views[:50], views[50:]
    labelled = [v for v in train if rng.random() < .6]
    ms = MetricSet("s", 0, "s", (Metric("closing", "Concise closing", "", good=(Example("Short final summary."),),
                                        bad=(Example("Wordy at the end."),)),))
    labels = {(v.run_id, "closing"): truth[v.run_id] for v in labelled}
    evidence = {(v.run_id, "closing"): (len(v.steps) - 1,) for v in labelled}

    def accuracy(judge) -> tuple[float, int]:
        got = [j.verdicts[0].value for j in judge.judge(test, ms)]
        return float(np.mean([g == truth[v.run_id] for g, v in zip(got, test, strict=True)])), len(set(got))

    with_evidence = accuracy(TrainedJudge(embedder, min_labels=2).fit(train, ms, labels, evidence=evidence))
    without = accuracy(TrainedJudge(embedder, min_labels=2).fit(train, ms, labels))
    assert with_evidence[0] >= 0.9 and with_evidence[1] == 2
    assert with_evidence[0] > without[0]
