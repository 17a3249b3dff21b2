"""Serving benchmark: latency and throughput of recommendations, and freshness of new items.

    make bench-serve                      # = python bench/bench_serve.py (1 and 2 workers)
    python bench/bench_serve.py --crossover   # also: exact scan vs HNSW on the model's vectors

Starts `thaw serve` over a CiteULike store (16,980 items) with a trained model in its own
process, drives it from a separate load process on loopback (wrk, else bench/loadgen/pyload.py)
and measures, for each worker count:
  - known users   GET  /users/{id}/recommendations?k=10
  - new users     POST /recommendations {"liked_items": [3 random items], "k": 10}
  - similar items GET  /items/{id}/similar?k=10
  - freshness     POST /items returns -> the item is in a matching user's recommendations
With --crossover it also times the exact scan against the HNSW index on the model's item vectors,
resampled to larger catalogues, to place `ann_threshold`.
Writes bench/results/serve.json and docs/benchmarks/serving.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "loadgen"))
from serve_report import SCENARIOS, write_doc  # noqa: E402
from wrk_scenarios import parse_result, write_script  # noqa: E402

THAW = [sys.executable, "-c", "from thaw.cli import main; main()"]


def prepare(db: Path, model: Path, train_seconds: int) -> None:
    """Ingest CiteULike and train a model once; later runs reuse both (retraining a stale model)."""
    url = f"sqlite:///{db}"
    if not db.exists():
        subprocess.run([*THAW, "ingest", "citeulike-a", "--db", url], check=True)
    if (model / "meta.json").exists() and not _loads(model):
        print(f"{model} does not load with the current model code: retraining it", flush=True)
        shutil.rmtree(model)
    if not (model / "meta.json").exists():
        config = db.parent / "bench-train.toml"
        config.write_text(f"[train]\nmax_seconds = {train_seconds}\nepochs = 30\n")
        subprocess.run([*THAW, "train", "--db", url, "--out", str(model), "--config", str(config)], check=True)


def _loads(model: Path) -> bool:
    probe = "import sys; from thaw.training import checkpoint; checkpoint.load(sys.argv[1])"
    return subprocess.run([sys.executable, "-c", probe, str(model)], capture_output=True).returncode == 0


def start_server(db: Path, model: Path | None, port: int, workers: int, log: Path, explore: float, env: dict) -> subprocess.Popen:
    command = [*THAW, "serve", "--db", f"sqlite:///{db}", "--port", str(port), "--workers", str(workers),
               "--log-level", "warning", "--explore-share", str(explore)]
    if model is not None:
        command += ["--model", str(model)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "THAW_READ_KEYS": "", "THAW_WRITE_KEYS": "", "THAW_ADMIN_KEYS": "", **env}
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                time.sleep(1.0)
                if process.poll() is not None:  # another server holds the port: ours failed to bind
                    raise RuntimeError(f"port {port} is taken by another server:\n{log.read_text()[-2000:]}")
                _wait_warm(port, workers, deadline)
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not start")


def _wait_warm(port: int, workers: int, deadline: float) -> None:
    """Until every worker answers and has computed its stored users' vectors (/health names the worker)."""
    warming: dict[int, bool] = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()  # a new connection: the next worker
        warming[health.get("worker", 0)] = health.get("warming_up", False)
        if len(warming) >= workers and not any(warming.values()):
            return
        time.sleep(0.1 if len(warming) < workers else 0.5)
    raise RuntimeError(f"workers still loading or warming up: {warming}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def process_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds so far of a process and of each live child (its workers) (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid] + [int(c) for c in children.read_text().split()] if children.exists() else [pid]
    pids = [p for p in pids if b"resource_tracker" not in _cmdline(p)]  # multiprocessing's, not a worker
    seconds = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        seconds[p] = sum(int(fields[i]) for i in (11, 12)) / ticks
    return seconds


def load(
    url: str, scenario: str, ids: list[str], connections: int, duration: int, tool: str, tmp: Path,
    pid: int | None = None, rate: float | None = None,
) -> dict:
    """Run one scenario from a separate process; returns counts, latency percentiles, server CPU.

    Closed loop (each connection sends its next request when the last is answered), or with `rate`
    paced at that many requests/s over all connections (wrk only).
    """
    cpu_before = process_cpu(pid) if pid else {}
    load_before = os.getloadavg()[0]
    if rate and tool != "wrk":
        raise ValueError("paced runs need wrk")
    if tool == "wrk":
        script = write_script(tmp / f"{scenario}.lua", scenario, ids, rate=rate)
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script), url]
    else:
        ids_file = tmp / "ids.json"
        ids_file.write_text(json.dumps(ids))
        command = [sys.executable, str(ROOT / "bench/loadgen/pyload.py"), url, scenario, str(ids_file),
                   "--connections", str(connections), "--duration", str(duration)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = parse_result(output)
    seconds = result["duration_us"] / 1e6
    cpu_after = process_cpu(pid) if pid else {}
    per_process = [cpu_after[p] - cpu_before.get(p, 0.0) for p in sorted(cpu_after)]
    cpu = sum(per_process) if pid else float("nan")
    return {
        "paced_rps": rate,
        # the workers; with more than one, the first process is their supervisor
        "worker_cpu_shares": [round(c / seconds, 2) for c in (per_process[1:] or per_process)],
        "server_cpu_ms_per_request": round(cpu * 1000 / max(result["requests"], 1), 3),
        "server_cpu_share": round(cpu / seconds, 3),
        "load_average_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
        "requests": result["requests"],
        "errors": result["errors"],
        "non_2xx": result["non2xx"],
        "throughput_rps": round(result["requests"] / seconds, 1),
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "mean_ms": round(result["mean_us"] / 1000, 3),
    }


FRESH_K = 100  # "recommendable": in the user's list of the most items a request may ask for


def freshness(url: str, titles: dict[str, str], trials: int, seed: int) -> dict:
    """Time from POST /items returning to the item appearing in a matching user's list (and its rank)."""
    rng = np.random.default_rng(seed)
    anchors = rng.choice(sorted(titles), trials, replace=False)
    post_ms, fresh_ms, polls, ranks, found = [], [], [], [], 0
    sources: list[str] = []  # what served the item when it appeared: the model, or an exploration slot
    run = int(time.time())
    with httpx.Client(base_url=url, timeout=10) as client:
        for n, anchor in enumerate(anchors):
            user, item = f"fresh-user-{run}-{n}", f"fresh-item-{run}-{n}"
            client.post("/users", json={"id": user}).raise_for_status()
            client.post("/events", json={"user": user, "item": str(anchor), "type": "purchase"}).raise_for_status()
            started = time.perf_counter()
            client.post("/items", json={"id": item, "title": titles[anchor] + " (extended version)"}).raise_for_status()
            posted = time.perf_counter()
            post_ms.append((posted - started) * 1000)
            for attempt in range(1, 51):
                body = client.get(f"/users/{user}/recommendations", params={"k": FRESH_K}).json()
                served = [i["id"] for i in body["items"]]
                if item in served:
                    fresh_ms.append((time.perf_counter() - posted) * 1000)
                    polls.append(attempt)
                    ranks.append(served.index(item) + 1)
                    sources.append(body["items"][served.index(item)]["source"])
                    found += 1
                    break
            client.delete(f"/users/{user}")
            client.delete(f"/items/{item}")
    return {
        "trials": trials,
        "appeared": found,
        "post_items_p50_ms": round(float(np.percentile(post_ms, 50)), 2),
        "post_items_max_ms": round(float(np.max(post_ms)), 2),
        "freshness_p50_ms": round(float(np.percentile(fresh_ms, 50)), 2) if fresh_ms else None,
        "freshness_max_ms": round(float(np.max(fresh_ms)), 2) if fresh_ms else None,
        "requests_until_seen_max": max(polls) if polls else None,
        "rank_p50": float(np.percentile(ranks, 50)) if ranks else None,
        "in_top_10": int(sum(r <= 10 for r in ranks)),
        "first_request": int(sum(p == 1 for p in polls)),
        "later_by_source": {s: sum(1 for p, t in zip(polls, sources) if p > 1 and t == s) for s in sorted(set(sources))},
    }


def run_workers(args: argparse.Namespace, workers: int, titles: dict[str, str], users: list[str], tool: str) -> dict:
    """Start a server with `workers` processes, run every scenario and the freshness trials."""
    port = _free_port() if args.port == 0 else args.port
    url = f"http://127.0.0.1:{port}"
    env = {"THAW_ANN_THRESHOLD": str(args.ann_threshold)} if args.ann_threshold else {}
    started = time.perf_counter()
    server = start_server(args.db, None if args.no_model else args.model, port, workers,
                          args.db.parent / f"bench-serve-{workers}.log", args.explore_share, env)
    startup = time.perf_counter() - started
    try:
        health = httpx.get(url + "/health").json()
        results: dict[str, dict] = {}
        paced: dict[str, dict] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in SCENARIOS:
                ids = users if scenario == "known" else sorted(titles)
                load(url, scenario, ids, args.connections, 3, tool, Path(tmp))  # warm-up
                results[scenario] = load(url, scenario, ids, args.connections, args.duration, tool, Path(tmp), server.pid)
                print(workers, scenario, results[scenario], flush=True)
                if args.rate and tool == "wrk":
                    paced[scenario] = load(url, scenario, ids, args.connections, args.duration, tool, Path(tmp), server.pid, args.rate)
                    print(workers, scenario, f"paced at {args.rate:g}/s", paced[scenario], flush=True)
        fresh = freshness(url, titles, args.freshness_trials, seed=0)
        print(workers, "freshness", fresh, flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return {"workers": workers, "server_startup_s": round(startup, 1), "items": health["items"],
            "model_version": health["model_version"], "scenarios": results, "paced": paced, "freshness": fresh}


def cross_worker(args: argparse.Namespace, titles: dict[str, str], trials: int, seed: int = 1) -> dict:
    """Two `thaw serve` processes on one store: time from POST /items returning on A to the item
    in B's similar items of the related item, and in B's list for a user who bought that item
    (both of FRESH_K items)."""
    ports = [_free_port(), _free_port()]
    servers = [start_server(args.db, None if args.no_model else args.model, port, 1,
                            args.db.parent / f"bench-serve-cross-{n}.log", args.explore_share, {})
               for n, port in enumerate(ports)]
    rng = np.random.default_rng(seed)
    similar_ms, list_ms = [], []
    run = int(time.time())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10) as a, \
                httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=10) as b:
            for n, anchor in enumerate(rng.choice(sorted(titles), trials, replace=False)):
                user, item = f"cross-user-{run}-{n}", f"cross-item-{run}-{n}"
                a.post("/users", json={"id": user}).raise_for_status()
                a.post("/events", json={"user": user, "item": str(anchor), "type": "purchase"}).raise_for_status()
                a.post("/items", json={"id": item, "title": titles[anchor] + " (extended version)"}).raise_for_status()
                posted = time.perf_counter()
                seen = {}
                while len(seen) < 2 and time.perf_counter() - posted < 10:
                    if "similar" not in seen and item in [i["id"] for i in b.get(f"/items/{anchor}/similar", params={"k": FRESH_K}).json()["items"]]:
                        seen["similar"] = time.perf_counter() - posted
                    if "list" not in seen and item in [i["id"] for i in b.get(f"/users/{user}/recommendations", params={"k": FRESH_K}).json()["items"]]:
                        seen["list"] = time.perf_counter() - posted
                if "similar" in seen:
                    similar_ms.append(seen["similar"] * 1000)
                if "list" in seen:
                    list_ms.append(seen["list"] * 1000)
                a.delete(f"/users/{user}")
                a.delete(f"/items/{item}")
                time.sleep(0.1)
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)

    def summary(values: list[float]) -> dict:
        return {"appeared": len(values), "p50_ms": round(float(np.percentile(values, 50)), 1) if values else None,
                "max_ms": round(float(np.max(values)), 1) if values else None}

    out = {"trials": trials, "similar": summary(similar_ms), "recommendations": summary(list_ms),
           "load_average_1min": round(os.getloadavg()[0], 2)}
    print("cross-worker", out, flush=True)
    return out


POOL_FETCH = 274  # k 10 + exploration pool 200 + 64 spare: what one request fetches when it explores


def crossover(db: Path, model: Path, sizes: list[int], seed: int = 0) -> list[dict]:
    """Exact scan vs HNSW (serving defaults) at several catalogue sizes, on the model's own vectors.

    Catalogues above 16,980 items are the real item vectors resampled with small Gaussian noise
    (a tenth of each coordinate's spread); queries are 300 real users' vectors.
    """
    import threadpoolctl

    from thaw.data.store import Store
    from thaw.encoders import load_encoder
    from thaw.serving.ann import FaissHnswIndex
    from thaw.serving.config import ServeConfig
    from thaw.serving.engine import Engine
    from thaw.serving.index import inner_products, top_k
    from thaw.serving.models import load_checkpoint

    threadpoolctl.threadpool_limits(1)
    trained, _ = load_checkpoint(model)
    with Store(f"sqlite:///{db}") as store:
        config = ServeConfig(db_url=store.url, log_impressions=False)
        engine = Engine(store, load_encoder(trained.config_.encoder or "minilm", threads=1), config)
        engine.load()
        engine.set_model(trained, "bench", {})
        items = np.array(engine.model_state.index.matrix())  # (16980, d_model)
        rng = np.random.default_rng(seed)
        people = rng.choice(sorted({e.user for e in store.iter_events()}), 300, replace=False)
        queries = np.array([engine._queries(engine.profile_of(str(u)), engine.model_state)[0][1] for u in people])
    defaults = ServeConfig()
    out = []
    for n in sizes:
        matrix = items if n <= len(items) else items[rng.integers(len(items), size=n)] + (
            0.1 * items.std(axis=0) * rng.standard_normal((n, items.shape[1]))
        ).astype(np.float32)
        matrix = np.ascontiguousarray(matrix[:n], np.float32)
        started = time.perf_counter()
        ann = FaissHnswIndex.from_matrix(matrix, np.ones(n, bool), **defaults.hnsw_options)
        build = time.perf_counter() - started
        exact_ms, ann_ms, pool_ms, recall, pool_recall = [], [], [], [], []
        for query in queries:
            # What one request does: the scan with one partial sort (chain and exploration pool),
            # or one graph search for the chain alone / for the chain and a 200-row pool together.
            t0 = time.perf_counter()
            truth, _ = top_k(inner_products(matrix, query), 512)
            t1 = time.perf_counter()
            found, _ = ann.search(query[None], 10)
            t2 = time.perf_counter()
            fetched, _ = ann.search(query[None], POOL_FETCH)
            t3 = time.perf_counter()
            exact_ms.append((t1 - t0) * 1000)
            ann_ms.append((t2 - t1) * 1000)
            pool_ms.append((t3 - t2) * 1000)
            recall.append(len(set(truth[:10].tolist()) & set(found[0].tolist())) / 10)
            pool_recall.append(len(set(truth[:POOL_FETCH].tolist()) & set(fetched[0].tolist())) / POOL_FETCH)
        row = {"items": n, "dim": int(matrix.shape[1]), "hnsw_build_s": round(build, 1), "recall_at_10": round(float(np.mean(recall)), 4),
               "exact_p50_ms": round(float(np.percentile(exact_ms, 50)), 3), "exact_p99_ms": round(float(np.percentile(exact_ms, 99)), 3),
               "hnsw_p50_ms": round(float(np.percentile(ann_ms, 50)), 3), "hnsw_p99_ms": round(float(np.percentile(ann_ms, 99)), 3),
               "hnsw_pool_p50_ms": round(float(np.percentile(pool_ms, 50)), 3),
               "hnsw_pool_p99_ms": round(float(np.percentile(pool_ms, 99)), 3),
               "recall_at_pool": round(float(np.mean(pool_recall)), 4),
               "load_average_1min": round(os.getloadavg()[0], 2)}
        print("crossover", row, flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "var/bench-citeulike.sqlite")
    parser.add_argument("--model", type=Path, default=ROOT / "var/bench-citeulike-model")
    parser.add_argument("--no-model", action="store_true", help="serve content similarity + popularity only")
    parser.add_argument("--train-seconds", type=int, default=300)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--rate", type=float, default=300,
                        help="also run each scenario paced at this many requests/s (wrk; 0 skips)")
    parser.add_argument("--explore-share", type=float, default=0.1)
    parser.add_argument("--ann-threshold", type=int, default=0, help="serve with this ann_threshold (default: the setting's)")
    parser.add_argument("--freshness-trials", type=int, default=30)
    parser.add_argument("--cross-worker-trials", type=int, default=30, help="0 skips the two-process run")
    parser.add_argument("--crossover", action="store_true", help="also time exact vs HNSW at 17k, 50k, 100k, 200k items")
    parser.add_argument("--crossover-only", action="store_true", help="only that; keep the last serving runs")
    parser.add_argument("--crossover-sizes", default="16980,50000,100000,200000")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serve.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs/benchmarks/serving.md")
    args = parser.parse_args()

    tool = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    prepare(args.db, args.model, args.train_seconds)
    from thaw.data.store import Store

    with Store(f"sqlite:///{args.db}", migrate=True) as store:
        gone = store.forget_impressions()  # every run starts from the same store
        if gone:
            print(f"deleted {gone} impressions of earlier runs", flush=True)
        titles = {i.id: i.title for i in store.iter_items()}
        users = sorted({e.user for e in store.iter_events()})
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    sizes = [int(n) for n in args.crossover_sizes.split(",")]
    if args.crossover_only:
        previous["crossover"] = crossover(args.db, args.model, sizes)
        args.out.write_text(json.dumps(previous, indent=2) + "\n")
        write_doc(args.doc, previous)
        return
    runs = [run_workers(args, int(w), titles, users, tool) for w in args.workers.split(",")]
    report = {
        "command": "make bench-serve  (python bench/bench_serve.py " + " ".join(sys.argv[1:]) + ")",
        "dataset": "citeulike-a",
        "connections": args.connections,
        "paced_rps": args.rate if tool == "wrk" else None,
        "duration_s": args.duration,
        "explore_share": args.explore_share,
        "ann_threshold": args.ann_threshold or None,
        "load_generator": tool,
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "runs": runs,
        "cross_worker": cross_worker(args, titles, args.cross_worker_trials) if args.cross_worker_trials else None,
        "crossover": crossover(args.db, args.model, sizes) if args.crossover
        else previous.get("crossover"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    write_doc(args.doc, report)
    print(f"wrote {args.out} and {args.doc}")


def _cpu() -> str:
    """The CPU's model name and the vector extensions the scan can use (Linux /proc/cpuinfo)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
    model = " ".join(fields.get("model name", platform.machine()).split())
    flags = set(fields.get("flags", "").split())
    extensions = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if name in flags]
    return f"{model} ({', '.join(extensions) or 'no AVX2'})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
