"""`thaw serve --workers N`: one process accepts connections and hands them to N workers in turn.

uvicorn's own workers share one listening socket, and a worker that wakes takes every connection
waiting; with a few keep-alive clients one worker can end up with all of them while the other idles
(seen in bench-serve: four connections split 4:0, and throughput fell to one worker's). Node's
cluster module hands connections out round-robin from its primary process for the same reason.

Here the supervisor binds the address and accepts; each connection's file descriptor goes to the
next worker that is ready (its app loaded) over a Unix socket (SCM_RIGHTS), and the worker serves it
with uvicorn's own HTTP protocol. A worker that dies is started again; a slot whose worker exits
three times in a row before it is ready stops the server with an error. SIGINT / SIGTERM stop the supervisor, which stops the
workers (each finishes its open requests, as uvicorn does); a worker whose supervisor is gone, even
killed with SIGKILL, finishes its open requests and exits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

BACKLOG = 2048
STOP_SECONDS = 30.0  # a worker still running this long after SIGTERM is killed
START_ATTEMPTS = 3  # a worker slot that exits this many times in a row before it serves stops the server
HANDOFF_BATCH = 32  # descriptors read from the supervisor at once
READY = b"ready"  # a worker's one message to the supervisor


def serve_balanced(
    app_factory: str, workers: int, host: str, port: int, *, setup: Callable[[], None] | None = None, **uvicorn_options: Any
) -> None:
    """Bind `host:port`, start `workers` processes serving `app_factory` ("module:function"), hand out connections.

    `setup` runs first in every worker (logging, thread counts). Returns when stopped by a signal.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    listener = socket.create_server((host, port), backlog=BACKLOG, reuse_port=False)
    supervisor = Supervisor(listener, workers, WorkerSpec(app_factory, setup, uvicorn_options))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    bound = listener.getsockname()
    log.info("serving", extra={"host": bound[0], "port": bound[1], "workers": workers, "balancer": "round-robin"})
    try:
        supervisor.start()
        supervisor.run(stop)
    finally:
        supervisor.stop()
        listener.close()


@dataclass(frozen=True)
class WorkerSpec:
    app_factory: str
    setup: Callable[[], None] | None
    uvicorn_options: dict[str, Any]


class Supervisor:
    """The accepting process: N workers, each fed connections over its own Unix socket."""

    def __init__(self, listener: socket.socket, n: int, spec: WorkerSpec) -> None:
        self.listener = listener
        self.spec = spec
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[SpawnProcess | None] = [None] * n
        self.channels: list[socket.socket | None] = [None] * n
        self.ready = [False] * n  # the worker has started serving (its app is loaded)
        self.served = [False] * n  # the slot's current worker has been ready
        self.failed_starts = [0] * n  # exits in a row before the slot's worker was ready
        self.next = 0

    def start(self) -> None:
        for slot in range(len(self.processes)):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self.context.Process(target=_worker_main, args=(theirs, self.spec), name=f"thaw-worker-{slot}")
        process.start()
        theirs.close()
        self.processes[slot], self.channels[slot], self.ready[slot], self.served[slot] = process, mine, False, False

    def run(self, stop: threading.Event) -> None:
        """Accept and hand out connections until `stop` is set; restart workers that died."""
        self.listener.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            watched: dict[int, socket.socket] = {}  # slot -> the channel the selector watches for "ready"
            while not stop.is_set():
                for slot, channel in enumerate(self.channels):
                    if channel is not None and watched.get(slot) is not channel:
                        if slot in watched:
                            selector.unregister(watched[slot])
                        selector.register(channel, selectors.EVENT_READ, slot)
                        watched[slot] = channel
                for key, _ in selector.select(timeout=0.5):
                    if key.fileobj is self.listener:
                        self._accept_all()
                    else:
                        self._heard_from(key.data, selector, watched)
                self._restart_dead()

    def _heard_from(self, slot: int, selector: selectors.BaseSelector, watched: dict[int, socket.socket]) -> None:
        """A worker said it is ready, or its end closed (it exited: _restart_dead replaces it)."""
        channel = watched[slot]
        try:
            message = channel.recv(16)
        except OSError:
            message = b""
        if message == READY:
            self.ready[slot] = self.served[slot] = True
            self.failed_starts[slot] = 0
        elif not message:
            selector.unregister(channel)
            del watched[slot]
            self.ready[slot] = False

    def _accept_all(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            with connection:
                self._hand_off(connection)

    def _hand_off(self, connection: socket.socket) -> None:
        """Send the connection to the next worker that takes it (it is closed here either way)."""
        n = len(self.channels)
        anyone = not any(self.ready)  # while none is ready, queue on any (they start serving soon)
        for _ in range(n):
            slot = self.next
            self.next = (self.next + 1) % n
            channel = self.channels[slot]
            if channel is None or not (self.ready[slot] or anyone):
                continue
            try:
                socket.send_fds(channel, [b"c"], [connection.fileno()])
            except OSError:  # the worker is gone: the next one takes it; _restart_dead replaces it
                continue
            return
        log.warning("no worker took a connection: closed")

    def _restart_dead(self) -> None:
        for slot, process in enumerate(self.processes):
            if process is not None and not process.is_alive():
                if not self.served[slot]:  # it exited before it served (a failed start, or killed while starting)
                    self.failed_starts[slot] += 1
                    if self.failed_starts[slot] >= START_ATTEMPTS:  # starting it again would loop
                        raise SystemExit(
                            f"worker {slot} failed to start {START_ATTEMPTS} times (exit code {process.exitcode}); "
                            "see its log above"
                        )
                log.warning("worker exited: starting it again", extra={"worker": slot, "exitcode": process.exitcode})
                channel = self.channels[slot]
                if channel is not None:
                    channel.close()
                self._spawn(slot)

    def stop(self) -> None:
        """Close the channels (workers then exit on their own), SIGTERM, and wait."""
        for channel in self.channels:
            if channel is not None:
                channel.close()
        live = [p for p in self.processes if p is not None and p.is_alive()]
        for process in live:
            process.terminate()
        for process in live:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()


def _worker_main(channel: socket.socket, spec: WorkerSpec) -> None:
    """A worker process: build the app, then serve the connections the supervisor hands over."""
    import importlib

    if spec.setup is not None:
        spec.setup()
    module, _, name = spec.app_factory.partition(":")
    app = getattr(importlib.import_module(module), name)()
    config = uvicorn.Config(app, **spec.uvicorn_options)
    HandedOffServer(config, channel).run()
    sys.exit(0)


class HandedOffServer(uvicorn.Server):
    """A uvicorn server whose connections arrive as file descriptors over `channel`, not from a listener."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(3)  # uvicorn's STARTUP_FAILURE
        loop = asyncio.get_running_loop()
        self.servers = []
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._receive, loop)
        self.started = True
        self.channel.send(READY)  # connections come here from now on

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stop_receiving(asyncio.get_running_loop())
        await super().shutdown(sockets)

    def _protocol(self) -> asyncio.Protocol:
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )

    def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.channel, 16, HANDOFF_BATCH)  # one hand-off per message
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data and not fds:  # the supervisor has gone: finish open requests and exit
                self._stop_receiving(loop)
                self.should_exit = True
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)
                loop.create_task(self._adopt(loop, connection))

    async def _adopt(self, loop: asyncio.AbstractEventLoop, connection: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(self._protocol, connection)
        except OSError as exc:  # the client left before the worker got to it
            log.debug("handed-off connection dropped", extra={"error": str(exc)})
            connection.close()

    def _stop_receiving(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.remove_reader(self.channel.fileno())
        except (ValueError, OSError):
            pass  # closed already
