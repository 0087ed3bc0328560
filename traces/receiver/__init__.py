"""An OTLP/HTTP receiver: `libra serve` (`POST /v1/traces`, `POST /v1/logs`).

As the OpenTelemetry Collector's receivers and Phoenix do, a request is
acknowledged only once it is durable: the decoded body is written to a spool
file and fsynced (`spool.py`) before the 200 goes back, so a kill -9 after
the acknowledgement loses nothing. A drainer (`drain.py`) moves spooled
requests into the store: every span and log record as received
(`otlp_spans`, `otlp_logs`), and each trace they touch rebuilt whole from all
its spans by the same code the OTLP file importer uses. When the spool is
full, or the store cannot be written, the server answers 429 or 503 with
`Retry-After` (exporters retry those), never a silent drop.
"""
