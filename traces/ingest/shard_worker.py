"""The parsing process `ingest_sharded` starts: `python -m traces.ingest.shard_worker PATH NAME FMT K N STEPS`.

Its own module, not `python -m traces.ingest.parallel`: the package imports
`parallel`, so running that module as __main__ would load it twice.
"""

import sys

from traces.ingest.parallel import _work

if __name__ == "__main__":
    a = sys.argv[1:]
    _work(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), sys.stdout.buffer)
