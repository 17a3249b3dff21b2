"""`thaw serve --workers 2`: the supervisor hands connections to the workers in turn (serving/balancer.py)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.serving.live_server import LiveServer, free_port


def _pids_of(pid: int) -> list[int]:
    """The worker processes of the supervisor `pid` (multiprocessing's resource tracker left out)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [p for p in pids if b"resource_tracker" not in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _until(check, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path):
    live = LiveServer(f"sqlite:///{tmp_path / 'store.sqlite'}", tmp_path / "serve.log", "--workers", "2").start()
    try:
        yield live
    finally:
        live.stop()


def _worker_of_each(url: str, clients: int) -> list[int]:
    """The worker pid each of `clients` keep-alive connections is served by (asked three times each)."""
    answers = []
    pools = [httpx.Client(base_url=url, timeout=30) for _ in range(clients)]
    try:
        for client in pools:
            seen = {client.get("/health").json()["worker"] for _ in range(3)}
            assert len(seen) == 1, "one keep-alive connection is served by one worker"
            answers.append(seen.pop())
    finally:
        for client in pools:
            client.close()
    return answers


@pytest.mark.slow
def test_connections_are_handed_to_the_workers_in_turn(server: LiveServer) -> None:
    assert server.process is not None
    workers = _pids_of(server.process.pid)
    assert len(workers) == 2, workers
    _until(lambda: len(set(_worker_of_each(server.url, 4))) == 2)  # both workers ready
    split = Counter(_worker_of_each(server.url, 4))
    assert sorted(split.values()) == [2, 2], split  # round-robin: never 3:1 or 4:0
    assert set(split) == set(workers)


@pytest.mark.slow
def test_a_dead_worker_is_replaced_and_the_supervisor_going_takes_the_workers_with_it(server: LiveServer) -> None:
    assert server.process is not None
    first = _pids_of(server.process.pid)
    os.kill(first[0], signal.SIGKILL)
    _until(lambda: len(_pids_of(server.process.pid)) == 2 and first[0] not in _pids_of(server.process.pid))
    _until(lambda: len(set(_worker_of_each(server.url, 4))) == 2)  # the new worker serves
    workers = _pids_of(server.process.pid)

    server.kill()  # SIGKILL: the supervisor cannot stop them; they notice its end of the channel close
    _until(lambda: not any(_alive(pid) for pid in workers))
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/health", timeout=2)


def test_a_worker_that_cannot_start_stops_the_server_with_its_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    command = [sys.executable, "-c", "from thaw.cli import main; main()", "serve", "--db", f"sqlite:///{tmp_path / 's.sqlite'}",
               "--model", str(broken), "--workers", "2", "--port", str(free_port()), "--encoder", "hash", "--log-format", "text"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "THAW_READ_KEYS": "", "THAW_WRITE_KEYS": "", "THAW_ADMIN_KEYS": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "failed to start 3 times (exit code 3)" in done.stderr


def test_an_unreachable_store_is_one_clear_error_before_any_worker_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-c", "from thaw.cli import main; main()", "serve", "--db", "sqlite:////nonexistent/dir/x.sqlite",
               "--workers", "2", "--port", str(free_port()), "--encoder", "hash"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "THAW_READ_KEYS": ""})
    assert done.returncode == 2
    assert "cannot open the store sqlite:////nonexistent/dir/x.sqlite" in done.stderr
    assert "Traceback" not in done.stderr
