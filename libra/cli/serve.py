"""`libra serve`: receive OTLP/HTTP traces and logs."""

from __future__ import annotations

from typing import Annotated

import typer

from libra.cli.common import DbOption, console, open_store, out


def serve_cmd(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (4318 is OTLP/HTTP's).")] = 4318,
    spool: Annotated[str | None, typer.Option(
        help="Directory for acknowledged requests not yet in the store (default: beside the store).")] = None,
    max_spool_mb: Annotated[int, typer.Option(
        help="Past this many MB waiting, requests get 429/503 with Retry-After.")] = 256,
) -> None:
    """Receive OTLP/HTTP (POST /v1/traces, /v1/logs; protobuf or JSON, gzip or not) into the store.

    A request is acknowledged once it is on disk; set LIBRA_OTLP_TOKEN to require
    `Authorization: Bearer <token>`. Stop with Ctrl-C: what is spooled is stored first.
    """
    import logging

    from libra.serving import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = open_store(db, create=True)  # a receiver is often the first thing a store gets
    console.print(f"receiving OTLP/HTTP on http://{host}:{port}/v1/traces and /v1/logs into {store.path}")
    try:
        totals = serve(store, host=host, port=port, spool=spool, max_spool_mb=max_spool_mb)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.print(f"stopped: {totals.records} records from {totals.requests} requests, {totals.stored} stored, "
              f"{totals.quarantined} quarantined, {totals.traces} trace rebuilds")
