"""The Markdown of docs/benchmarks/serving.md from bench/results/serve.json (bench_serve.py writes both)."""

from __future__ import annotations

from pathlib import Path

READING_MARKER = "<!-- reading: written by hand, kept by bench_serve.py -->"
SCENARIOS = {
    "known": "GET /users/{id}/recommendations?k=10",
    "new": "POST /recommendations (3 liked items, k=10)",
    "similar": "GET /items/{id}/similar?k=10",
}


def _shares(result: dict) -> str:
    """Each worker's share of a core, e.g. 0.82 : 0.79 (unbalanced connections show here)."""
    return " : ".join(f"{share:.2f}" for share in result.get("worker_cpu_shares", [])) or "-"


def _paced(run: dict) -> str:
    """The table of the runs paced at a fixed rate, or nothing."""
    paced = run.get("paced") or {}
    if not paced:
        return ""
    rate = next(iter(paced.values()))["paced_rps"]
    rows = "\n".join(
        f"| {SCENARIOS[name]} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
        f"{r['max_ms']:.1f} | {r['requests']} | {r['errors'] + r['non_2xx']} | {r['server_cpu_ms_per_request']:.2f} | "
        f"{_shares(r)} | {r['load_average_1min']:.1f} |"
        for name, r in paced.items()
    )
    return f"""
Paced at {rate:g} requests/s (the throughput target), the same connections:

| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors | server CPU ms/request | per worker | load avg |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}
"""


def _paced_note(report: dict) -> str:
    rate = report.get("paced_rps")
    if not rate:
        return ""
    return (f", then paced at {rate:g} requests/s: each request is sent at its slot of one schedule over all"
            " connections (open loop while the server keeps up; wrk times it from when it is sent)")


def write_doc(path: Path, report: dict) -> None:
    """The generated part of docs/benchmarks/serving.md (a hand-written reading follows it)."""
    sections = []
    for run in report["runs"]:
        rows = "\n".join(
            f"| {SCENARIOS[name]} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['requests']} | {r['errors'] + r['non_2xx']} | {r['server_cpu_ms_per_request']:.2f} | "
            f"{r['server_cpu_share']:.2f} | {_shares(r)} | {r['load_average_1min']:.1f} |"
            for name, r in run["scenarios"].items()
        )
        fresh = run["freshness"]
        sections.append(f"""### {run['workers']} worker(s)

Closed loop (as fast as the server answers):

| scenario | req/s | p50 ms | p90 ms | p99 ms | requests | errors | server CPU ms/request | server CPU share | per worker | load avg |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}
{_paced(run)}
Freshness ({fresh['trials']} trials): POST /items took p50 {fresh['post_items_p50_ms']} ms (max
{fresh['post_items_max_ms']} ms); the item was in the user's list of 100 in {fresh['appeared']} of
{fresh['trials']} trials, p50 {fresh['freshness_p50_ms']} ms (max {fresh['freshness_max_ms']} ms) after the POST
returned, at most {fresh['requests_until_seen_max']} request(s) needed; its rank there: p50
{fresh.get('rank_p50')}, in the top 10 in {fresh.get('in_top_10')} trials.
""")
    cross_worker = report.get("cross_worker")
    if cross_worker:
        s, r = cross_worker["similar"], cross_worker["recommendations"]
        sections.append(f"""### Two `thaw serve` processes on one store

An item posted to process A ({cross_worker['trials']} trials, the freshness item above): it was in
process B's 100 items most similar to the related item in {s['appeared']} trials, p50 {s['p50_ms']} ms
(max {s['max_ms']} ms) after A's POST returned, and in B's list of 100 for the user who bought the
related item in {r['appeared']} trials, p50 {r['p50_ms']} ms (max {r['max_ms']} ms). Load average
{cross_worker['load_average_1min']}.
""")
    crossover = report.get("crossover")
    cross = ""
    if crossover:
        lines = "\n".join(
            f"| {c['items']:,} | {c['exact_p50_ms']:.2f} / {c['exact_p99_ms']:.2f} | {c['hnsw_p50_ms']:.2f} / "
            f"{c['hnsw_p99_ms']:.2f} | {c['recall_at_10']:.4f} | {c['hnsw_pool_p50_ms']:.2f} / {c['hnsw_pool_p99_ms']:.2f} | "
            f"{c['recall_at_pool']:.4f} | {c['hnsw_build_s']:.1f} | {c['load_average_1min']:.1f} |"
            for c in crossover
        )
        cross = f"""
## Exact scan vs HNSW on the model's vectors (`--crossover`)

The trained model's {crossover[0]['dim']}-d item vectors; above 16,980 items they are resampled with small
noise; 300 real users' vectors as queries, one at a time, one thread. Exact: the scan
(`inner_products`, FAISS's SIMD kernel) and one partial sort of the best 512 rows, which serves both
the chain and the exploration pool. HNSW with the serving defaults (M 32, efConstruction 200,
efSearch 128, norm-ranged bands): a search for the chain alone (k 10), and one for the chain and a
200-row exploration pool (k 274), as a request that explores makes.

| items | exact p50 / p99 ms | HNSW k=10 p50 / p99 ms | recall@10 | HNSW k=274 p50 / p99 ms | recall@274 | HNSW build s | load avg |
|---|---|---|---|---|---|---|---|
{lines}
"""
    first = report["runs"][0]
    text = f"""# Serving benchmark

Command: `{report['command']}`

CiteULike ({first['items']:,} items), model `{first['model_version']}`, `thaw serve` on a
{report['cores']}-core machine ({report.get('cpu', '?')}) shared with the load generator (`{report['load_generator']}`,
{report['connections']} connections, {report['duration_s']} s per scenario after a 3 s warm-up, loopback): closed
loop{_paced_note(report)}. Exploration share {report['explore_share']}, impressions logged. Freshness: a new user buys an
existing item; a new item whose title is that item's title plus " (extended version)" is posted;
we then ask for the user's list of 100 (every item a request may ask for).

{chr(10).join(sections)}
"server CPU ms/request" is the server processes' user+system CPU time (all workers) divided by the
requests answered: what one request costs, whatever else the machine was doing. "server CPU share"
is the cores they actually got (1.0 = one full core); "load avg" is the machine's 1-minute load
average during the run (2 cores: above 2, processes were queueing for a core).
{cross}
Raw numbers: `bench/results/serve.json`.
"""
    # The hand-written reading below the marker survives a re-run (update it to the new numbers).
    kept = path.read_text().split(READING_MARKER, 1)[1] if path.exists() and READING_MARKER in path.read_text() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + (f"\n{READING_MARKER}{kept}" if kept else ""))
