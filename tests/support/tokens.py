"""Tokens shaped like GitHub's 2026 formats, for tests that a token is taken as it is."""

from __future__ import annotations

import base64
import os


def long_token(prefix: str = "ghs_", length: int = 520) -> str:
    """`length` characters: a prefix, an app id, then a JWT-like tail (base64url parts and dots),
    as the 2026 installation tokens (`ghs_APPID_JWT`, ~520 chars, variable length) are."""
    jwt = base64.urlsafe_b64encode(os.urandom(length)).decode().rstrip("=")
    body = f"{prefix}1234567_{jwt[:20]}.{jwt[20:]}"
    return body[:length - 2] + ".x"
