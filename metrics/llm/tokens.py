"""A token estimate for budgets and the fake API: about four characters a token.

Anthropic's tokenizer is not public; the estimate only has to be the same on
both sides of a budget check, and the API's own usage figures replace it once
a call returns.
"""

from __future__ import annotations

import json
import math
from typing import Any


def count_tokens(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return math.ceil(len(value) / 4) if value else 0
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") == "text":
            return count_tokens(value.get("text"))
        if value.get("type") in ("tool_use", "tool_result"):
            return count_tokens(json.dumps(value.get("input", value.get("content"))))
        return count_tokens(json.dumps({k: v for k, v in value.items() if k != "cache_control"}))
    return count_tokens(str(value))
