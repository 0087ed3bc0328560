"""The HTTP side: Starlette routes under uvicorn, as the OTLP/HTTP specification asks.

- 200 with an Export*ServiceResponse (in the request's encoding) once the request is spooled.
- 400 for a body that cannot be read, 401 without the bearer token, 413 past the size
  limit, 415 for another media type or encoding: exporters do not retry these.
- 429 when the spool is full, 503 when the store cannot be written and the spool is
  full: both with Retry-After, which exporters honour before retrying.
"""

from __future__ import annotations

import hmac
import logging
import signal
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from traces.receiver import decode as otlp
from traces.receiver.drain import Drainer
from traces.receiver.spool import Spool

log = logging.getLogger("libra.serve")


@dataclass(frozen=True)
class Limits:
    max_body: int = 16 << 20  # bytes on the wire
    max_inflated: int = 64 << 20  # bytes once decompressed
    retry_after_full: int = 2  # seconds: the drainer is behind
    retry_after_down: int = 15  # seconds: the store cannot be written


def _status(code: int, message: str, content_type: str) -> Response:
    """A google.rpc.Status body, as OTLP/HTTP errors carry."""
    from google.rpc import status_pb2

    st = status_pb2.Status(code=3 if code < 500 else 14, message=message)
    if content_type == otlp.PROTOBUF:
        return Response(st.SerializeToString(), code, media_type=otlp.PROTOBUF)
    return JSONResponse({"code": st.code, "message": message}, code)


async def _body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise otlp.BadRequest(f"the request body is over {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def app(spool: Spool, drainer: Drainer | None, token: str | None = None, limits: Limits = Limits()) -> Starlette:
    async def export(request: Request) -> Response:
        kind = request.path_params["kind"]
        ct = otlp.PROTOBUF
        try:
            ct = otlp.media_type(request.headers.get("content-type"))
            if token is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return _status(401, "missing or wrong bearer token", ct)
            if spool.full():
                down = drainer is not None and drainer.failing is not None
                code, wait = (503, limits.retry_after_down) if down else (429, limits.retry_after_full)
                log.warning("refusing an OTLP request with %d: the spool holds %d bytes%s", code, spool.bytes,
                            f" and the store fails ({drainer.failing})" if down and drainer else "")
                r = _status(code, "the receiver is full; retry later", ct)
                r.headers["Retry-After"] = str(wait)
                return r
            raw = await _body(request, limits.max_body)
            body = otlp.inflate(raw, request.headers.get("content-encoding"), limits.max_inflated)
            req = otlp.decode(kind, ct, body)
        except otlp.BadRequest as exc:
            return _status(exc.status, str(exc), ct)
        await run_in_threadpool(spool.put, req.kind, req.body)  # fsync off the event loop
        return Response(otlp.response(kind, ct), 200, media_type=ct)

    async def health(request: Request) -> Response:
        body = {"spool_bytes": spool.bytes, "spooled": len(spool.pending()),
                "store": "failing: " + drainer.failing if drainer and drainer.failing else "ok"}
        return JSONResponse(body, 200 if not (drainer and drainer.failing) else 503)

    return Starlette(routes=[Route("/v1/{kind:str}", export, methods=["POST"]), Route("/health", health)])


def serve(store, *, host: str = "127.0.0.1", port: int = 4318, spool_dir: str | None = None,
          token: str | None = None, max_spool_bytes: int = 256 << 20, limits: Limits = Limits(),
          on_batch=None) -> Drainer:
    """Receive OTLP/HTTP until SIGINT or SIGTERM, then write what is spooled and return the totals.

    Requests spooled before a crash are drained first thing on the next start.
    """
    import uvicorn

    spool = Spool(spool_dir or f"{store.path}.otlp-spool", max_spool_bytes)
    if spool.pending():
        log.info("draining %d requests spooled before the last stop", len(spool.pending()))
    drainer = Drainer(store, spool, on_batch=on_batch).start()
    config = uvicorn.Config(app(spool, drainer, token, limits), host=host, port=port, log_level="warning",
                            lifespan="off", access_log=False)
    # uvicorn shuts down on SIGINT/SIGTERM, then raises the signal again under the handlers it found;
    # these make that a no-op, so the spool is drained below instead of the process dying first
    stopped: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda n, _f: stopped.append(n))
    try:
        uvicorn.Server(config).run()
    finally:
        drainer.stop(drain=True)
    return drainer
