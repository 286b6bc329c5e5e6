"""Start the real services as subprocesses, wait for ``/health`` to be green, stop them all.

Each of generator, auditor, alerter, recorder and gateway is started with
``.venv/bin/python -m services.<name>`` when its package has a ``__main__.py``, all with one unique
``UQ_STREAM_PREFIX``, a free port, a temporary SQLite audit trail and a log file per service.

As a context manager (pytest)::

    with Stack() as stack:
        httpx.post(f"{stack.url}/generate", json={"prompt": "Explain AI", "max_tokens": 5})

As a command (the dashboard's Playwright tests): ``.venv/bin/python -m tests.stack --port 8099``
prints one line ``READY http://127.0.0.1:8099`` once healthy and runs until SIGTERM or Ctrl-C.

For fault tests: ``auditors=N`` starts N auditor processes (named ``auditor-1`` … ``auditor-N``;
one is named ``auditor``); every process gets ``UQ_INSTANCE`` = its name, so a restarted one takes
back what it held. :meth:`Stack.kill`, :meth:`Stack.start_service`, :meth:`Stack.stop_service` and
:meth:`Stack.restart` act on one process by name. ``own_redis=True`` starts a private
``redis-server`` on a free port without persistence (``--save ""``), which :meth:`Stack.restart_redis`
kills and starts again, empty, on the same port.

For scaling out: ``alerters=N`` starts ``alerter-1`` … ``alerter-N`` (they share the partitions,
``UQ_PARTITIONS`` in ``env``); ``gateways=N`` starts ``gateway`` (at :attr:`url`) and ``gateway-2`` …
on ports of their own (:meth:`gateway_url`); ``cluster=`` runs everything on a Redis Cluster
(tests/cluster.py) through redis-py's cluster client. :meth:`key` / :meth:`keys` name a stream's
partitions as the services do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import redis
from redis.asyncio import Redis as AsyncRedis

from services.common.redis_client import redis_client
from services.common.settings import CommonSettings
from tests.cluster import RedisClusterNodes

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("recorder", "auditor", "alerter", "generator", "gateway")  # started in this order


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class StackError(RuntimeError):
    """A service exited or the stack did not become healthy; the message holds the log tails."""


class Stack:
    def __init__(
        self,
        *,
        port: int | None = None,
        services: tuple[str, ...] = SERVICES,
        env: dict[str, str] | None = None,
        redis_url: str | None = None,
        work_dir: str | None = None,
        ready_timeout_s: float = 180.0,
        auditors: int = 1,
        alerters: int = 1,
        gateways: int = 1,
        own_redis: bool = False,
        cluster: RedisClusterNodes | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.prefix = f"uqstack-{uuid.uuid4().hex[:10]}:"
        self.redis_port = free_port() if own_redis else None
        self.redis_proc: subprocess.Popen[bytes] | None = None
        if self.redis_port is not None:
            redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.cluster = cluster
        if cluster is not None:
            redis_url = cluster.url
        self.redis_url = redis_url or os.environ.get("UQ_REDIS_URL", "redis://127.0.0.1:6379/0")
        self._tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="uqstack-")
        self.dir = Path(work_dir or self._tmp.name)  # type: ignore[union-attr]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.services = tuple(s for s in services if (ROOT / "services" / s / "__main__.py").exists())
        self.ready_timeout_s = ready_timeout_s
        required = ",".join(s for s in self.services if s != "gateway")
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "UQ_REDIS_URL": self.redis_url,
            "UQ_STREAM_PREFIX": self.prefix,
            "UQ_HOST": "127.0.0.1",
            "UQ_PORT": str(self.port),
            "UQ_DATABASE_URL": f"sqlite:///{self.dir}/uq.sqlite3",
            "UQ_REQUIRED_SERVICES": required,
            "UQ_HEARTBEAT_INTERVAL_S": "1.0",
            "UQ_LOG_FORMAT": "json",
            "UQ_AUTH": "off",
            **({"UQ_REDIS_CLUSTER": "true"} if cluster is not None else {}),
            **(env or {}),
        }
        # how the services name their keys (prefix, partitions, cluster), for tests that read Redis
        self.settings = CommonSettings(
            redis_url=self.redis_url,
            stream_prefix=self.prefix,
            redis_cluster=cluster is not None,
            partitions=int(self.env.get("UQ_PARTITIONS", "1")),
        )
        self.gateway_ports = {"gateway": self.port}
        self.gateway_ports.update({f"gateway-{i}": free_port() for i in range(2, gateways + 1)})
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        # process name -> service module, in start order
        self.modules: dict[str, str] = {}
        for service in self.services:
            replicas = {"auditor": auditors, "alerter": alerters}.get(service, 1)
            if replicas > 1:
                self.modules.update({f"{service}-{i}": service for i in range(1, replicas + 1)})
            elif service == "gateway":
                self.modules.update(dict.fromkeys(self.gateway_ports, service))
            else:
                self.modules[service] = service

    def gateway_url(self, name: str = "gateway") -> str:
        return f"http://127.0.0.1:{self.gateway_ports[name]}"

    def log_path(self, service: str) -> Path:
        return self.dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = 30) -> str:
        path = self.log_path(service)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> Stack:
        if "gateway" not in self.services:
            raise StackError("services/gateway/__main__.py is missing: nothing would serve /health")
        try:
            if self.redis_port is not None:
                self.start_redis()
            for name in self.modules:
                self.start_service(name)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or start again) one process by name; its log is appended to."""
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise StackError(f"{name} is still running (pid {old.pid})")
        if name in self._logs:
            self._logs[name].close()
        log = self._logs[name] = self.log_path(name).open("ab")
        env = {"UQ_INSTANCE": name, **self.env}
        if name in self.gateway_ports:
            env["UQ_PORT"] = str(self.gateway_ports[name])
        self.procs[name] = subprocess.Popen(
            [python(), "-m", f"services.{self.modules[name]}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return self.procs[name]

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send ``sig`` (default SIGKILL) to one process and wait for it to exit; returns its exit code."""
        proc = self.procs[name]
        proc.send_signal(sig)
        return proc.wait(timeout=30)

    def stop_service(self, name: str) -> int:
        """Stop one process cleanly (SIGTERM)."""
        return self.kill(name, signal.SIGTERM)

    def restart(self, name: str, sig: signal.Signals = signal.SIGKILL) -> subprocess.Popen[bytes]:
        """Kill one process with ``sig`` and start it again under the same name."""
        self.kill(name, sig)
        return self.start_service(name)

    def start_redis(self) -> None:
        """Start the private redis-server (``own_redis=True``) and wait until it answers."""
        assert self.redis_port is not None, "Stack(own_redis=True) only"
        log = self.dir / "redis.log"
        self.redis_proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(log)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=self.redis_port) as client:
                if client.ping():
                    return
            if self.redis_proc.poll() is not None:
                break
            time.sleep(0.05)
        raise StackError(f"redis-server on port {self.redis_port} did not start: {log.read_text(errors='replace')}")

    def stop_redis(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.send_signal(sig)
            self.redis_proc.wait(timeout=30)

    def restart_redis(self, down_s: float = 0.0) -> None:
        """Kill the private Redis (everything in it is lost) and start it again on the same port."""
        self.stop_redis()
        time.sleep(down_s)  # an outage of a chosen length: time passing is the point
        self.start_redis()

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.ready_timeout_s
        last: Any = None
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise StackError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
                with contextlib.suppress(httpx.HTTPError):
                    # every gateway answers (the first one's health is returned)
                    answers = [client.get(f"{self.gateway_url(name)}/health") for name in self.gateway_ports]
                    last = answers[0].json()
                    if all(resp.status_code == 200 for resp in answers):
                        health: dict[str, Any] = last
                        return health
                time.sleep(0.25)
        tails = "\n".join(f"--- {n}\n{self.log_tail(n, 10)}" for n in self.procs)
        raise StackError(f"not healthy after {self.ready_timeout_s:g} s; last /health: {last}\n{tails}")

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs.values():
            log.close()
        self.procs.clear()
        if self.redis_proc is not None:
            self.stop_redis(signal.SIGTERM)
            return
        if self.cluster is not None:
            self.cluster.delete_matching(f"{self.prefix}*")
            return
        with contextlib.suppress(redis.RedisError), self.client() as client:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)

    # --- reading what the services wrote --------------------------------------------------------

    def client(self) -> redis.Redis:
        """A synchronous client of the stack's Redis (the cluster client on a cluster)."""
        if self.cluster is not None:  # a node that is still up (a test may have killed the first)
            return redis.RedisCluster.from_url(self.cluster.url)  # type: ignore[return-value]
        return redis.Redis.from_url(self.redis_url)

    def async_client(self) -> AsyncRedis:
        """An asyncio client of the stack's Redis, as the services connect."""
        return redis_client(
            self.cluster.url if self.cluster is not None else self.redis_url, cluster=self.cluster is not None
        )

    def key(self, stream: str, session_id: str) -> str:
        """The key of ``stream`` in ``session_id``'s partition."""
        return self.settings.partition_key(stream, self.settings.partition_of(session_id))

    def keys(self, stream: str) -> list[str]:
        """``stream``'s key in every partition."""
        return self.settings.partition_keys(stream)

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="gateway port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for /health")
    parser.add_argument("--dir", default=None, help="keep logs and the database here (default: a temp dir)")
    parser.add_argument(
        "--services", default=",".join(SERVICES), help="comma-separated services to start (default: all)"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="UQ_X=value", help="extra setting for every service"
    )
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    services = tuple(s.strip() for s in args.services.split(",") if s.strip())
    stack = Stack(port=args.port, services=services, env=extra, work_dir=args.dir, ready_timeout_s=args.timeout)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        stack.start()
    except StackError as exc:
        print(f"FAILED {exc}", file=sys.stderr, flush=True)
        stack.close()
        return 1
    print(f"READY {stack.url}", flush=True)
    print(f"logs in {stack.dir}", file=sys.stderr, flush=True)
    try:
        while not done.wait(0.5):
            dead = [n for n, p in stack.procs.items() if p.poll() is not None]
            if dead:
                print(f"FAILED {dead[0]} exited:\n{stack.log_tail(dead[0])}", file=sys.stderr, flush=True)
                return 1
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
