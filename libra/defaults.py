"""Figures the library uses and the front doors state in their help, kept where importing them costs nothing."""

# Batch jobs wait longer for a store another process holds than the app's requests do.
JOB_LOCK_TIMEOUT = 600.0
# Pending runs from which scoring with `batch="auto"` uses the Message Batches API (half price, slower).
BATCH_FROM = 500
# Runs up to which an ingest rebuilds full-text search (well under a second); beyond, it is left for
# `libra index` (or a scheduled `index` job): a rebuild costs about 40 % of an ingest's CPU, and search
# meanwhile matches the runs the index lacks by their words, so it is never stale.
INDEX_AUTOMATICALLY_UP_TO = 2_000
