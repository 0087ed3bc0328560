"""`libra serve`: the OTLP/HTTP receiver (traces/receiver) on a store, composed."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from traces.store import Store

TOKEN_ENV = "LIBRA_OTLP_TOKEN"  # a secret, so only from the environment


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 4318, spool: str | None = None,
          max_spool_mb: int = 256, on_batch: Callable[[Any], None] | None = None) -> Any:
    """Receive OTLP/HTTP traces and logs into `store` until interrupted; returns the drainer's totals.

    Requests need `Authorization: Bearer $LIBRA_OTLP_TOKEN` when that variable is set.
    A store in memory or on a lake needs an explicit `spool` directory.
    """
    from traces.receiver.server import serve as run

    if spool is None and (store.path == ":memory:" or store.lake):
        raise ValueError("a store in memory or on a lake needs a spool directory (--spool DIR) for "
                         "acknowledged requests to survive a crash")
    drainer = run(store, host=host, port=port, spool_dir=spool, token=os.environ.get(TOKEN_ENV) or None,
                  max_spool_bytes=max_spool_mb << 20, on_batch=on_batch)
    return drainer.totals
