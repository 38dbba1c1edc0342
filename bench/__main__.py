"""`make bench`: the engine's own limit and the cluster end to end, on the same corpus.

For each corpus (small, medium, large, mixed) it measures:
- the engine limit: `analyze_file` alone, in-process, one process per core;
- end to end through the Hub of a local cluster started as `make run` starts it (two Worker
  nodes), and the same load sent straight to one Worker, so the Hub's cost is a ratio;
- the RSS of every process during each run.
Then, on the small corpus: the machinery's CPU on one Worker node (per upload and per poll
in the API, per job in Celery beyond the engine: `bench.machinery`); the same load with
callbacks instead of polls; latency from upload to `processed` at half of the measured
throughput; and, with `--soak`, that half load held for as long. Also: the engine's CPU per
4 KB and 100 KB text file, split by analyzer, and YARA alone against the whole engine on the
same files (compile time, per-file bare scan, ratio).
It prints a table and every target with its value, limit and ratio, and writes every figure
to bench/results/<time>.json.

`--rules DIR` runs everything with a rule directory of your own (signature-base's `yara/`,
a YARA-Forge package, ...) instead of the rules scanhub ships; `--engine-only` skips the
cluster runs; `--logs DIR` keeps the services' logs.

    python -m bench [--quick] [--duration 10] [--corpora small,medium,large,mixed] [--soak 0]
                    [--rules DIR] [--engine-only] [--logs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import engine, machinery
from bench.cluster import ClusterBench, add_duration_option, run_seconds, wait_all_healthy
from bench.corpus import KINDS, generate, total_bytes

RESULTS = Path(__file__).parent / "results"
# How many files each corpus holds, and how many uploads are in flight against it.
COUNTS = {"small": 400, "medium": 60, "large": 6, "mixed": 300}
CONCURRENCY = {"small": 32, "medium": 16, "large": 4, "mixed": 24}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny corpora and short runs: checks the bench works"
    )
    add_duration_option(parser)
    parser.add_argument("--corpora", default=",".join(KINDS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--soak", type=float, default=0.0, help="also a half-load soak of this many seconds")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--rules", type=Path, default=None, help="a YARA rule directory to use instead of scanhub's own"
    )
    parser.add_argument("--engine-only", action="store_true", help="skip the cluster runs")
    parser.add_argument("--logs", type=Path, default=None, help="keep the services' logs in this directory")
    options = parser.parse_args(argv)
    if options.rules is not None and not options.rules.is_dir():
        parser.error(f"--rules {options.rules}: not a directory")
    return options


def rules_dir_of(options: argparse.Namespace) -> Path:
    from worker.settings import DEFAULT_RULES_DIR

    return (options.rules or DEFAULT_RULES_DIR).resolve()


def engine_limit(kind: str, samples, processes: int, rules_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scanhub-engine-") as temp:
        paths = engine.write_corpus(samples, Path(temp) / "corpus")
        return engine.measure(paths, rules_dir, processes, Path(temp))


def yara_figures(samples, rules_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scanhub-yara-") as temp:
        paths = engine.write_corpus(samples, Path(temp) / "corpus")
        return engine.measure_yara(paths, rules_dir, Path(temp))


def run(options: argparse.Namespace) -> dict[str, Any]:
    scale = 0.05 if options.quick else 1.0
    duration = run_seconds(options)
    warmup = 0.5 if options.quick else 2.0
    processes = os.cpu_count() or 1
    kinds = [kind for kind in options.corpora.split(",") if kind]
    corpora = {
        kind: generate(kind, max(4, COUNTS[kind] // (10 if options.quick else 1)), options.seed, scale)
        for kind in kinds
    }
    rules_dir = rules_dir_of(options)
    results: dict[str, Any] = {
        "machine": {"cores": processes, "python": sys.version.split()[0]},
        "options": {
            "quick": options.quick,
            "duration_s": duration,
            "seed": options.seed,
            "rules": str(rules_dir),
            "engine_only": options.engine_only,
        },
        "corpora": {},
    }
    for kind, samples in corpora.items():
        results["corpora"][kind] = {
            "files": len(samples),
            "bytes": total_bytes(samples),
            "engine": engine_limit(kind, samples, processes, rules_dir),
        }
        print(
            f"engine limit, {kind}: {results['corpora'][kind]['engine']['files_per_second']} files/s",
            flush=True,
        )
    # YARA against the engine on the realistic mix (or the one corpus asked for).
    yara_kind = "mixed" if "mixed" in corpora else next(iter(corpora))
    results["yara"] = {
        "corpus": yara_kind,
        **yara_figures(corpora[yara_kind], rules_dir),
    }
    print(engine.yara_line(results["yara"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="scanhub-per-file-") as temp:
        results["engine_per_file"] = engine.per_file_by_size(
            rules_dir, Path(temp), files=6 if options.quick else 20
        )
    for label, figures in results["engine_per_file"].items():
        print(f"engine per file, {label} text and scripts: {figures['cpu_ms_per_file']} ms CPU", flush=True)
    if options.engine_only:
        results["targets"] = targets(results)
        return results

    # The corpora are sent round and round: with the result cache on, repeats would measure
    # the cache, not the analysis (bench.cache measures the cache).
    # The callback run's receiver listens on loopback, which the outbound policy refuses
    # unless listed.
    environment = {"SCANHUB_CACHE_SECONDS": "0", "SCANHUB_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8"}
    if options.rules is not None:
        environment["SCANHUB_YARA_RULES_DIR"] = str(rules_dir)
    with ClusterBench(workers=2, environment=environment, log_dir=options.logs) as cluster:
        for kind, samples in corpora.items():
            common: dict[str, Any] = {
                "duration": duration,
                "warmup": warmup,
                "concurrency": CONCURRENCY[kind],
                "poll_interval": 0.05,
            }
            for label, target in (("hub", cluster.hub_url), ("direct", cluster.worker_urls[0])):
                load, memory = cluster.load(target, samples, **common)
                results["corpora"][kind][label] = {**load.summary(), "rss": memory}
                print(f"{label}, {kind}: {load.summary()['completed_per_s']} files/s completed", flush=True)
        if "small" in corpora:
            # Before the runs that leave thousands of records behind (callbacks, half load,
            # soak): the per-upload and per-job figures of a node in its everyday state.
            results["machinery"] = machinery_figures(cluster, corpora["small"], rules_dir, options.quick)
            print(machinery_line(results["machinery"]), flush=True)
            wait_all_healthy(cluster.hub_url)  # its Celery worker was held: back in rotation
            # The same closed loop without polls: each client waits for its task's callback.
            load, memory = cluster.load(
                cluster.hub_url, corpora["small"], callbacks=True, duration=duration, warmup=warmup,
                concurrency=CONCURRENCY["small"],
            )  # fmt: skip
            results["callbacks_small"] = {**load.summary(), "rss": memory}
            print(
                f"hub with callbacks, small: {load.summary()['completed_per_s']} files/s completed",
                flush=True,
            )
            capacity = results["corpora"]["small"]["hub"]["completed_per_s"]
            rate = max(1.0, capacity / 2)
            load, memory = cluster.load(
                cluster.hub_url, corpora["small"], duration=duration, warmup=warmup,
                concurrency=256, rate=rate, poll_interval=0.01,
            )  # fmt: skip
            results["half_load_small"] = {"rate_per_s": round(rate, 1), **load.summary(), "rss": memory}
            if options.soak:
                load, memory = cluster.load(
                    cluster.hub_url, corpora["small"], duration=options.soak, warmup=warmup,
                    concurrency=256, rate=rate, poll_interval=0.05,
                )  # fmt: skip
                results["soak_small"] = {"rate_per_s": round(rate, 1), **load.summary(), "rss": memory}
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    return results


def machinery_figures(cluster: ClusterBench, samples, rules_dir: Path, quick: bool) -> dict[str, Any]:
    """CPU per upload and per pending poll in the Worker API, and Celery's per-job overhead
    beyond the engine's own CPU on the same files (see bench.machinery)."""
    assert cluster.cluster is not None
    with tempfile.TemporaryDirectory(prefix="scanhub-machinery-") as temp:
        paths = engine.write_corpus(samples, Path(temp) / "corpus")
        engine_cpu = engine.engine_cpu_per_file(paths, rules_dir, Path(temp))["cpu_ms_per_file"]
    return machinery.measure_worker(
        cluster.worker_urls[0],
        machinery.node_pids(cluster.cluster),
        samples,
        engine_cpu,
        uploads=40 if quick else 300,
        polls=200 if quick else 3000,
    )


def machinery_line(figures: dict[str, Any]) -> str:
    return (
        f"machinery, small files on one Worker: API {figures['api_cpu_ms_per_upload']} ms CPU per upload, "
        f"{figures['api_cpu_ms_per_pending_poll']} ms per pending poll (a bare aiohttp server: "
        f"{figures['bare_aiohttp_cpu_ms_per_request']} ms per request); Celery "
        f"{figures['celery_cpu_ms_per_job']} ms per job, of which the engine "
        f"{figures['engine_cpu_ms_per_file']} ms (overhead {figures['celery_overhead_ms_per_job']} ms); "
        f"Redis {figures['redis_cpu_ms_per_upload']} ms per upload, "
        f"{figures['redis_cpu_ms_per_job']} ms per job"
    )


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, figures in results["corpora"].items():
        engine_rate = figures["engine"]["files_per_second"]
        hub_rate = figures["hub"]["completed_per_s"]
        direct_rate = figures["direct"]["completed_per_s"]
        out[kind] = {
            "e2e_over_engine": round(hub_rate / engine_rate, 2) if engine_rate else None,
            "hub_over_direct": round(hub_rate / direct_rate, 2) if direct_rate else None,
        }
    return out


# (name, at most / at least, limit): lower-is-better figures are "<=", the rest ">=".
Target = tuple[str, str, float]


def _target(name: str, value: float | None, relation: str, limit: float) -> dict[str, Any]:
    if value is None:
        return {"name": name, "value": None, "limit": limit, "relation": relation, "ratio": None, "met": None}
    met = value <= limit if relation in ("<=", "<") else value >= limit
    if relation == "<":
        met = value < limit
    return {
        "name": name,
        "value": value,
        "limit": limit,
        "relation": relation,
        "ratio": round(value / limit, 2) if limit else None,
        "met": met,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each speed and memory target against this run's figures: value, limit, value/limit,
    met. A target whose figure this run did not measure has value None."""
    corpora, ratios_ = results["corpora"], results.get("ratios", {})
    per_file = results.get("engine_per_file", {})
    machinery_ = results.get("machinery", {})

    def ratio(kind: str, key: str) -> float | None:
        return ratios_.get(kind, {}).get(key)

    checks = [
        _target(
            "engine CPU per 100 KB text/script file (ms)",
            per_file.get("100 KB", {}).get("cpu_ms_per_file"),
            "<=",
            5,
        ),
        _target(
            "engine CPU per 4 KB text/script file (ms)",
            per_file.get("4 KB", {}).get("cpu_ms_per_file"),
            "<=",
            2,
        ),
        _target("small: completed through the Hub / engine", ratio("small", "e2e_over_engine"), ">=", 0.7),
        _target("mixed: completed through the Hub / engine", ratio("mixed", "e2e_over_engine"), ">=", 0.8),
        _target("medium: completed through the Hub / engine", ratio("medium", "e2e_over_engine"), ">=", 0.95),
        _target("small: Hub / direct", ratio("small", "hub_over_direct"), ">=", 0.9),
        _target("Worker API CPU per small upload (ms)", machinery_.get("api_cpu_ms_per_upload"), "<=", 2),
        _target(
            "Worker API CPU per poll of a pending task (ms)",
            machinery_.get("api_cpu_ms_per_pending_poll"),
            "<=",
            0.3,
        ),
        _target(
            "Celery overhead per job beyond the engine (ms CPU)",
            machinery_.get("celery_overhead_ms_per_job"),
            "<=",
            1.5,
        ),
        _target(
            "small p99 latency at half load (ms)",
            results.get("half_load_small", {}).get("latency_ms", {}).get("p99"),
            "<",
            150,
        ),
        _target("Celery RSS growth over the soak (MB)", celery_soak_growth(results), "<", 20),
    ]
    if any(label in figures for figures in corpora.values() for label in ("hub", "direct")):
        checks.append(_target("RSS growth of any process in any run (MB)", max_growth(results), "<", 100))
    return checks


def celery_soak_growth(results: dict[str, Any]) -> float | None:
    if "soak_small" not in results:
        return None
    rss = results["soak_small"]["rss"]
    return max(figures["growth_mb"] for name, figures in rss.items() if name.endswith("-celery"))


def print_targets(results: dict[str, Any]) -> None:
    print("\ntargets (value, limit, value/limit):")
    for target in results["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured in this run"}[target["met"]]
        print(
            f"  {target['name']:52} {target['value']!s:>8} {target['relation']} {target['limit']!s:<5} "
            f"({target['ratio']!s:>5})  {verdict}"
        )


def max_growth(results: dict[str, Any]) -> float:
    runs = [figures[label] for figures in results["corpora"].values() for label in ("hub", "direct")]
    runs += [results[key] for key in ("callbacks_small", "half_load_small", "soak_small") if key in results]
    return max((process["growth_mb"] for run in runs for process in run["rss"].values()), default=0.0)


def print_engine_table(results: dict[str, Any]) -> None:
    header = f"{'corpus':8} {'files':>6} {'MB':>7} | {'engine f/s':>10} {'MB/s':>6}"
    print("\n" + header + "\n" + "-" * len(header))
    for kind, figures in results["corpora"].items():
        print(
            f"{kind:8} {figures['files']:>6} {figures['bytes'] / 1e6:>7.1f} | "
            f"{figures['engine']['files_per_second']:>10} {figures['engine']['mb_per_second']:>6}"
        )
    print_yara(results)
    print_per_file(results)
    print_targets(results)


def print_per_file(results: dict[str, Any]) -> None:
    for label, figures in results.get("engine_per_file", {}).items():
        split = ", ".join(f"{name} {ms}" for name, ms in figures["split_ms"].items())
        print(f"engine per {label} file: {figures['cpu_ms_per_file']} ms CPU; split (ms, wall): {split}")


def print_yara(results: dict[str, Any]) -> None:
    figures = results["yara"]
    print(f"\n{engine.yara_line(figures)} on the {figures['corpus']} corpus")
    for key, error in figures["left_out"].items():
        print(f"  left out: {key}: {error.splitlines()[0][:200]}")


def print_table(results: dict[str, Any]) -> None:
    if results["options"]["engine_only"]:
        print_engine_table(results)
        return
    header = (
        f"{'corpus':8} {'files':>6} {'MB':>7} | {'engine f/s':>10} {'MB/s':>6} | "
        f"{'hub f/s':>8} {'p50':>6} {'p99':>6} | {'direct f/s':>10} | {'e2e/eng':>7} {'hub/dir':>7}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for kind, figures in results["corpora"].items():
        hub, direct, ratio = figures["hub"], figures["direct"], results["ratios"][kind]
        print(
            f"{kind:8} {figures['files']:>6} {figures['bytes'] / 1e6:>7.1f} | "
            f"{figures['engine']['files_per_second']:>10} {figures['engine']['mb_per_second']:>6} | "
            f"{hub['completed_per_s']:>8} {hub['latency_ms']['p50'] or 0:>6} "
            f"{hub['latency_ms']['p99'] or 0:>6} | {direct['completed_per_s']:>10} | "
            f"{ratio['e2e_over_engine']!s:>7} {ratio['hub_over_direct']!s:>7}"
        )
    if "callbacks_small" in results:
        callbacks, polled = results["callbacks_small"], results["corpora"]["small"]["hub"]
        print(
            f"\nsmall files through the Hub with callbacks instead of polls: {callbacks['completed_per_s']} "
            f"files/s (polling: {polled['completed_per_s']}), p50 {callbacks['latency_ms']['p50']} ms, "
            f"p99 {callbacks['latency_ms']['p99']} ms"
        )
    if "half_load_small" in results:
        half = results["half_load_small"]
        print(
            f"\nsmall files at half load ({half['rate_per_s']}/s through the Hub): "
            f"p50 {half['latency_ms']['p50']} ms, p90 {half['latency_ms']['p90']} ms, "
            f"p99 {half['latency_ms']['p99']} ms, max {half['latency_ms']['max']} ms"
        )
    print(f"largest RSS growth of any process in any run: {max_growth(results)} MB")
    errors = {
        kind: f["hub"]["errors_by_status"]
        for kind, f in results["corpora"].items()
        if f["hub"]["errors_by_status"]
    }
    print(f"upload errors by status: {errors or 'none'}")
    if "machinery" in results:
        print(machinery_line(results["machinery"]))
    print_yara(results)
    print_per_file(results)
    print_targets(results)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    options = parse_args(argv)
    results = run(options)
    print_table(results)
    output = (
        options.output
        or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if options.quick else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"figures written to {output}")
    return results


if __name__ == "__main__":
    main()
