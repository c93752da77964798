"""Server limits and the bind/auth policy of `lmforge serve`, kept free of heavy imports (the CLI reads them).

Every limit is configurable (`create_app(**limits)`, `lmforge serve --max-...`); requests over a limit get an
OpenAI-style 400/413/429 error rather than reaching the model (QUALITY D8, E3).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import Any

from lmforge.utils.errors import ConfigError

INSECURE_BANNER = (
    "*" * 78 + "\n"
    "* WARNING: serving on {host} WITHOUT authentication (--insecure-no-auth).\n"
    "* Anyone who can reach this port can use the model. Use --api-key KEY instead.\n" + "*" * 78
)


def _limit(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServerLimits:
    """Request limits; the defaults suit a single small model on one machine."""

    max_body_bytes: int = _limit(2 * 1024 * 1024, "larger request bodies get 413 before they are read in full")
    max_tokens: int = _limit(4096, "largest max_tokens a request may ask for (also capped by the context length)")
    default_max_tokens: int = _limit(512, "max_tokens when a request gives none (cut to what the context has left)")
    max_n: int = _limit(16, "choices per request (n)")
    max_stop: int = _limit(16, "stop strings per request (lm-evaluation-harness adds EOS to a task's own)")
    max_batch_size: int = _limit(32, "sequences decoded together in one batch")
    max_wait_ms: float = _limit(5.0, "how long an idle worker waits for more requests before starting a batch")
    max_queue: int = _limit(256, "sequences waiting for a batch slot; beyond that requests get 429 + Retry-After")
    prompt_timeout_s: float = _limit(1.0, "time limit on building one prompt (template rendering + tokenizing)")

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ConfigError(f"server limit {f.name} must be > 0, got {getattr(self, f.name)}")
        if self.default_max_tokens > self.max_tokens:
            raise ConfigError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens ({self.max_tokens})")


def limit_fields() -> list[tuple[str, type, Any, str]]:
    """(name, type, default, help) of every limit, for the command line."""
    return [(f.name, type(f.default), f.default, f.metadata["help"]) for f in fields(ServerLimits)]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_policy(host: str, api_key: str | None, insecure_no_auth: bool) -> str | None:
    """Refuse to serve a non-loopback address without a key (QUALITY D6); returns a warning banner when forced."""
    if is_loopback(host) or api_key:
        return None
    if not insecure_no_auth:
        raise ConfigError(
            f"refusing to serve on {host} without authentication: pass --api-key KEY (clients send "
            "'Authorization: Bearer KEY'), bind 127.0.0.1, or pass --insecure-no-auth to accept the risk"
        )
    return INSECURE_BANNER.format(host=host)
