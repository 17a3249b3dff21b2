"""A closed-loop HTTP load generator in its own process, for machines without wrk.

    python bench/loadgen/pyload.py URL SCENARIO IDS_FILE --connections 4 --duration 15

Prints one `THAW_RESULT {...}` line in the same shape as the wrk scripts. It costs more CPU per
request than wrk, so on a 2-core machine it understates the server's throughput.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("scenario", choices=["known", "new", "similar"])
    parser.add_argument("ids_file", type=Path)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--key", default=None)
    args = parser.parse_args()
    ids = json.loads(args.ids_file.read_text())
    target = urlparse(args.url)
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    latencies: list[list[float]] = [[] for _ in range(args.connections)]
    errors = [0] * args.connections
    non2xx = [0] * args.connections
    stop_at = time.perf_counter() + args.duration

    def run(worker: int) -> None:
        rng = np.random.default_rng(worker)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        while time.perf_counter() < stop_at:
            pick = ids[int(rng.integers(len(ids)))]
            if args.scenario == "known":
                method, path, body = "GET", f"/users/{pick}/recommendations?k={args.k}", None
            elif args.scenario == "similar":
                method, path, body = "GET", f"/items/{pick}/similar?k={args.k}", None
            else:
                liked = [ids[int(i)] for i in rng.integers(len(ids), size=3)]
                method, path, body = "POST", "/recommendations", json.dumps({"liked_items": liked, "k": args.k})
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[worker] += 1
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                continue
            latencies[worker].append(time.perf_counter() - started)
            if response.status >= 300:
                non2xx[worker] += 1
        conn.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    values = np.concatenate([np.asarray(v) for v in latencies]) * 1e6
    result = {
        "requests": int(len(values)),
        "duration_us": int(elapsed * 1e6),
        "errors": sum(errors),
        "non2xx": sum(non2xx),
        "p50_us": int(np.percentile(values, 50)),
        "p90_us": int(np.percentile(values, 90)),
        "p99_us": int(np.percentile(values, 99)),
        "max_us": int(values.max()),
        "mean_us": float(values.mean()),
    }
    print("THAW_RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
