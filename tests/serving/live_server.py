"""A real `thaw serve` process on a free loopback port, for tests that need one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """Starts `thaw serve` in its own process; `kill()` sends SIGKILL, `stop()` SIGTERM."""

    def __init__(self, db_url: str, log_path: Path, *extra: str) -> None:
        self.db_url = db_url
        self.log_path = log_path
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LiveServer:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "THAW_READ_KEYS": "", "THAW_WRITE_KEYS": "", "THAW_ADMIN_KEYS": ""}
        command = [
            sys.executable, "-c", "from thaw.cli import main; main()", "serve",
            "--db", self.db_url, "--encoder", "hash", "--port", str(self.port),
            "--log-level", "warning", *self.extra,
        ]
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if not self.log.closed:
            self.log.close()
