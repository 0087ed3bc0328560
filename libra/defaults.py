"""Figures the library uses and the front doors state in their help, kept where importing them costs nothing."""

# Batch jobs wait longer for a store another process holds than the app's requests do.
JOB_LOCK_TIMEOUT = 600.0
# Pending runs from which scoring with `batch="auto"` uses the Message Batches API (half price, slower).
BATCH_FROM = 500
# Runs up to which every ingest rebuilds full-text search; beyond, `libra index` does it when asked.
INDEX_AUTOMATICALLY_UP_TO = 50_000
