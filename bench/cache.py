"""`python -m bench.cache`: the result cache's gain on a corpus with repeats.

The same load runs twice against one Worker node, first with the cache off
(`SCANHUB_CACHE_SECONDS=0`), then on: the mixed corpus sent round and round for `--duration`
seconds, so every file after the first pass is a repeat (mail attachments and feed
downloads repeat like this). It prints the completed files per second of each run and their
ratio, and writes the figures to bench/results/cache-<time>.json.

    python -m bench.cache [--quick] [--duration 10] [--files 150]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.cluster import ClusterBench, add_duration_option, run_seconds
from bench.corpus import generate

RESULTS = Path(__file__).parent / "results"


def measure(samples: list, seconds: float, warmup: float, cache_seconds: int) -> dict[str, Any]:
    with ClusterBench(workers=1, environment={"SCANHUB_CACHE_SECONDS": str(cache_seconds)}) as cluster:
        load, memory = cluster.load(
            cluster.worker_urls[0],
            samples,
            duration=seconds,
            warmup=warmup,
            concurrency=24,
            poll_interval=0.05,
        )
    return {**load.summary(), "rss": memory}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small corpus and short runs")
    add_duration_option(parser)
    parser.add_argument("--files", type=int, default=150, help="distinct files in the corpus")
    parser.add_argument("--output", type=Path, default=None)
    options = parser.parse_args(argv)
    files = 20 if options.quick else options.files
    duration = run_seconds(options)
    samples = generate("mixed", files, 3, 0.05 if options.quick else 1.0)
    off = measure(samples, duration, 0.5, cache_seconds=0)
    on = measure(samples, duration, 0.5, cache_seconds=3600)
    results = {
        "corpus": {"kind": "mixed", "distinct_files": files},
        "cache_off": off,
        "cache_on": on,
        "speedup": round(on["completed_per_s"] / off["completed_per_s"], 2)
        if off["completed_per_s"]
        else None,
    }
    print(
        f"result cache, mixed corpus of {files} distinct files sent round and round for {duration:g} s "
        f"to one Worker: {off['completed_per_s']} files/s off, {on['completed_per_s']} on, "
        f"x{results['speedup']}"
    )
    output = options.output or RESULTS / f"cache-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
