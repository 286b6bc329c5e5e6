"""Settings: one pydantic-settings base, one subclass per service.

Every field is read from an environment variable named ``UQ_<FIELD>`` (e.g. ``UQ_REDIS_URL``).
Every setting is described in ``docs/operations.md``; ``tests/common/test_settings_docs.py`` fails
when one is not.
"""

from __future__ import annotations

import os
import socket
import zlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every service reads: where Redis is, how streams are named and kept, health and logs."""

    model_config = SettingsConfigDict(env_prefix="UQ_", extra="ignore", frozen=True)

    profiles_dir: str = Field(
        "",
        description="Folder of calibration profiles of your own, searched before the shipped ones; empty = none "
        "(read by the alerter, and by the gateway to say which models are calibrated).",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis server holding the streams.")
    stream_prefix: str = Field("uq:", description="Prefix of every stream and key this system writes.")
    redis_cluster: bool = Field(
        False,
        description="Connect with redis-py's cluster client (Redis Cluster, or a managed cluster: ElastiCache, "
        "Memorystore, Azure Cache); `UQ_REDIS_URL` names one node or several, comma-separated "
        "(`redis://a:6379,b:6379,c:6379`: a service starts while one of them is down). Keys are then hash-tagged by partition "
        "even with one partition (docs/streams.md, Partitions).",
    )
    partitions: int = Field(
        1,
        ge=1,
        le=1_024,
        description="Partitions of each per-session stream (`uq:jobs`, `uq:tokens`, `uq:audits`, `uq:alerts`, "
        "`uq:sessions`, `uq:dead`); a session's entries all go to partition crc32(session id) mod N. 1 keeps the "
        "plain key names. Every service of a deployment must use the same N.",
    )
    redis_max_connections: int = Field(
        1_024,
        ge=1,
        description="Connections one process opens to Redis at most; a command that finds them all busy waits "
        "for one (up to `UQ_REDIS_POOL_TIMEOUT_S`) instead of failing. On a cluster: to each node, and a "
        "command beyond them fails (redis-py's cluster client does not wait).",
    )
    redis_pool_timeout_s: float = Field(
        10.0, gt=0, description="How long a command waits for a free connection before it fails (503 at the gateway)."
    )
    connect_retries: int = Field(10, ge=0, description="Attempts to reach Redis at start before giving up.")
    connect_retry_delay_s: float = Field(0.5, gt=0, description="Delay between those attempts (doubles).")
    heartbeat_interval_s: float = Field(2.0, gt=0, description="How often a service writes its heartbeat.")
    log_level: str = Field("INFO", description="Python log level: DEBUG, INFO, WARNING, ERROR.")
    log_format: str = Field("json", pattern="^(json|text)$", description="`json` lines or plain `text`.")
    instance: str = Field("", description="Consumer name within its group; defaults to host-pid.")

    # Retention: MAXLEN ~ of each stream (approximate trimming; see docs/streams.md).
    maxlen_jobs: int = Field(10_000, gt=0, description="Retention of `uq:jobs` (entries, approximate).")
    maxlen_tokens: int = Field(5_000, gt=0, description="Retention of `uq:tokens` (entries, approximate).")
    maxlen_audits: int = Field(200_000, gt=0, description="Retention of `uq:audits`.")
    maxlen_alerts: int = Field(100_000, gt=0, description="Retention of `uq:alerts`.")
    maxlen_sessions: int = Field(100_000, gt=0, description="Retention of `uq:sessions`.")
    maxlen_dead: int = Field(10_000, gt=0, description="Retention of the dead-letter stream `uq:dead`.")

    # Consumer behaviour (bus).
    batch_size: int = Field(128, gt=0, le=10_000, description="Entries read per XREADGROUP call.")
    block_ms: int = Field(1_000, ge=0, description="How long one XREADGROUP blocks waiting for entries.")
    token_group: str = Field(
        "auditors",
        description="The auditors' consumer group on `uq:tokens` (the gateway checks its backlog, the alerter its stranded entries).",
    )
    claim_idle_ms: int = Field(30_000, gt=0, description="An entry pending this long on a dead consumer is reclaimed.")
    max_deliveries: int = Field(
        5, gt=0, description="Attempts at an entry whose handler fails before it is dead-lettered."
    )
    dedupe_ttl_s: int = Field(
        86_400, gt=0, description="How long the per-session record of processed `seq` numbers is kept."
    )

    lease_timeout_s: float = Field(
        30.0, gt=0, description="A running session whose producer shows no sign of life this long is marked failed."
    )

    def stream(self, name: str) -> str:
        """The full name of a stream or key that is not partitioned, e.g. ``stream("leases")``; with one
        partition on a single node also of a partitioned one (``stream("tokens") == "uq:tokens"``)."""
        return f"{self.stream_prefix}{name}"

    @property
    def hash_tagged(self) -> bool:
        """Whether partitioned keys carry their partition's hash tag (``uq:{p3}:tokens``)."""
        return self.partitions > 1 or self.redis_cluster

    def partition_of(self, session_id: str) -> int:
        """The partition of a session: CRC-32 (zlib's, of the UTF-8 id) mod ``partitions``."""
        return zlib.crc32(session_id.encode()) % self.partitions if self.partitions > 1 else 0

    def partition_key(self, name: str, partition: int) -> str:
        """The full name of stream or key ``name`` in ``partition``: ``uq:{p3}:tokens``, so that a
        partition's streams, marks and consumer state share one Redis Cluster slot; ``uq:tokens`` when
        not hash-tagged."""
        if not self.hash_tagged:
            return self.stream(name)
        return f"{self.stream_prefix}{{p{partition}}}:{name}"

    def partition_keys(self, name: str) -> list[str]:
        """``name`` in every partition, in partition order."""
        return [self.partition_key(name, p) for p in range(self.partitions)]

    def instance_name(self) -> str:
        """This process's name as a consumer and in its heartbeat: ``UQ_INSTANCE``, else host-pid."""
        return self.instance or f"{socket.gethostname()}-{os.getpid()}"
