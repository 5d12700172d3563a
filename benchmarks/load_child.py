"""Child process of the bulk-load benchmark: create a cache and load a sample into it.

Usage: load_child.py DB_PATH SAMPLE_ARGS_JSON
Prints {"seconds": ..., "rows": ..., "counts": {...}} as JSON on stdout. Runs alone in its
own interpreter so that the parent's os.wait4 sees the loader's peak RSS and nothing else.
"""

from __future__ import annotations

import json
import sys
import time

from sync import db, sample


def main() -> None:
    path, args = sys.argv[1], json.loads(sys.argv[2])
    start = time.perf_counter()
    cache = db.create(path)
    try:
        info = sample.load(cache, args.pop("size"), **args)
    finally:
        # Closing checkpoints the WAL into the database file: part of the load's cost.
        cache.close()
    seconds = time.perf_counter() - start
    json.dump({"seconds": seconds, "rows": info.total_rows, "counts": dict(info.counts)},
              sys.stdout)


if __name__ == "__main__":
    main()
