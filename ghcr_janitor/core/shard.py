"""Deterministic sharding of targets: `--shard I/N` (1-based)."""

from __future__ import annotations

import hashlib

from ghcr_janitor.core.errors import UsageError


def parse_shard(text: str) -> tuple[int, int]:
    try:
        left, right = text.split("/", 1)
        index, count = int(left), int(right)
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 1/4") from None
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text!r}: need 1 <= I <= N")
    return index, count


def shard_of(target: str, count: int) -> int:
    """1-based shard of a target: a stable hash, the same on every machine and run."""
    value = int.from_bytes(hashlib.sha256(target.encode()).digest()[:8], "big")
    return value % count + 1


def select_shard(targets: list[str], index: int, count: int) -> list[str]:
    seen: set[str] = set()
    chosen = []
    for target in targets:
        if target not in seen and shard_of(target, count) == index:
            seen.add(target)
            chosen.append(target)
    return chosen
