"""Where the janitor keeps its manifest cache and state (XDG defaults, env overrides)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("JANITOR_CACHE_DIR"):
        return Path(env["JANITOR_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ghcr-janitor"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("JANITOR_STATE_DIR"):
        return Path(env["JANITOR_STATE_DIR"])
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "ghcr-janitor"
