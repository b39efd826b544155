"""``make bench`` (``python -m bench [name ...]``): run benchmarks, print Markdown tables."""

from __future__ import annotations

import sys

from bench import batch_scoring, drift, features, ingest, mlops_view, parse, serving, training
from bench.common import machine

BENCHES = {
    "parse": parse,
    "ingest": ingest,
    "features": features,
    "training": training,
    "serving": serving,
    "drift": drift,
    "batch_scoring": batch_scoring,
    "mlops_view": mlops_view,
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = set(names) - set(BENCHES)
    if unknown:
        print(f"unknown benchmarks {sorted(unknown)}; choose from {sorted(BENCHES)}")
        return 2
    print(f"Machine: {machine()}\n")
    for name in names:
        module = BENCHES[name]
        print(module.report(module.run()), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
