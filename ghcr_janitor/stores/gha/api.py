"""REST calls for one repository's Actions cache (gha-cache.md §1): list every entry, delete
by id, usage, the cache's size and retention limits (where each was read), and the refs' states
(default branch, branches, pull requests).

Listing reads every page (`per_page=100`, `Link` followed as written) before anything is
decided. Deleting is by id only: keys contain `#` and `:`, and delete-by-key without a ref
hits every branch. Errors name the permission that is missing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import httpx

from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError
from ghcr_janitor.core.files import read_regular
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.net.github import GitHubRest, _message, _unauthorised

log = logging.getLogger("ghcr_janitor.gha")

PER_PAGE = 100
MAX_PAGES = 1_000                       # 100,000 entries
GB = 1024 ** 3                          # GitHub's "GB" of cache limits, as the janitor counts it
DEFAULT_LIMIT = 10 * GB                 # GitHub's default repository cache limit ("10 GB")
DEFAULT_RETENTION_DAYS = 7              # "not accessed in over 7 days" (the default retention limit)
# Where a limit was read (`limit_source` / `retention_source` in `ls` JSON), most specific first.
REPOSITORY, ORGANISATION, USAGE_ENDPOINT, USAGE_POLICY, DEFAULT = (
    "repository", "organisation", "usage endpoint", "usage policy", "default")
TOKEN_MISSING = ("no GitHub token for the Actions cache API: set GITHUB_TOKEN or GH_TOKEN "
                 "(in a workflow: env GITHUB_TOKEN: ${{ github.token }})")
READ_NEEDS = ("Actions read permission (a workflow: `permissions: actions: read`; a fine-grained token: "
              "Actions read; a classic token: repo)")
WRITE_NEEDS = ("Actions write permission (a workflow: `permissions: actions: write`; a fine-grained token: "
               "Actions write; a classic token: repo)")
FORK_TOKEN = ("this run's GITHUB_TOKEN is read-only: workflows triggered by a pull request from a fork "
              "(or by Dependabot) cannot delete caches; run the cleanup on `pull_request_target` or "
              "`schedule` instead (see cron/github-actions-cache.yml)")


@dataclass(frozen=True)
class CacheLimits:
    """The repository's cache size limit (bytes) and retention limit (days), each with where it
    was read: REPOSITORY, ORGANISATION, USAGE_ENDPOINT, USAGE_POLICY (GHES) or DEFAULT."""

    size: int
    size_source: str
    retention_days: int
    retention_source: str


def _positive(body: object, field: str) -> float | None:
    """`body[field]` if it is a positive number, else None."""
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return value
    return None


class LookExpired(RegistryError):
    """A DELETE would have waited (a rate limit) past the time its caller's last look was good for:
    it was not sent; look again, then delete."""


@dataclass(frozen=True)
class CacheEntry:
    """One entry as the REST API lists it."""

    id: int
    key: str
    ref: str
    version: str
    size: int
    created_at: datetime | None
    last_accessed_at: datetime | None


def parse_entry(item: object) -> CacheEntry:
    """An `actions_caches[]` item as documented; RegistryError naming the field if malformed."""
    if not isinstance(item, dict):
        raise RegistryError("Actions cache listing: an entry is not an object")
    for name, kind in (("id", int), ("key", str), ("ref", str), ("size_in_bytes", int)):
        value = item.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RegistryError(f"Actions cache listing: entry {item.get('id')!r}: {name} is missing or not {kind.__name__}")
    if item["size_in_bytes"] < 0 or item["id"] < 0:
        raise RegistryError(f"Actions cache listing: entry {item['id']}: negative number")
    version = item.get("version")
    if not isinstance(version, str):
        # Without it a BuildKit entry cannot be told from an actions/cache one: refuse to guess.
        raise RegistryError(f"Actions cache listing: entry {item['id']}: version is missing or not a string")
    return CacheEntry(item["id"], item["key"], item["ref"], version, item["size_in_bytes"],
                      parse_time(item.get("created_at")), parse_time(item.get("last_accessed_at")))


MAX_EVENT_BYTES = 64 << 20         # GitHub's event payloads are at most a few MiB


def fork_pull_request(settings: Settings) -> bool:
    """Does this process run in a workflow triggered by a pull request from a fork?"""
    if settings.event_name not in ("pull_request", "pull_request_review", "pull_request_review_comment"):
        return False
    try:
        event = json.loads(read_regular(settings.event_path or "", MAX_EVENT_BYTES))
        return bool(event["pull_request"]["head"]["repo"]["fork"])
    except (OSError, ValueError, KeyError, TypeError):
        return settings.actor == "dependabot[bot]"


class ActionsCacheApi(GitHubRest):
    """The Actions cache REST endpoints of `owner/repo`."""

    token_missing = TOKEN_MISSING
    delete_endpoint = "DELETE /repos/{owner}/{repo}/actions/caches/{cache_id}"

    def __init__(self, owner: str, repo: str, token, *, settings: Settings | None = None, **options):
        super().__init__(token, **options)
        self.owner, self.repo = owner, repo
        self.settings = Settings() if settings is None else settings
        self.base = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"
        self.short_listing: tuple[int, int] | None = None     # (listed, total_count) if fewer were seen
        self.owner_type: str | None = None                    # "Organization" / "User", once the repository was read
        self._usage_body: dict | None = None                  # the usage endpoint's last answer
        self._send_by: float | None = None                    # a DELETE in flight must go out by then

    def __repr__(self) -> str:
        return f"ActionsCacheApi({self.api_url}, {self.owner}/{self.repo})"

    @property
    def where(self) -> str:
        return f"the Actions cache of {self.owner}/{self.repo}"

    def _denied(self, response: httpx.Response, doing: str, needs: str) -> AuthError:
        message = _message(response)
        if needs is WRITE_NEEDS and fork_pull_request(self.settings):
            return AuthError(f"{doing} {self.where}: access denied (403: {message}); {FORK_TOKEN}", status=403)
        return AuthError(f"{doing} {self.where}: access denied (403: {message}); the token needs {needs}", status=403)

    def _check(self, response: httpx.Response, doing: str, needs: str = READ_NEEDS) -> None:
        status = response.status_code
        if status == 401:
            raise _unauthorised(response)
        if status == 403:
            raise self._denied(response, doing, needs)
        if status == 404:
            raise NotFoundError(f"{doing} {self.where}: repository not found, or the token cannot see it "
                                f"(it needs {needs})", status=404)
        if status != 200:
            raise RegistryError(f"{doing} {self.where}: GitHub API answered {status}: {_message(response)}",
                                status=status)

    @staticmethod
    def _json(response: httpx.Response, doing: str) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RegistryError(f"{doing}: the answer is not a JSON object")
        return body

    async def list_entries(self, ref: str | None = None) -> list[CacheEntry]:
        """Every entry (of `ref` only, if given), every page, before anything is decided (never
        delete while paging). Sets `short_listing` when fewer were seen than the API counted."""
        entries, self.short_listing = await self.listing(ref)
        return entries

    async def listing(self, ref: str | None = None, key: str | None = None
                      ) -> tuple[list[CacheEntry], tuple[int, int] | None]:
        """(entries sorted by id, (listed, total_count) if the listing came back short, else None).
        With `ref` and `key` GitHub filters (`key` is a prefix); only entries of exactly that ref
        whose key starts with `key` are returned."""
        doing = "listing"
        # Oldest first by creation: new entries land on the last page and a restore does not move an
        # entry between pages (the default order, last_accessed_at desc, does).
        order = "sort=created_at&direction=asc" + "".join(
            f"&{name}={quote(value, safe='')}" for name, value in (("ref", ref), ("key", key)) if value is not None)
        url: str | None = f"{self.api_url}{self.base}/actions/caches?per_page={PER_PAGE}&{order}"
        found: dict[int, CacheEntry] = {}
        total = None
        page = 1
        for _ in range(MAX_PAGES):
            assert url is not None
            response, _ = await self.request("GET", url)
            self._check(response, doing)
            body = self._json(response, f"listing {self.where}")
            items = body.get("actions_caches")
            if not isinstance(items, list):
                raise RegistryError(f"listing {self.where}: actions_caches is not a list")
            if isinstance(body.get("total_count"), int):
                total = body["total_count"]
            for item in items:
                entry = parse_entry(item)
                found[entry.id] = entry         # an entry that moved pages while we read is listed once
            url = self.next_page(response, f"listing {self.where}")
            if url is None and items and total is not None and len(found) < total:
                page += 1                       # no Link header: page numbers, as total_count says
                url = f"{self.api_url}{self.base}/actions/caches?per_page={PER_PAGE}&{order}&page={page}"
            if url is None or not items:
                break
        else:
            raise RegistryError(f"listing {self.where}: more than {MAX_PAGES} pages")
        # Entries evicted while paging is normal; entries we never saw are not: the caller says so.
        short = (len(found), total) if total is not None and len(found) < total else None
        entries = sorted((e for e in found.values() if ref in (None, e.ref) and e.key.startswith(key or "")),
                         key=lambda e: e.id)
        return entries, short

    async def _wait(self, seconds: float, why: str) -> None:
        """A rate-limit wait; during a DELETE with `send_by`, one that would end later raises LookExpired."""
        if self._send_by is not None and seconds <= self.max_wait and self.clock() + seconds > self._send_by:
            self.pacer.wait_handed_over()
            raise LookExpired(f"GitHub API {why}: waiting {seconds:.0f}s would outlast the last look")
        await super()._wait(seconds, why)

    async def _pace_wait(self, seconds: float) -> None:
        """The pacer's wait before a DELETE; one that would send it after `send_by` raises LookExpired."""
        if self._send_by is not None and self.clock() + seconds > self._send_by:
            raise LookExpired(f"GitHub API delete pacing: waiting {seconds:.0f}s would outlast the last look")
        await super()._pace_wait(seconds)

    async def delete(self, cache_id: int, *, send_by: float | None = None) -> bool:
        """DELETE one entry by id: True if deleted, False if it was already gone (404).

        `send_by` (the api's clock): a rate-limit wait that would send it later raises LookExpired
        instead, unsent. Deletes are sent one at a time (the applier is sequential).
        """
        self._send_by = send_by
        try:
            response, retried = await self.request("DELETE", f"{self.api_url}{self.base}/actions/caches/{int(cache_id)}")
        finally:
            self._send_by = None
        status = response.status_code
        if status in (200, 202, 204):
            return True
        if status == 404:
            return retried                  # a 404 on a retry: our first DELETE went through
        if status == 401:
            raise _unauthorised(response)
        if status == 403:
            raise self._denied(response, f"deleting entry {cache_id} of", WRITE_NEEDS)
        raise RegistryError(f"deleting entry {cache_id} of {self.where}: GitHub API answered {status}: "
                            f"{_message(response)}", status=status)

    async def org_repositories(self) -> list[str]:
        """`OWNER/REPO` of the organisation's repositories with cache usage (for `gha:OWNER/*`)."""
        url = f"{self.api_url}/orgs/{quote(self.owner, safe='')}/actions/cache/usage-by-repository?per_page={PER_PAGE}"
        names: list[str] = []
        async for response in self.get_pages(url, f"listing repositories with caches of {self.owner!r}", MAX_PAGES):
            if response.status_code in (401, 403, 404):
                raise AuthError(f"listing the repositories with caches of {self.owner!r} answered {response.status_code} "
                                f"({_message(response)}): it needs an organisation and a token with the organisation's "
                                "Administration read permission (classic: read:org); or name each gha:OWNER/REPO",
                                status=response.status_code)
            self._check(response, "listing the repositories with caches for")
            items = self._json(response, "listing repositories with caches").get("repository_cache_usages")
            if not isinstance(items, list):
                raise RegistryError("listing repositories with caches: repository_cache_usages is not a list")
            names += [i["full_name"] for i in items if isinstance(i, dict) and isinstance(i.get("full_name"), str)]
            if not items:
                break
        return sorted(set(names))

    async def default_branch(self) -> str:
        response = await self._get(self.base)
        self._check(response, "reading the repository of")
        body = self._json(response, "reading the repository")
        owner = body.get("owner")
        if isinstance(owner, dict) and isinstance(owner.get("type"), str):
            self.owner_type = owner["type"]
        branch = body.get("default_branch")
        if not isinstance(branch, str) or not branch:
            raise RegistryError(f"reading {self.owner}/{self.repo}: no default_branch in the answer")
        return branch

    async def exists(self, path: str) -> bool | None:
        """200 -> True, 404 -> False, anything else -> None (unknown)."""
        response = await self._get(f"{self.base}{path}")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        return None

    async def pull_state(self, number: int) -> str | None:
        """"open" / "closed" (merged PRs are closed), or None if it cannot be read."""
        response = await self._get(f"{self.base}/pulls/{int(number)}")
        if response.status_code != 200:
            return None
        state = self._json(response, f"reading pull request {number}").get("state")
        return state if state in ("open", "closed") else None

    async def usage(self) -> int | None:
        response = await self._get(f"{self.base}/actions/cache/usage")
        if response.status_code != 200:
            return None
        self._usage_body = body = self._json(response, "reading cache usage")
        value = body.get("active_caches_size_in_bytes")
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    async def _setting(self, path: str) -> tuple[dict | None, str]:
        """GET a limit endpoint: (its JSON object, "") or (None, why not). Never raises for an
        answer: a 403 (no permission), 404 (older GHES, a user's repository, nothing set) or
        anything unreadable is a reason to fall back, not to fail the run."""
        response, _ = await self.request("GET", f"{self.api_url}{path}")
        if response.status_code != 200:
            return None, f"{response.status_code}"
        try:
            body = response.json()
        except ValueError:
            body = None
        return (body, "") if isinstance(body, dict) else (None, "not a JSON object")

    async def _first(self, what: str, unit: str, steps: list[tuple[str, str, str | None, str]],
                     default: tuple[float, str]) -> tuple[float, str]:
        """(value, source) of the first step whose answer has a positive `field`, else `default`.
        A step is (source, label, path, field); path None reads the usage endpoint's last answer.
        One -v log line says what was tried when the first step did not answer."""
        tried = []
        found = default
        for source, label, path, field in steps:
            if path is None:
                body, why = self._usage_body, "" if self._usage_body is not None else "not read"
            else:
                body, why = await self._setting(path)
            value = _positive(body, field)
            if value is not None:
                found = (value, source)
                break
            tried.append(f"{label}: {why or f'no {field}'}")
        if tried:
            log.info("%s/%s: cache %s %g %s from the %s (%s)", self.owner, self.repo, what,
                     found[0], unit, found[1], "; ".join(tried))
        return found

    async def limits(self) -> CacheLimits:
        """The cache size limit, from the first that says: the repository's storage-limit, the
        organisation's (not asked for a user's repository), the usage endpoint's `max_cache_size_gb`,
        GHES's repository usage-policy, else GitHub's 10 GB default; the retention limit from the
        repository's retention-limit, the organisation's, else the 7-day default."""
        repo, org = f"{self.base}/actions/cache", f"/organizations/{quote(self.owner, safe='')}/actions/cache"
        asks_org = self.owner_type in (None, "Organization")
        size_steps = [(REPOSITORY, "repository storage-limit", f"{repo}/storage-limit", "max_cache_size_gb")]
        if asks_org:
            size_steps.append((ORGANISATION, "organisation storage-limit", f"{org}/storage-limit", "max_cache_size_gb"))
        size_steps += [(USAGE_ENDPOINT, "usage endpoint", None, "max_cache_size_gb"),
                       (USAGE_POLICY, "usage policy", f"{repo}/usage-policy", "repo_cache_size_limit_in_gb")]
        size, size_source = await self._first("size limit", "GB", size_steps, (DEFAULT_LIMIT / GB, DEFAULT))
        days_steps = [(REPOSITORY, "repository retention-limit", f"{repo}/retention-limit", "max_cache_retention_days")]
        if asks_org:
            days_steps.append((ORGANISATION, "organisation retention-limit", f"{org}/retention-limit",
                               "max_cache_retention_days"))
        days, days_source = await self._first("retention limit", "days", days_steps, (DEFAULT_RETENTION_DAYS, DEFAULT))
        return CacheLimits(int(size * GB), size_source, int(days), days_source)
