"""How `libra --help` names values: `TEXT`, `INTEGER ...`, `OUT_PATH`, and nothing after a flag.

Typer 0.2x prints Python annotations (`<bool>` after every flag, `<list[int]>`) and required
arguments in braces (`{out_path}`), which reads as code to the people running the command and
is unlike every other Unix tool. Typer has no setting for it, so its two display methods are
replaced here, once, when the CLI is imported; Click's own conventions are what they return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

from typer import core

_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN", Path: "PATH"}


def _value_name(annotation: Any) -> str:
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (str,)
        return f"{_value_name(item)} ..."
    return _NAMES.get(annotation, getattr(annotation, "__name__", "TEXT").upper())


def _option_type(self: core.TyperOption, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.is_flag or self.count:
        return None  # a flag takes no value; printing one invites `--quiet true`
    desc = self.type_descriptor
    if desc.is_choice:
        return "[" + "|".join(str(c) for c in desc.choices or ()) + "]"
    return _value_name(desc.annotation)


def _argument_usage(self: core.TyperArgument) -> str:
    name = (self.metavar or self.name or "").upper()
    name = name if self.required else f"[{name}]"
    return name + (" ..." if self.nargs != 1 else "")


def _argument_type(self: core.TyperArgument, ctx: Any) -> str | None:
    if self.metavar is not None:
        return None  # the metavar already is the name shown
    return _value_name(self.type_descriptor.annotation)


def install() -> None:
    core.TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign,assignment]
