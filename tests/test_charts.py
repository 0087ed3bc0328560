"""Every chart function builds without Altair reading its schema, and says the same as before.

A bare string given for a channel (`y="score:Q"`, a tooltip's "metric") is turned into a
channel object by `from_dict`, which hashes the whole Vega-Lite schema each time: ~5 ms per
string, 13–25 ms per chart, on every redraw of a dashboard (cProfile of the app under
`bench/app.py`). The charts name their channels instead. And the app keeps each chart's spec
for the same data and arguments (`libra.web.widgets.chart`), drawn as Streamlit would draw it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from altair.utils import schemapi

from autolibra.charts import aspect_map_chart, frontier_chart, new_coverage_chart
from metrics.reports import charts
from metrics.reports.release import diff_chart
from pipa.profile import NAMES, ORDER, STAGES, profile_chart

T = pd.to_datetime(["2026-01-05", "2026-01-12"])
SCORES = pd.DataFrame({"t": list(T) * 2, "agent": ["a", "a", "b", "b"], "version": 1, "metric": ["m1", "m1", "m2", "m2"],
                       "score": [0.5, 0.6, 0.7, 0.7], "lo": [0.4, 0.5, 0.6, 0.6], "hi": [0.6, 0.7, 0.8, 0.8],
                       "n": [10, 11, 12, 13]})
HEAT = pd.DataFrame({"run_id": ["r1", "r2"], "metric": ["m1", "m2"], "value": [1, -1], "rate": [0.5, np.nan],
                     "backend": ["x", "y"]})
BUILDERS = {
    "scores over time": lambda: charts.scores_over_time_chart(SCORES),
    "heatmap": lambda: charts.heatmap_chart(HEAT),
    "heatmap per agent": lambda: charts.heatmap_chart(HEAT.assign(subject=["r1 · a", "r2 · b"])),
    "agent summary": lambda: charts.agent_summary_chart(SCORES.drop(columns=["t", "version"])),
    "scores tab": lambda: charts.scores_tab_chart(SCORES, SCORES.drop(columns=["t", "version"])),
    "cost": lambda: charts.cost_chart(pd.DataFrame({
        "t": T, "purpose": ["judge", "induce"], "model": "m", "cost_usd": [0.1, 0.2], "calls": [1, 2],
        "input_tokens": [10, 20], "cache_read_tokens": [0, 1]})),
    "judge vs people": lambda: charts.judge_human_chart(pd.DataFrame({
        "metric": ["m1", "m2"], "runs": [3, 4], "spearman": [0.2, np.nan], "rating_when_pass": [4.0, 3.0],
        "rating_when_fail": [2.0, np.nan]})),
    "agreement": lambda: charts.agreement_chart(pd.DataFrame({"queue": ["q"], "runs": [3], "alpha": [0.5]})),
    "waterfall": lambda: charts.waterfall_chart(pd.DataFrame({
        "start_s": [0.0, 0.5, np.nan], "duration_s": [1.0, np.nan, 1.0], "depth": [0, 1, 1],
        "kind": ["span", "step", "step"], "label": ["root", "call", "x"], "idx": [np.nan, 0, 1],
        "error": [False, True, False], "tokens": [1, 2, 3], "model": ["m", None, None]})),
    "release diff": lambda: diff_chart(pd.DataFrame({
        "metric": ["m1", "m2"], "verdict": ["better", "worse"], "lo": [0.1, -0.3], "hi": [0.3, -0.1],
        "diff": [0.2, -0.2], "score_a": [0.4, 0.6], "score_b": [0.6, 0.4], "p_adjusted": [0.01, 0.02],
        "n_a": 5, "n_b": 5})),
    "frontier": lambda: frontier_chart(pd.DataFrame({
        "coverage": [0.5, 0.7], "redundancy": [0.2, 0.3], "split": ["induction", "held-out"], "metrics": [3, 4],
        "chosen": [True, False]})),
    "aspect map": lambda: aspect_map_chart(pd.DataFrame({
        "x": [0.1, 0.2], "y": [0.3, 0.4], "metric": ["m1", "m2"], "sign": ["+", "-"], "aspect": ["a", "b"]})),
    "new coverage": lambda: new_coverage_chart(pd.DataFrame({
        "week": T, "coverage": [0.5, 0.6], "lo": [0.4, 0.5], "hi": [0.6, 0.7], "remarks": [3, 4], "covered": [1, 2],
        "version": 1}), 0.6),
    "PIPA profile": lambda: profile_chart(pd.DataFrame({
        "agent": "a", "criterion": [NAMES[m] for m in ORDER], "stage": [STAGES[m] for m in ORDER], "rate": 0.5,
        "units": 3, "runs": 2, "status": "scored"})),
}


@pytest.fixture
def schema_reads(monkeypatch):
    if not hasattr(schemapi, "_FromDict"):
        pytest.skip("this Altair builds channels another way")
    n = [0]
    init = schemapi._FromDict.__init__

    def counted(self, *args, **kwargs):
        n[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(schemapi._FromDict, "__init__", counted)
    return n


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_chart_is_built_without_reading_altairs_schema(name, schema_reads):
    chart = BUILDERS[name]()
    assert schema_reads[0] == 0
    spec = chart.to_dict()  # and it is still valid Vega-Lite
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")


def _encodings(spec: dict) -> list[dict]:
    found = []
    if isinstance(spec, dict):
        if isinstance(spec.get("encoding"), dict):
            found.append(spec["encoding"])
        for v in spec.values():
            found += _encodings(v)
    elif isinstance(spec, list):
        for v in spec:
            found += _encodings(v)
    return found


def test_named_channels_say_what_the_shorthand_said():
    heat = BUILDERS["heatmap"]().to_dict()
    # the selected run stands out, the others fade: the condition alt.condition used to write
    assert heat["encoding"]["opacity"] == {"condition": {"param": "run", "value": 1.0}, "value": 0.35}
    assert [t["field"] for t in heat["encoding"]["tooltip"]] == ["run_id", "metric", "value", "rate", "backend"]
    over = _encodings(BUILDERS["scores over time"]().to_dict())
    # the lines' own axis, which is the chart's when no band is drawn (BANDS_UP_TO)
    assert {"field": "score", "title": "score", "scale": {"domain": [0, 1]}, "type": "quantitative"} in \
        [e.get("y") for e in over]
    assert {"field": "hi"} in [e.get("y2") for e in over]
    tips = next(e["tooltip"] for e in over if "tooltip" in e)
    assert [(t["field"], t.get("title")) for t in tips] == [("metric", None), ("t", "from"), ("line_0", "a"),
                                                            ("line_1", "b")]
    diff = _encodings(BUILDERS["release diff"]().to_dict())
    assert {"datum": 0} in [e.get("x") for e in diff]
    prof = _encodings(BUILDERS["PIPA profile"]().to_dict())
    assert {"field": "label", "type": "nominal"} in [e.get("text") for e in prof]


def test_an_agent_has_one_strong_colour_in_every_chart():
    # Streamlit's theme alternates strong and pale colours: every other agent was a pale line
    over_time = charts.scores_over_time_chart(SCORES).to_dict()
    summary = charts.agent_summary_chart(SCORES.drop(columns=["t", "version"])).to_dict()
    scales = [layer["encoding"]["color"]["scale"] for layer in over_time["spec"]["layer"] if "color" in layer["encoding"]]
    scales += [layer["encoding"]["color"]["scale"] for layer in summary["layer"]]
    assert scales and all(s == {"scheme": "tableau10"} for s in scales), scales


def test_the_scores_tab_is_one_chart_whose_halves_share_the_agents_colours():
    spec = charts.scores_tab_chart(SCORES, SCORES.drop(columns=["t", "version"])).to_dict()
    over_time, by_agent = spec["vconcat"]
    assert "facet" in over_time and "layer" in by_agent
    # one colour scale for the two halves, so one legend and an agent in the same colour in both
    assert "color" not in spec.get("resolve", {}).get("scale", {})
    assert {e["color"]["field"] for e in _encodings(spec) if "color" in e} == {"agent"}
    # the summary's metric names on its right: on its left they pushed the lines right by their width
    assert {e["y"]["axis"]["orient"] for e in _encodings(by_agent) if "y" in e} == {"right"}
    alone = charts.scores_tab_chart(SCORES, SCORES.iloc[:0]).to_dict()  # nothing to summarise: the lines alone
    assert "vconcat" not in alone and "facet" in alone


def _rows(spec: dict, layer: str) -> list[dict]:
    return [r for r in next(iter(spec["datasets"].values())) if r.get("layer") == layer]


def test_hovering_a_time_shows_every_agents_score_there():
    df = pd.DataFrame({"t": [T[0], T[1], T[0], T[1], T[1]], "agent": ["a", "a", 'x.y["z"]', 'x.y["z"]', "new"],
                       "version": 1, "metric": "m", "score": [0.5, 0.6, 0.7, 0.8, 0.9],
                       "lo": [0.4, 0.5, 0.6, 0.7, 0.3], "hi": [0.6, 0.7, 0.8, 0.9, 1.0], "n": [10, 11, 12, 13, 2]})
    spec = charts.scores_over_time_chart(df).to_dict()
    tips = next(e["tooltip"] for e in _encodings(spec) if "tooltip" in e)
    titles = {t["field"]: t.get("title") for t in tips}
    # an agent's name is a title, never a field path Vega-Lite would read into
    assert sorted(v for k, v in titles.items() if k.startswith("line_")) == ["a", "new", 'x.y["z"]']
    by_time = {r["t"][:10]: r for r in _rows(spec, "hover")}
    assert len(by_time) == 2 and all(r["metric"] == "m" for r in by_time.values())
    new = next(k for k, v in titles.items() if v == "new")
    first, second = by_time["2026-01-05"], by_time["2026-01-12"]
    assert first[new] == "no verdicts" and second[new] == "0.90 (0.30–1.00, n=2)"
    a = next(k for k, v in titles.items() if v == "a")
    assert first[a] == "0.50 (0.40–0.60, n=10)"
    assert any(layer["mark"]["type"] == "point" and {"filter": "datum.point"} in layer.get("transform", [])
               for layer in spec["spec"]["layer"])
    # a few scores are drawn as points; past that only a line of one score, which would draw nothing
    assert all(r["point"] for r in _rows(spec, "line"))
    many = pd.concat([df.assign(t=df["t"] + pd.Timedelta(days=7 * k)) for k in range(40)], ignore_index=True)
    many = many[(many["agent"] != "new") | (many["t"] == T[1])]
    spec = charts.scores_over_time_chart(many).to_dict()
    assert {r["agent"] for r in _rows(spec, "line") if r["point"]} == {"new"}


def test_the_hover_names_each_version_when_a_set_has_several():
    df = SCORES.assign(version=[1, 2, 1, 2])
    tips = next(e["tooltip"] for e in _encodings(charts.scores_over_time_chart(df).to_dict()) if "tooltip" in e)
    assert [t.get("title") for t in tips][2:] == ["a · v1", "a · v2", "b · v1", "b · v2"]


def test_an_over_time_chart_of_nothing_still_builds():
    # the dashboards never draw one, but the function is the library's (libra.reports.charts)
    spec = charts.scores_over_time_chart(SCORES.iloc[:0]).to_dict()
    assert _rows(spec, "hover") == [] and _rows(spec, "line") == []


def test_a_score_of_no_agent_is_named_so_in_the_hover():
    spec = charts.scores_over_time_chart(SCORES.assign(agent=[None, None, "b", "b"])).to_dict()
    tips = next(e["tooltip"] for e in _encodings(spec) if "tooltip" in e)
    assert [t.get("title") for t in tips][2:] == ["(no agent)", "b"]


def test_intervals_are_bands_for_a_few_lines_and_the_hovers_text_past_that():
    def marks(df: pd.DataFrame) -> list[str]:
        return [layer["mark"]["type"] for layer in charts.scores_over_time_chart(df).to_dict()["spec"]["layer"]]

    few = pd.concat([SCORES.assign(agent=f"agent-{i}") for i in range(charts.BANDS_UP_TO)], ignore_index=True)
    assert marks(few)[0] == "area"
    many = pd.concat([SCORES.assign(agent=f"agent-{i}") for i in range(charts.BANDS_UP_TO + 1)], ignore_index=True)
    assert "area" not in marks(many) and {"line", "rule"} <= set(marks(many))
    # two versions of one agent are two lines
    assert "area" not in marks(pd.concat([few, few.assign(version=2)], ignore_index=True))
    spec = charts.scores_over_time_chart(many).to_dict()
    assert {r["line_3"] for r in _rows(spec, "hover")} >= {"0.50 (0.40–0.60, n=10)"}


def test_a_chart_is_built_once_for_the_same_data_and_arguments_and_again_for_new_ones():
    import altair as alt
    import numpy as np
    import pandas as pd

    from libra.web import widgets

    built = []

    def build(df: pd.DataFrame, title: str) -> alt.Chart:
        built.append(title)
        return alt.Chart(df).mark_bar().encode(x=alt.X("a:Q"), y=alt.Y("b:N")).properties(title=title)

    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    widgets.chart(build, df, "t")
    widgets.chart(build, df.copy(), "t")  # the same data in another frame: the kept spec
    assert built == ["t"]
    widgets.chart(build, df.assign(a=[1, 3]), "t")  # one cell changed
    widgets.chart(build, df, "other")  # another argument
    widgets.chart(build, df.rename(columns={"b": "c"}).assign(b=df["b"]), "t")  # another column, same cells
    widgets.chart(build, df.iloc[::-1], "t")  # the rows in another order
    assert built == ["t", "t", "other", "t", "t"]
    lists = df.assign(c=[np.array([1]), np.array([2])])  # arrays in a column, as a PIPA profile has
    widgets.chart(build, lists, "l")
    widgets.chart(build, lists.copy(), "l")
    widgets.chart(build, lists.assign(c=[np.array([1]), np.array([3])]), "l")
    assert built[-2:] == ["l", "l"]
    widgets.chart(build, df, ["a list"])  # an argument that cannot be a key
    widgets.chart(build, df, ["a list"])
    assert built[-2:] == [["a list"], ["a list"]]

    def build_two(df: pd.DataFrame, other: pd.DataFrame) -> alt.Chart:  # as a chart of two halves takes
        built.append(("two", other["z"].tolist()))
        return alt.Chart(df).mark_bar().encode(x=alt.X("a:Q"), y=alt.Y("b:N"))

    other = pd.DataFrame({"z": [1.0]})
    widgets.chart(build_two, df, other)
    widgets.chart(build_two, df, other.copy())  # the same second frame in another object: the kept spec
    widgets.chart(build_two, df, other.assign(z=[2.0]))  # a cell of the second frame changed
    assert [b for b in built if isinstance(b, tuple)] == [("two", [1.0]), ("two", [2.0])]


def test_a_kept_spec_is_the_one_streamlit_draws_less_altairs_theme():
    import altair as alt
    import pandas as pd

    from libra.web.widgets import vega_lite

    chart = alt.Chart(pd.DataFrame({"a": [1.0, 2.0]})).mark_point().encode(x=alt.X("a:Q"))
    spec = vega_lite(chart)
    # Altair's default theme sizes continuous charts 300 × 300; Streamlit draws them in its own
    assert "view" not in spec.get("config", {})
    assert list(spec["datasets"].values()) == [[{"a": 1.0}, {"a": 2.0}]]
    assert alt.theme.active == "default"  # the theme is given back


def test_names_from_data_reach_a_chart_with_their_controls_shown_not_obeyed():
    # a right-to-left override turns "txt.exe" round on an axis; a NUL or ESC draws as nothing
    evil = "\u202etxt.exe\x00cut\x1b[31m"
    hostile = SCORES.assign(agent=evil, metric=evil)
    built = [charts.scores_tab_chart(hostile, hostile.drop(columns=["t", "version"])),
             charts.heatmap_chart(HEAT.assign(metric=evil)),
             profile_chart(pd.DataFrame({"agent": evil, "criterion": [NAMES[m] for m in ORDER],
                                         "stage": [STAGES[m] for m in ORDER], "rate": 0.5, "units": 3, "runs": 2,
                                         "status": "scored"}))]
    for chart in built:
        rows = [r for data in chart.to_dict()["datasets"].values() for r in data]
        names = {v for r in rows for v in r.values() if isinstance(v, str) and "txt.exe" in v}
        assert names == {"⟨U+202E⟩txt.exe⟨U+0000⟩cut⟨U+001B⟩[31m"}, names
