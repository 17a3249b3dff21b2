"""One serving scenario, paced, run several times on fresh servers: how much its p99 moves from run to run.

    python bench/serve_repeats.py                       # new users, 2 workers, 300 req/s, 6 runs
    python bench/serve_repeats.py --scenario known --runs 3

Same store, model, load generator and connections as `make bench-serve` (bench_serve.py, which it
reuses); each run starts a server, warms it for 3 s and measures for `--duration` s. Writes
bench/results/serve-repeats-<scenario>.json and docs/benchmarks/serving-repeats-<scenario>.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import ROOT, _cpu, _free_port, load, prepare, start_server  # noqa: E402

from thaw.data.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "var/bench-citeulike.sqlite")
    parser.add_argument("--model", type=Path, default=ROOT / "var/bench-citeulike-model")
    parser.add_argument("--scenario", choices=["known", "new", "similar"], default="new")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--explore-share", type=float, default=0.1)
    args = parser.parse_args()

    prepare(args.db, args.model, 300)
    runs = []
    for run in range(args.runs):
        with Store(f"sqlite:///{args.db}", migrate=True) as store:
            store.forget_impressions()  # every run starts from the same store
            ids = sorted({e.user for e in store.iter_events()}) if args.scenario == "known" else sorted(i.id for i in store.iter_items())
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(args.db, args.model, port, args.workers, args.db.parent / "bench-serve-repeats.log", args.explore_share, {})
        try:
            with tempfile.TemporaryDirectory() as tmp:
                load(url, args.scenario, ids, args.connections, 3, "wrk", Path(tmp))  # warm-up
                result = load(url, args.scenario, ids, args.connections, args.duration, "wrk", Path(tmp), server.pid, args.rate)
        finally:
            server.terminate()
            server.wait(30)
        print(run + 1, result, flush=True)
        runs.append(result)

    p99 = [r["p99_ms"] for r in runs]
    report = {
        "command": "python bench/serve_repeats.py " + " ".join(sys.argv[1:]),
        "scenario": args.scenario, "workers": args.workers, "paced_rps": args.rate,
        "connections": args.connections, "duration_s": args.duration, "cpu": _cpu(),
        "runs": runs, "p99_ms_median": statistics.median(p99), "p99_ms_max": max(p99),
    }
    out = ROOT / f"bench/results/serve-repeats-{args.scenario}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    doc = ROOT / f"docs/benchmarks/serving-repeats-{args.scenario}.md"
    doc.write_text(_markdown(report))
    print(f"wrote {out} and {doc}")


def _markdown(report: dict) -> str:
    rows = "\n".join(
        f"| {n} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
        f"{r['max_ms']:.1f} | {r['errors'] + r['non_2xx']} | {r['server_cpu_ms_per_request']:.2f} |"
        for n, r in enumerate(report["runs"], 1)
    )
    return f"""# Serving: one scenario, run after run

Command: `{report['command']}`

Scenario `{report['scenario']}` (as in [serving.md](serving.md)), {report['workers']} workers, paced at
{report['paced_rps']:g} requests/s over {report['connections']} connections, {report['duration_s']} s per run after a
3 s warm-up, a fresh server each run; {report['cpu']}.

| run | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU ms/request |
|---|---|---|---|---|---|---|---|
{rows}

p99: median {report['p99_ms_median']:.1f} ms, worst {report['p99_ms_max']:.1f} ms.
"""


if __name__ == "__main__":
    main()
