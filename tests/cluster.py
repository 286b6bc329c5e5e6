"""A real Redis Cluster on loopback ports for tests: ``redis-server --cluster-enabled yes`` per node and
``redis-cli --cluster create``, no Docker.

    with RedisClusterNodes(masters=3, replicas=1) as cluster:
        client = redis.RedisCluster.from_url(cluster.url)

Nodes keep nothing on disk (``--save "" --appendonly no``) and time out after
``node_timeout_ms`` (a killed master's replica is promoted a little after that). :meth:`kill_master_of`
kills the master serving a key's slot and :meth:`wait_promoted` waits until its replica has taken over.
"""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis


class ClusterError(RuntimeError):
    """The cluster did not form or did not recover; the message holds the node logs' tails."""


def _free_ports(n: int) -> list[int]:
    """``n`` free loopback ports whose cluster bus ports (port + 10000) are free too, both below the
    ephemeral range: a port the kernel hands to outgoing connections (the tests open hundreds) could be
    taken between this check and the node's bind, which aborts the node."""
    low = _ephemeral_low()
    candidates = list(range(max(low - 20_000, 1_024), low - 10_000))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        if len(ports) == n:
            return ports
        if all(_bindable(p) for p in (port, port + 10_000)):
            ports.append(port)
    raise ClusterError(f"no {n} free port pairs below {low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisClusterNodes:
    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 2_000) -> None:
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = _free_ports(masters * (1 + replicas))
        self._tmp = tempfile.TemporaryDirectory(prefix="uqcluster-")
        self.dir = Path(self._tmp.name)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """Any one live node (the client discovers the others)."""
        live = [p for p, proc in self.procs.items() if proc.poll() is None] or self.ports
        return f"redis://127.0.0.1:{live[0]}/0"

    def start(self) -> RedisClusterNodes:
        try:
            for port in self.ports:
                self._start_node(port)
            for port in self.ports:
                self._wait_ping(port)
            create = [
                *("redis-cli", "--cluster", "create"),
                *(f"127.0.0.1:{p}" for p in self.ports),
                *("--cluster-replicas", str(self.replicas), "--cluster-yes"),
            ]
            done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0:
                raise ClusterError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-node-timeout", str(self.node_timeout_ms)),
                *("--save", "", "--appendonly", "no", "--dir", str(node_dir)),
                *("--logfile", str(node_dir / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def _wait_ping(self, port: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise ClusterError(f"node {port} did not start:\n{self.log_tail(port)}")

    def log_tail(self, port: int, lines: int = 20) -> str:
        log = self.dir / str(port) / "redis.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def wait_ok(self, timeout_s: float = 60) -> None:
        """Until every live node says ``cluster_state:ok`` and sees every slot served."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = []
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    continue
                with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as client:
                    info = client.cluster("info")
                    states.append(info.get("cluster_state") == "ok" and int(info["cluster_slots_ok"]) == 16_384)
            if states and all(states):
                return
            time.sleep(0.1)
        tails = "\n".join(f"--- {p}\n{self.log_tail(p, 8)}" for p in self.procs)
        raise ClusterError(f"cluster not ok after {timeout_s:g} s\n{tails}")

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        with redis.RedisCluster.from_url(self.url) as client:
            node = client.get_node_from_key(key)
            return int(node.port)

    def kill_master_of(self, key: str) -> int:
        """SIGKILL the master serving ``key``'s slot; returns its port."""
        port = self.master_of(key)
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return port

    def wait_promoted(self, key: str, dead_port: int, timeout_s: float = 60) -> int:
        """Until a live node other than ``dead_port`` serves ``key``'s slot as master; returns its port."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for port, proc in self.procs.items():
                if port == dead_port or proc.poll() is not None:
                    continue
                with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as client:
                    slot = int(client.cluster("keyslot", key))
                    for start, end, master, *_ in client.cluster("slots"):
                        if start <= slot <= end and int(master[1]) != dead_port:
                            with redis.Redis(port=int(master[1])) as promoted:
                                if promoted.ping():
                                    return int(master[1])
            time.sleep(0.2)
        raise ClusterError(f"no replica took over the slot of {key!r} from {dead_port} in {timeout_s:g} s")

    def delete_matching(self, pattern: str) -> None:
        """Delete the keys matching ``pattern`` on every live master, node by node (no cluster client)."""
        for port, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as node:
                if node.execute_command("ROLE")[0] != b"master":
                    continue
                for key in node.scan_iter(match=pattern, count=1000):
                    node.delete(key)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        self.procs.clear()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> RedisClusterNodes:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
