"""A release comparison as a chart, and as a Markdown or HTML report to attach to a pull request.

Metric names come from people's feedback and run ids and tasks from producers,
so every one of them is escaped: Markdown shows them literally, HTML as text.
"""

from __future__ import annotations

import html
import math

import altair as alt
import pandas as pd

from metrics.compare import Comparison
from traces.display import LABEL_PX, for_chart, markdown_literal, tooltips, visible_controls


def diff_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Per metric: B minus A with its interval, coloured by the verdict; zero marked."""
    df = for_chart(table, ["metric"])
    base = alt.Chart(df).encode(y=alt.Y("metric:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_PX)))
    colour = alt.Color("verdict:N", scale=alt.Scale(domain=["better", "worse", "no clear change"],
                                                    range=["#2a9d8f", "#d62828", "#9e9e9e"]), title=None)
    rule = base.mark_rule(strokeWidth=2).encode(x=alt.X("lo:Q", title="score B − score A (95% interval)"),
                                                x2=alt.X2("hi:Q"), color=colour)
    point = base.mark_point(filled=True, size=70).encode(
        x=alt.X("diff:Q"), color=colour,
        tooltip=tooltips("metric", alt.Tooltip("score_a:Q", format=".2f"), alt.Tooltip("score_b:Q", format=".2f"),
                         alt.Tooltip("diff:Q", format="+.2f"), alt.Tooltip("p_adjusted:Q", format=".3f"), "n_a", "n_b"))
    zero = base.mark_rule(strokeDash=[4, 3], color="#555").encode(x=alt.XDatum(0))
    return alt.LayerChart(layer=[rule, point, zero]).properties(height=max(60, 26 * len(df)))


def _num(x: float, fmt: str = ".2f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _summary(c: Comparison) -> str:
    better, worse = len(c.improved), len(c.regressed)
    return (f"{better} better, {worse} worse, {len(c.metrics) - better - worse} without a clear change "
            f"(Holm-corrected, α = {c.alpha:g}, {len(c.metrics)} metrics)")


def to_markdown(c: Comparison) -> str:
    """GitHub-flavoured Markdown: the verdicts, the table, the runs that show each change, PIPA side by side."""
    a, b = markdown_literal(c.a), markdown_literal(c.b)
    lines = [f"## {b} against {a}", "",
             f"Metric set `{c.set_id}` v{c.version}; {c.runs_a} runs of {a}, {c.runs_b} of {b}. {_summary(c)}.", "",
             "| metric | A | B | B − A | 95% interval | p (Holm) | verdict | n A / n B |",
             "|---|---:|---:|---:|---|---:|---|---|"]
    for m in c.metrics:
        flag = {"better": "✅ better", "worse": "❌ worse"}.get(m.verdict, m.verdict)
        lines.append(f"| {markdown_literal(m.name)} | {_num(m.score_a)} | {_num(m.score_b)} | {_num(m.diff, '+.2f')} "
                     f"| [{_num(m.lo, '+.2f')}, {_num(m.hi, '+.2f')}] | {_p(m.p_adjusted)} | {flag} "
                     f"| {m.n_a} / {m.n_b}{' (paired by task)' if m.paired else ''} |")
    shown = [m for m in c.metrics if m.examples]
    if shown:
        lines += ["", "### Runs that show each change", ""]
        for m in shown:
            lines.append(f"- **{markdown_literal(m.name)}** ({m.verdict}):")
            for e in m.examples:
                task = f" on the same task “{markdown_literal(e.task[:80])}”" if e.task else ""
                lines.append(f"  - A `{visible_controls(e.run_a).replace('`', '')}` ({e.rate_a:.0%}) vs "
                             f"B `{visible_controls(e.run_b).replace('`', '')}` ({e.rate_b:.0%}){task}")
    lines += _frame_md("PIPA stages (pass rate over units)", c.pipa)
    lines += _frame_md("Proactivity", c.proactive)
    return "\n".join(lines) + "\n"


def _frame_md(title: str, df: pd.DataFrame) -> list[str]:
    if df is None or df.empty:
        return []
    cols = list(df.columns)
    out = ["", f"### {title}", "", "| " + " | ".join(markdown_literal(c) for c in cols) + " |",
           "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        out.append("| " + " | ".join(_num(v) if isinstance(v, float) else markdown_literal(v) for v in row) + " |")
    return out


def to_html(c: Comparison) -> str:
    """A standalone HTML page with the same content; every value from data is escaped."""
    e = html.escape
    rows = "".join(
        f"<tr class='{e(m.verdict.replace(' ', '-'))}'><td>{e(visible_controls(m.name))}</td><td>{_num(m.score_a)}</td>"
        f"<td>{_num(m.score_b)}</td><td>{_num(m.diff, '+.2f')}</td><td>[{_num(m.lo, '+.2f')}, {_num(m.hi, '+.2f')}]</td>"
        f"<td>{_p(m.p_adjusted)}</td><td>{e(m.verdict)}</td><td>{m.n_a} / {m.n_b}</td></tr>"
        for m in c.metrics)
    ex = "".join(
        f"<li><b>{e(visible_controls(m.name))}</b> ({e(m.verdict)}): " + "; ".join(
            f"A <code>{e(visible_controls(x.run_a))}</code> {x.rate_a:.0%} vs B <code>{e(visible_controls(x.run_b))}</code> "
            f"{x.rate_b:.0%}" for x in m.examples) + "</li>" for m in c.metrics if m.examples)
    frames = "".join(f"<h3>{e(t)}</h3>" + _frame_html(df) for t, df in
                     (("PIPA stages (pass rate over units)", c.pipa), ("Proactivity", c.proactive))
                     if df is not None and not df.empty)
    title = f"{visible_controls(c.b)} against {visible_controls(c.a)}"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + e(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px;text-align:left}"
            ".better{background:#e6f4f1}.worse{background:#fde8e8}</style></head><body>"
            f"<h2>{e(title)}</h2><p>Metric set <code>{e(c.set_id)}</code> v{c.version}; {c.runs_a} runs of A, "
            f"{c.runs_b} of B. {e(_summary(c))}.</p><table><tr><th>metric</th><th>A</th><th>B</th><th>B − A</th>"
            f"<th>95% interval</th><th>p (Holm)</th><th>verdict</th><th>n A / n B</th></tr>{rows}</table>"
            + (f"<h3>Runs that show each change</h3><ul>{ex}</ul>" if ex else "") + frames + "</body></html>")


def _frame_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(
        f"<td>{_num(v) if isinstance(v, float) else html.escape(visible_controls(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"
