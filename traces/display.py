"""Text from traces, feedback and metric sets made safe to show: controls visible, not obeyed.

Every front end and chart uses these, so a producer's right-to-left override
cannot turn "txt.exe" into "exe.txt" anywhere Libra draws it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line prints through `visible_controls` and starts without pandas
    import pandas as pd

# Bidirectional controls reorder what follows them on screen: "gpj.exe" shown as "exe.jpg",
# a note that reads the opposite of what it says. C0 and C1 controls other than tab and line
# breaks draw as nothing (a NUL hides where a name was cut; an ESC starts a terminal escape when
# the text is copied out). Data shows all of them as visible marks.
_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# Chart labels (axis, legend, facet header) are cut to this many pixels; tooltips show all.
LABEL_PX = 220


def visible_controls(text: Any) -> str:
    """Data with its bidirectional and other control characters drawn as ⟨U+202E⟩ marks instead of obeyed."""
    return _CONTROLS.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", "" if text is None else str(text))


# Everything Streamlit draws as a label, caption, header or expander title is Markdown, as is a
# report attached to a pull request (links,
# images that load from anywhere, `:red[...]` directives). Data shown there goes through `markdown_literal`,
# which backslash-escapes every character Markdown or Streamlit gives a meaning.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^\"'&])")


# GitHub-flavoured Markdown also links bare addresses after escapes are read; an invisible word
# joiner inside "://" and after "www" keeps them text.
_AUTOLINK = re.compile(r"(?i)(://|\bwww(?=\\?\.)|@(?=[\w-]+\\?\.))")


def markdown_literal(text: Any) -> str:
    """Data as literal text inside Streamlit's Markdown: no styles, links, images or directives."""
    escaped = _MD_SPECIAL.sub(r"\\\1", visible_controls(text))
    return _AUTOLINK.sub(lambda m: m.group(1)[0] + "\u2060" + m.group(1)[1:], escaped)


def for_chart(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of `df` whose text `columns` (names from data) show their controls."""
    out = df.copy()
    for c in columns:
        if c in out.columns:
            out[c] = out[c].map(lambda v: visible_controls(v) if isinstance(v, str) else v)
    return out


def tooltips(*fields: Any) -> list[Any]:
    """Tooltip channels, a bare field name or shorthand made an `alt.Tooltip`.

    Altair turns every bare string it is given for a channel into a channel object through
    `from_dict`, which hashes the whole Vega-Lite schema each time (~5 ms; vega/altair#3547).
    Charts name their channels so that drawing one costs its data, not the schema.
    """
    import altair as alt

    return [alt.Tooltip(f) if isinstance(f, str) else f for f in fields]


def json_object(value: Any) -> dict[str, Any]:
    """A stored JSON column (metadata, gold) as a dict: {} for NULL, bad JSON or anything not an object."""
    if isinstance(value, dict):
        return value
    try:
        got = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}
