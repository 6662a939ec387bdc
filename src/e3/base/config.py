"""Settings from the environment: the only module that reads ``os.environ``.

Everything else receives explicit arguments, so tests and the server can run
many configurations in one process. Each variable is listed in
:data:`ENV_VARS` with its meaning; ``e3 --help`` prints them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_VARS: dict[str, str] = {
    "E3_REPO": "repository for commands whose <repo> argument is left out (an argument wins)",
    "E3_DEBUG": "set to 1 to print tracebacks of internal errors",
    "E3_FSYNC": "set to 0 to skip fsync (faster, not crash-durable; benchmarks and tests only)",
    "E3_HOME": "directory for e3's own files (credentials); default ~/.e3",
    "E3_CREDENTIALS_PATH": "credentials file for remote servers; default $E3_HOME/credentials.json",
    "E3_EARLY_WORKER": "set to 0 so that e3 start does not start its first warm East worker "
    "ahead of need, while it loads",
    "E3_CLUSTER": "Dask cluster for e3 start and e3 serve when --cluster is left out "
    "(tcp://HOST:PORT or local:N)",
}


@dataclass(frozen=True)
class Settings:
    """Process-wide options, read once at the edge (CLI, server)."""

    repo_override: str | None = None
    debug: bool = False
    durable: bool = True
    home: Path = field(default_factory=lambda: Path("~/.e3").expanduser())
    credentials_path: Path | None = None
    #: Where ``e3 start`` and ``e3 serve`` run tasks when no ``--cluster`` is given.
    cluster: str | None = None
    #: Whether ``e3 start`` starts a warm East worker ahead of need (see :mod:`e3.runners.early`).
    early_worker: bool = True

    @property
    def credentials_file(self) -> Path:
        """Where remote credentials are stored."""
        return self.credentials_path or self.home / "credentials.json"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from an environment mapping (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("E3_HOME") or "~/.e3").expanduser()
    creds = env.get("E3_CREDENTIALS_PATH")
    return Settings(
        repo_override=env.get("E3_REPO") or None,
        debug=_flag(env.get("E3_DEBUG"), False),
        durable=_flag(env.get("E3_FSYNC"), True),
        home=home,
        credentials_path=Path(creds).expanduser() if creds else None,
        cluster=(env.get("E3_CLUSTER") or "").strip() or None,
        early_worker=_flag(env.get("E3_EARLY_WORKER"), True),
    )
