"""Serving benchmark: latency and throughput of recommendations, and freshness of new items.

    make bench-serve            # = python bench/bench_serve.py

Starts `thaw serve` over a CiteULike store (16,980 items) with a trained model in its own
process, drives it from a separate load process on loopback (wrk, else bench/loadgen/pyload.py)
and measures:
  - known users   GET  /users/{id}/recommendations?k=10
  - new users     POST /recommendations {"liked_items": [3 random items], "k": 10}
  - similar items GET  /items/{id}/similar?k=10
  - freshness     POST /items returns -> the item is in a matching user's recommendations
Writes bench/results/serve.json and docs/benchmarks/serving.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "loadgen"))
from wrk_scenarios import parse_result, write_script  # noqa: E402

THAW = [sys.executable, "-c", "from thaw.cli import main; main()"]
SCENARIOS = {
    "known": "GET /users/{id}/recommendations?k=10",
    "new": "POST /recommendations (3 liked items, k=10)",
    "similar": "GET /items/{id}/similar?k=10",
}


def prepare(db: Path, model: Path, train_seconds: int) -> None:
    """Ingest CiteULike and train a model once; later runs reuse both."""
    url = f"sqlite:///{db}"
    if not db.exists():
        subprocess.run([*THAW, "ingest", "citeulike-a", "--db", url], check=True)
    if not (model / "meta.json").exists():
        config = db.parent / "bench-train.toml"
        config.write_text(f"[train]\nmax_seconds = {train_seconds}\nepochs = 30\n")
        subprocess.run([*THAW, "train", "--db", url, "--out", str(model), "--config", str(config)], check=True)


def start_server(db: Path, model: Path | None, port: int, workers: int, log: Path, explore: float) -> subprocess.Popen:
    command = [*THAW, "serve", "--db", f"sqlite:///{db}", "--port", str(port), "--workers", str(workers),
               "--log-level", "warning", "--explore-share", str(explore)]
    if model is not None:
        command += ["--model", str(model)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "THAW_READ_KEYS": "", "THAW_WRITE_KEYS": "", "THAW_ADMIN_KEYS": ""}
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
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def load(url: str, scenario: str, ids: list[str], connections: int, duration: int, tool: str, tmp: Path, pid: int | None = None) -> dict:
    """Run one scenario from a separate process; returns counts, latency percentiles, server CPU."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    load_before = os.getloadavg()[0]
    if tool == "wrk":
        script = write_script(tmp / f"{scenario}.lua", scenario, ids)
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script), url]
    else:
        ids_file = tmp / "ids.json"
        ids_file.write_text(json.dumps(ids))
        command = [sys.executable, str(ROOT / "bench/loadgen/pyload.py"), url, scenario, str(ids_file),
                   "--connections", str(connections), "--duration", str(duration)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = parse_result(output)
    seconds = result["duration_us"] / 1e6
    cpu = (cpu_seconds(pid) - cpu_before) if pid else float("nan")
    return {
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


def freshness(url: str, titles: dict[str, str], trials: int, seed: int) -> dict:
    """Time from POST /items returning to the item appearing in a matching user's top 10."""
    rng = np.random.default_rng(seed)
    anchors = rng.choice(sorted(titles), trials, replace=False)
    post_ms, fresh_ms, polls, found = [], [], [], 0
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
                body = client.get(f"/users/{user}/recommendations", params={"k": 10}).json()
                if item in [i["id"] for i in body["items"]]:
                    fresh_ms.append((time.perf_counter() - posted) * 1000)
                    polls.append(attempt)
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "var/bench-citeulike.sqlite")
    parser.add_argument("--model", type=Path, default=ROOT / "var/bench-citeulike-model")
    parser.add_argument("--no-model", action="store_true", help="serve content similarity + popularity only")
    parser.add_argument("--train-seconds", type=int, default=300)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--explore-share", type=float, default=0.1)
    parser.add_argument("--freshness-trials", type=int, default=30)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/serve.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs/benchmarks/serving.md")
    args = parser.parse_args()

    tool = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    args.db.parent.mkdir(parents=True, exist_ok=True)
    prepare(args.db, args.model, args.train_seconds)
    from thaw.data.store import Store

    with Store(f"sqlite:///{args.db}", migrate=True) as store:
        titles = {i.id: i.title for i in store.iter_items()}
        users = sorted({e.user for e in store.iter_events()})
    model = None if args.no_model else args.model
    if args.port == 0:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    log = args.db.parent / "bench-serve.log"
    url = f"http://127.0.0.1:{args.port}"
    started = time.perf_counter()
    server = start_server(args.db, model, args.port, args.workers, log, args.explore_share)
    startup = time.perf_counter() - started
    try:
        health = httpx.get(url + "/health").json()
        results: dict[str, dict] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in SCENARIOS:
                ids = users if scenario == "known" else sorted(titles)
                load(url, scenario, ids, args.connections, 3, tool, Path(tmp))  # warm-up
                results[scenario] = load(url, scenario, ids, args.connections, args.duration, tool, Path(tmp), server.pid)
                print(scenario, results[scenario], flush=True)
        fresh = freshness(url, titles, args.freshness_trials, seed=0)
        print("freshness", fresh, flush=True)
    finally:
        server.terminate()
        server.wait(30)
    report = {
        "command": "make bench-serve  (python bench/bench_serve.py " + " ".join(sys.argv[1:]) + ")",
        "dataset": "citeulike-a",
        "items": health["items"],
        "model_version": health["model_version"],
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "explore_share": args.explore_share,
        "load_generator": tool,
        "server_startup_s": round(startup, 1),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "scenarios": results,
        "freshness": fresh,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    write_doc(args.doc, report)
    print(f"wrote {args.out} and {args.doc}")


def write_doc(path: Path, report: dict) -> None:
    rows = "\n".join(
        f"| {SCENARIOS[name]} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
        f"{r['p99_ms']:.1f} | {r['requests']} | {r['errors'] + r['non_2xx']} | {r['server_cpu_ms_per_request']:.2f} | "
        f"{r['server_cpu_share']:.2f} | {r['load_average_1min']:.1f} |"
        for name, r in report["scenarios"].items()
    )
    fresh = report["freshness"]
    text = f"""# Serving benchmark

Command: `{report['command']}`

CiteULike ({report['items']:,} items), model `{report['model_version']}`, `thaw serve` with
{report['workers']} worker(s) on a {report['cores']}-core machine shared with the load generator
(`{report['load_generator']}`, {report['connections']} connections, closed loop, {report['duration_s']} s per
scenario after a 3 s warm-up, loopback). Exploration share {report['explore_share']}, impressions logged.

| scenario | req/s | p50 ms | p90 ms | p99 ms | requests | errors | server CPU ms/request | server CPU share | load avg |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Freshness ({fresh['trials']} trials): a new user buys an existing item; a new item whose title is
that item's title plus " (extended version)" is posted; we then ask for the user's top 10.
POST /items took p50 {fresh['post_items_p50_ms']} ms (max {fresh['post_items_max_ms']} ms): it
encodes the text and indexes the item before returning. The item appeared in {fresh['appeared']} of
{fresh['trials']} trials; time from the POST returning to the list that shows it: p50
{fresh['freshness_p50_ms']} ms, max {fresh['freshness_max_ms']} ms (at most
{fresh['requests_until_seen_max']} request(s) needed).

"server CPU ms/request" is the server process's user+system CPU time divided by the requests it
answered: what one request costs, whatever else the machine was doing. "server CPU share" is the
cores it actually got (1.0 = one full core); "load avg" is the machine's 1-minute load average
during the run (2 cores: anything above 2 means processes were queueing for a core).

Raw numbers: `bench/results/serve.json`.
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()
