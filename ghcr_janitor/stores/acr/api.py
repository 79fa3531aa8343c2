"""ACR's metadata API (`/acr/v1`, Azure/azure-rest-api-specs `containerregistry.json` 2021-07-01) and
its digest DELETE, with every answer mapped to `core.errors` in one line naming what was refused.

- `GET /acr/v1/{repo}/_tags?n=&last=`: `tags[]` of `{name, digest, createdTime, lastUpdateTime,
  signed, changeableAttributes{deleteEnabled, writeEnabled, readEnabled, listEnabled}}`;
- `GET /acr/v1/{repo}/_manifests?n=&last=`: `manifests[]` of `{digest, imageSize, createdTime,
  lastUpdateTime, architecture, os, mediaType, configMediaType, tags[], changeableAttributes}`,
  untagged manifests and index children included;
- `GET /acr/v1/_catalog?n=&last=`: `repositories[]`;
- `GET /acr/v1/{repo}`, `.../_tags/{tag}`, `.../_manifests/{digest}`: one item's attributes
  (`changeableAttributes`, `tag`, `manifest`);
- `DELETE /acr/v1/{repo}/_tags/{tag}`: untag (202; 404 when gone); `DELETE /v2/{repo}/manifests/{digest}`:
  the manifest and every tag on it (202). A locked item answers 405 `REGISTRY_DISALLOWED_OPERATION`.

Lists are `Link`-paginated (`rel="next"`; the body's `link` where the header is missing), at most
1,000 items a page whatever `n` asks: `n=1000` is sent, so a listing costs a request per 1,000. A
link to another scheme or host is not followed (`net.links.same_origin`), a repeated one is an error,
an empty page ends the listing. Every answer is read to at most `BODY_CAP` bytes; a redirect is an
error, never a success (a DELETE answered 3xx deleted nothing); what an error answer echoes is
scrubbed of the run's secrets before it is cut to one line.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable
from urllib.parse import quote, urlsplit

from ghcr_janitor.core.errors import AuthError, CannotUntag, NotFoundError, RegistryError
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, ThreadedClient
from ghcr_janitor.net.links import next_link, same_origin
from ghcr_janitor.net.redact import one_line

PAGE_SIZE = 1000                # ACR's cap per page, whatever `n` asks
MAX_PAGES = 10_000
BODY_CAP = 32 << 20             # a page of 1,000 manifests with their tags is a few MB
LOCKED_CODE = "REGISTRY_DISALLOWED_OPERATION"


class LockedError(CannotUntag):
    """ACR refuses a delete because a lock (`deleteEnabled`/`writeEnabled = false`) covers the item:
    the action is skipped with this reason, nothing changed."""


class AcrApi:
    """The metadata API of one registry at `api_base` (normally the registry's own base URL)."""

    def __init__(self, client: ThreadedClient, api_base: str, registry_base: str, log: RequestLog):
        self.client = client
        self.api_base = api_base.rstrip("/")
        self.registry_base = registry_base.rstrip("/")
        self.log = log

    async def _send(self, method: str, url: str) -> tuple[Any, bytes]:
        try:
            return await self.client.send(method, url, log_to=self.log, cap=BODY_CAP)
        except BodyTooLarge as exc:
            size = f"a {exc.size}-byte answer" if exc.size is not None else "an answer"
            raise RegistryError(f"{method} {url.partition('?')[0]}: ACR sent {size} over the {BODY_CAP} byte "
                                "cap; refused") from None

    def secrets(self) -> list[str]:
        """The secrets the client's auth holds (what an error answer must not echo back)."""
        auth = getattr(getattr(self.client, "client", None), "auth", None)
        found = getattr(auth, "secrets", None)
        return found() if callable(found) else []

    # --- listings --------------------------------------------------------------------------------
    async def pages(self, path: str, field: str, doing: str) -> list[Any]:
        """Every item of a paginated `/acr/v1` list (`field` of each page), following `Link`."""
        url: str | None = f"{self.api_base}{path}?n={PAGE_SIZE}"
        items: list[Any] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            assert url is not None
            response, body = await self._send("GET", url)
            _check(response, body, doing, self.secrets)
            doc = _json(body, doing)
            page = doc.get(field) if isinstance(doc, dict) else None
            if page is None:
                page = []
            if not isinstance(page, list):
                raise RegistryError(f"{doing}: ACR's {field!r} is not a list")
            items.extend(page)
            link = next_link(response.headers.get("link")) or (doc.get("link") if isinstance(doc.get("link"), str) else None)
            if not link or not page:
                return items
            url = same_origin(url, link.strip().strip("<>"), doing)
            if url in seen:
                raise RegistryError(f"{doing}: ACR's Link header loops back to {link}")
            seen.add(url)
        raise RegistryError(f"{doing}: more than {MAX_PAGES} pages")

    async def tags(self, repo: str) -> list[dict]:
        return [t for t in await self.pages(f"/acr/v1/{repo}/_tags", "tags", f"listing the tags of {repo}")
                if isinstance(t, dict)]

    async def manifests(self, repo: str) -> list[dict]:
        return [m for m in await self.pages(f"/acr/v1/{repo}/_manifests", "manifests",
                                            f"listing the manifests of {repo}") if isinstance(m, dict)]

    async def catalog(self) -> list[str]:
        names = await self.pages("/acr/v1/_catalog", "repositories", f"listing the repositories of {self.api_base}")
        return [n for n in names if isinstance(n, str)]

    # --- one item --------------------------------------------------------------------------------
    async def _item(self, path: str, field: str | None, doing: str) -> dict | None:
        response, body = await self._send("GET", f"{self.api_base}{path}")
        if response.status_code == 404:
            return None
        _check(response, body, doing, self.secrets)
        doc = _json(body, doing)
        found = doc.get(field) if field else doc
        if not isinstance(found, dict):
            raise RegistryError(f"{doing}: ACR's answer has no {field or 'attributes'}")
        return found

    async def repository(self, repo: str) -> dict | None:
        return await self._item(f"/acr/v1/{repo}", None, f"reading the attributes of {repo}")

    async def tag(self, repo: str, tag: str) -> dict | None:
        """The tag's attributes now (`digest`, `changeableAttributes`), None if there is no such tag."""
        return await self._item(f"/acr/v1/{repo}/_tags/{quote(tag, safe='')}", "tag", f"reading tag {repo}:{tag}")

    async def manifest(self, repo: str, digest: str) -> dict | None:
        """The manifest's attributes now (`tags`, `changeableAttributes`), None if it is gone."""
        return await self._item(f"/acr/v1/{repo}/_manifests/{digest}", "manifest", f"reading manifest {repo}@{digest}")

    # --- deletes ---------------------------------------------------------------------------------
    async def delete_tag(self, repo: str, tag: str) -> None:
        """Untag (the manifest stays). NotFoundError if the tag is gone."""
        doing = f"untagging {repo}:{tag}"
        response, body = await self._send("DELETE", f"{self.api_base}/acr/v1/{repo}/_tags/{quote(tag, safe='')}")
        _check_delete(response, body, doing, self.secrets)

    async def delete_digest(self, repo: str, digest: str) -> None:
        """Delete the manifest and every tag on it. NotFoundError if it is gone."""
        doing = f"deleting {repo}@{digest}"
        response, body = await self._send("DELETE", f"{self.registry_base}/v2/{repo}/manifests/{digest}")
        _check_delete(response, body, doing, self.secrets)


def _json(body: bytes, doing: str) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise RegistryError(f"{doing}: ACR's answer is not JSON") from None


def error_code(body: bytes, secrets: Iterable[str | None] = ()) -> tuple[str | None, str]:
    """(code, message) of ACR's first error (`{"errors": [{"code", "message", "detail"}]}`), if any;
    the message scrubbed of `secrets` whole, then cut to one line."""
    try:
        first = json.loads(body)["errors"][0]
        return one_line(str(first.get("code")), secrets, 100), one_line(str(first.get("message") or ""), secrets)
    except Exception:           # plain text, HTML, empty
        return None, ""


def _redirect(response, doing: str) -> RegistryError:
    where = response.headers.get("location", "")
    host = ""
    if where:
        host = f" to {urlsplit(where).hostname or 'a relative location'}"
    return RegistryError(f"{doing}: ACR answered {response.status_code} (a redirect{host}, not followed); "
                         "a proxy or login page in the way?", status=response.status_code)


Secrets = Callable[[], Iterable[str | None]]


def _no_secrets() -> list[str]:
    return []


def _check(response, body: bytes, doing: str, secrets: Secrets = _no_secrets) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status < 400:
        raise _redirect(response, doing)
    code, message = error_code(body, secrets())
    detail = f"{status} {code}" if code else str(status)
    if status == 401:
        raise AuthError(f"{doing}: not authorised ({detail}); the credentials lack this permission on the registry, "
                        "or were refused", status=401, code=code)
    if status == 403:
        raise AuthError(f"{doing}: access denied ({detail}{': ' + message if message else ''}); a firewall rule or "
                        "the credentials' role refuses it", status=403, code=code)
    if status == 404:
        raise NotFoundError(f"{doing}: not found ({detail})", status=404, code=code)
    raise RegistryError(f"{doing}: ACR answered {detail}{': ' + message if message else ''}", status=status, code=code)


def _check_delete(response, body: bytes, doing: str, secrets: Secrets = _no_secrets) -> None:
    """Only ACR's documented answers to a DELETE (202; 200 and 204 alike) are a delete done."""
    status = response.status_code
    if status in (200, 202, 204):
        return
    if status < 400:
        raise RegistryError(f"{doing}: ACR answered {status}, not the 202 of a delete; not counted as deleted"
                            + (" (a redirect, not followed)" if 300 <= status < 400 else ""), status=status)
    code, message = error_code(body, secrets())
    if status == 404:
        raise NotFoundError(f"{doing}: not found (already gone?)", status=404, code=code)
    if status == 405 and code == LOCKED_CODE:
        raise LockedError(f"{doing}: refused by ACR, a lock covers it ({code}: deleteEnabled or writeEnabled is "
                          "false on the repository, the manifest or a tag on it); left alone", status=405, code=code)
    if status == 401:
        raise AuthError(f"{doing}: not authorised (401{' ' + code if code else ''}); the credentials lack the "
                        "delete permission on this repository (AcrDelete role, or a token with delete)",
                        status=401, code=code)
    _check(response, body, doing, secrets)
