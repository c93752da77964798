"""`lmforge ui`: check the bind/auth policy, then serve the app with uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

from lmforge.inference.limits import is_loopback
from lmforge.utils.errors import ConfigError


def read_credentials(auth: str | None, auth_file: str | None) -> str | None:
    """USER:PASSWORD from --auth or the first line of --auth-file (keeps it out of the process list)."""
    if auth_file:
        try:
            auth = (
                Path(auth_file).read_text(encoding="utf-8").splitlines()[0].strip()
                if Path(auth_file).stat().st_size
                else ""
            )
        except OSError as exc:
            raise ConfigError(f"--auth-file {auth_file}: {exc.strerror}") from None
    if auth is None:
        return None
    user, colon, password = auth.partition(":")
    if not (user and colon and password):
        raise ConfigError("--auth: expected USER:PASSWORD with both parts non-empty")
    return auth


def check_ui_bind(host: str, credentials: str | None) -> None:
    """The `lmforge serve` rule: a non-loopback address without authentication is refused."""
    if not is_loopback(host) and not credentials:
        raise ConfigError(
            f"refusing to serve the UI on {host} without authentication: pass --auth USER:PASSWORD (or --auth-file), "
            "or bind 127.0.0.1 and reach it through an SSH tunnel (ssh -L 7860:127.0.0.1:7860 HOST)"
        )


def allowed_hosts(host: str) -> tuple[str, ...]:
    """Host header values the app accepts: the bound address, plus the loopback names when bound locally or to
    every interface (then any address of the machine may be used, and authentication is on)."""
    names = {host, "127.0.0.1", "localhost", "::1"} if is_loopback(host) else {host}
    return ("*",) if host in ("0.0.0.0", "::") else tuple(sorted(names))


def run_ui(host: str, port: int, jobs_dir: str, auth: str | None, auth_file: str | None, grace_s: float) -> None:
    credentials = read_credentials(auth, auth_file)
    check_ui_bind(host, credentials)
    if grace_s < 0:
        raise ConfigError(f"--abort-grace must be >= 0, got {grace_s}")
    import uvicorn

    from lmforge.ui.app import create_app
    from lmforge.ui.jobs import JobRunner

    runner = JobRunner(jobs_dir, grace_s=grace_s)
    app = create_app(runner, credentials=credentials, allowed_hosts=allowed_hosts(host))
    shown = f"[{host}]" if ":" in host else host
    print(
        f"lmforge ui on http://{shown}:{port}/ (jobs in {runner.jobs_dir}; "
        f"{'HTTP Basic auth' if credentials else 'local only, no authentication'})",
        file=sys.stderr,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
