"""Settings of the gateway (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

import ipaddress

from pydantic import Field

from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """The HTTP/WebSocket front door (``python -m services.gateway``)."""

    host: str = Field("127.0.0.1", description="Address the gateway binds.")
    port: int = Field(8080, ge=1, le=65_535, description="Port of REST, WebSocket and the dashboard.")
    frontend_dir: str = Field("frontend/dist", description="Built dashboard served at `/`.")
    database_url: str = Field(
        "sqlite:///data/uq.sqlite3",
        description="Audit trail the recorder writes and the gateway reads history from (same as the recorder's).",
    )

    # Security.
    auth: str = Field(
        "auto",
        pattern="^(auto|on|off)$",
        description="API keys: `on`, `off`, or `auto` = required when `UQ_HOST` is not a loopback address.",
    )
    api_keys: str = Field("", description="Comma-separated bearer API keys accepted on REST and WebSocket.")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS (`*` for any); empty = none.")
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0, description="Largest request body; larger gets 413.")
    max_prompt_chars: int = Field(32_000, gt=0, le=200_000, description="Longest prompt (or all chat messages).")
    max_tokens_limit: int = Field(4_096, gt=0, le=32_768, description="Largest `max_tokens` a job may ask for.")
    rate_limit_per_s: float = Field(
        50.0,
        ge=0,
        description="Requests per second per API key (or client), across every gateway replica (kept in Redis); 0 = off.",
    )
    rate_limit_burst: int = Field(
        200, gt=0, description="Requests a key may make at once before the rate applies (shared by the replicas)."
    )

    # Jobs, push API and dashboard.
    models: str = Field(
        "", description="Comma-separated models offered (dashboard, /v1/models); empty = what the generators serve."
    )
    default_model: str = Field(
        "SmolLM2-135M-Instruct",
        description="Model shown as default; when unset, the live generators' default (this value before one runs).",
    )
    cancel_ttl_s: int = Field(3_600, gt=0, description="How long a cancel request stays visible to the generator.")
    push_session_ttl_s: int = Field(86_400, gt=0, description="An idle push session is forgotten after this long.")
    push_idle_timeout_s: float = Field(
        300.0,
        gt=0,
        description="A push session with no tokens and no finish for this long ends `failed` (abandoned), "
        "like the session of a dead generator; a later push or finish gets 409.",
    )
    push_max_batch: int = Field(1_000, gt=0, le=10_000, description="Most tokens in one push request.")
    push_backlog_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Pushes are refused (503, Retry-After) while the auditors' backlog would exceed this share of "
        "UQ_MAXLEN_TOKENS, so retention never trims tokens they have not read.",
    )

    # Health.
    required_services: str = Field(
        "generator,auditor,alerter,recorder",
        description="Comma-separated services whose heartbeat `/health` requires (503 when one is missing).",
    )
    heartbeat_max_age_s: float = Field(10.0, gt=0, description="A heartbeat older than this counts as missing.")

    # WebSocket fan-out.
    ws_queue_size: int = Field(4_096, gt=0, description="Messages buffered per socket before it misses some.")
    ws_compression: bool = Field(
        False,
        description="permessage-deflate on /ws: less bandwidth, but zlib per message per socket costs ~4× the CPU.",
    )
    ws_max_message_bytes: int = Field(256 * 1024, gt=0, description="Largest message a client may send on /ws.")
    fanout_batch: int = Field(1_000, gt=0, description="Entries read per XREAD by the fan-out task.")
    recent_tokens: int = Field(20_000, gt=0, description="Live entries kept per active session for replay.")
    recent_keep_s: float = Field(300.0, gt=0, description="How long an ended session's live entries are kept.")
    replay_budget_mb: float = Field(
        128,
        gt=0,
        description="Memory for all sessions' live entries together; beyond it the oldest token entries go "
        "(a replay then takes them from the recorder's store).",
    )
    done_grace_s: float = Field(
        3.0, ge=0, description="After a session ends, wait this long for the alerter's summary before `done`."
    )

    @staticmethod
    def split(value: str) -> list[str]:
        """Items of a comma-separated setting, stripped, empties dropped."""
        return [item.strip() for item in value.split(",") if item.strip()]

    @property
    def api_key_list(self) -> list[str]:
        return self.split(self.api_keys)

    @property
    def auth_required(self) -> bool:
        """Whether requests need an API key: ``auth`` on, or auto and bound beyond loopback."""
        if self.auth != "auto":
            return self.auth == "on"
        return not _is_loopback(self.host)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
