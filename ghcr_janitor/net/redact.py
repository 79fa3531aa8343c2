"""Secrets out of text a server sent back (an error body that echoes a token must not reach our
one-line message), and the one-line cut, in that order: a token cut in half by the cut would no
longer be found whole."""

from __future__ import annotations

from typing import Iterable

REDACTED = "********"
SECRET_PREFIX = 12                 # an echo cut short still starts with this much of the token
MIN_SECRET = 8                     # shorter values are not searched for (they would match ordinary text)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` without any of `secrets`: each whole secret, and any run of non-blank characters that
    starts with a secret's first SECRET_PREFIX characters (an echo the server cut short)."""
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET:
            continue
        text = text.replace(secret, REDACTED)
        head = secret[:SECRET_PREFIX]
        while head in text:
            start = end = text.index(head)
            while end < len(text) and not text[end].isspace():
                end += 1
            text = text[:start] + REDACTED + text[end:]
    return text


def one_line(text: str, secrets: Iterable[str | None] = (), limit: int = 200) -> str:
    """`text` scrubbed of `secrets`, then on one line and at most `limit` characters."""
    return " ".join(scrub(text, secrets).split())[:limit]
