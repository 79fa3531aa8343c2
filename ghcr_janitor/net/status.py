"""Turn registry error responses into clear `RegistryError`s (bodies may not be JSON)."""

from __future__ import annotations

import httpx

from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError

_MAX_MESSAGE = 200


def error_code(response: httpx.Response) -> tuple[str | None, str | None]:
    """(code, message) of the first OCI error in the body, if the body is OCI JSON."""
    try:
        doc = response.json()
        first = doc["errors"][0]
        return str(first.get("code")), str(first.get("message") or "")[:_MAX_MESSAGE]
    except Exception:  # body may be plain text, HTML, empty or not read
        return None, None


def raise_for_status(response: httpx.Response, doing: str) -> None:
    """Raise a RegistryError subclass for 4xx/5xx, naming what we were doing."""
    status = response.status_code
    if status < 400:
        return
    code, message = error_code(response)
    detail = f"{status} {code}" if code else str(status)
    if message:
        detail += f": {message}"
    if status == 401:
        raise AuthError(f"{doing}: not authorised ({detail}); check credentials", status=status, code=code)
    if status == 403:
        raise AuthError(f"{doing}: access denied ({detail}); the credentials lack permission", status=status, code=code)
    if status == 404:
        raise NotFoundError(f"{doing}: not found ({detail})", status=status, code=code)
    raise RegistryError(f"{doing}: registry answered {detail}", status=status, code=code)


def json_of(body: bytes, doing: str, kind: type = dict, who: str = "the API") -> "dict | list":
    """`body` parsed as a JSON object (or `kind` list); one-line `RegistryError` naming `doing` and
    `who` answered otherwise."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(f"{doing}: {who}'s answer is not JSON") from None
    if not isinstance(doc, kind):
        raise RegistryError(f"{doing}: {who}'s answer is not a JSON {'object' if kind is dict else 'list'}")
    return doc
