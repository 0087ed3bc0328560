"""A span as the OpenTelemetry importers hold it, whatever carried it (OTLP JSON or protobuf, SDK exports).

Its own module because two read it: `_genai` (what the span says by each
convention) and `_spans` (traces assembled into runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: datetime | None
    end: datetime | None
    error: bool = False
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
