"""Parse target strings: `HOST[:PORT]/NAME[:TAG|@DIGEST]`, `ghcr.io/OWNER/NAME`,
`ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO` (Amazon ECR), `docker.io/NS/REPO` or `NS/REPO` (Docker
Hub), `registry.gitlab.com/GROUP/PROJECT[/IMAGE]`, `NAME.azurecr.io/REPO`,
`REGION-docker.pkg.dev/PROJECT/REPO/IMAGE` and `gcr.io/PROJECT/IMAGE`, `oci-layout:PATH`, `gha:OWNER/REPO`.

The kind parsed here is the host's as recognised without settings (`known_kind`); a settings file
may name another one for any host (`stores.connect.kind_of`)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import UsageError

OCI = "oci"
GHCR = "ghcr"
LAYOUT = "layout"
GHA = "gha"
ECR = "ecr"
DOCKERHUB = "dockerhub"
GITLAB = "gitlab"
HARBOR = "harbor"
ACR = "acr"
GAR = "gar"
REGISTRY_KINDS = (OCI, GHCR, ECR, DOCKERHUB, GITLAB, HARBOR, ACR, GAR)     # what a settings file may name

DOCKERHUB_HOST = "docker.io"
# What docker writes for Hub (`docker login` stores `https://index.docker.io/v1/`): all one registry.
DOCKERHUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
GITLAB_HOST = "registry.gitlab.com"
_ACR_HOST = re.compile(r"^[a-z0-9]{5,50}\.azurecr\.(?:io|cn|us)$")
_GAR_HOST = re.compile(r"^(?:[a-z0-9-]+-docker\.pkg\.dev|(?:[a-z]+\.)?gcr\.io)$")

GHCR_HOST = "ghcr.io"
_NAME = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
GLOB_CHARS = "*?["
_GLOB_PART = re.compile(r"^[A-Za-z0-9._\-*?\[\]!]+$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
PREFIXES = ("oci-layout:", "gha:")
_GH_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_GH_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_DOTTED_NUMBERS = re.compile(r"^[0-9]+(?:\.[0-9]+){3}$")   # what URL parsers (httpx) read as IPv4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Amazon ECR private registries: ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn] (no port).
_ECR_HOST = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)"
                       r"\.amazonaws\.com(?P<cn>\.cn)?$")
_LOOKS_ECR = re.compile(r"\.dkr\.ecr(?:-fips)?\..*amazonaws\.com(?:\.cn)?(?::\d*)?$")   # near misses: usage errors
# ECR's own repository-name pattern (2-256 characters; no `__` or `--` runs as OCI allows).
_ECR_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")


@dataclass(frozen=True)
class EcrHost:
    """What an ECR registry host says: the account (registry id), the region, FIPS or not."""

    account: str
    region: str
    fips: bool = False


def ecr_host(host: str) -> EcrHost | None:
    """The account and region of an ECR registry host, or None if `host` is not one."""
    match = _ECR_HOST.match(host.lower())
    if match is None:
        return None
    return EcrHost(match["account"], match["region"], bool(match["fips"]))


def known_kind(host: str) -> str:
    """The kind of a registry host recognised without settings (SaaS hosts), else OCI."""
    bare = host.lower()
    if bare == GHCR_HOST:
        return GHCR
    if ecr_host(bare):
        return ECR
    if bare in DOCKERHUB_ALIASES:
        return DOCKERHUB
    if bare == GITLAB_HOST:
        return GITLAB
    if _ACR_HOST.match(bare):
        return ACR
    if _GAR_HOST.match(bare):
        return GAR
    return OCI


def check_host(host: str, text: str) -> None:
    """UsageError unless `host` is NAME, IPv4 or [IPv6], with an optional port 1-65535."""
    def bad(why: str) -> UsageError:
        return UsageError(f"target {text!r}: {host!r} is not a valid HOST[:PORT] ({why})")

    if host.startswith("["):
        inside, closed, after = host[1:].partition("]")
        if not closed:
            raise bad("'[' without ']'")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise bad("not an IPv6 address in brackets") from None
        if after and not after.startswith(":"):
            raise bad("unexpected text after ']'")
        name, port = inside, after[1:] if after else None
    else:
        name, sep, port_text = host.partition(":")
        port = port_text if sep else None
        if not name:
            raise bad("empty host")
        if ":" in port_text:
            raise bad("more than one ':'")
        if port is not None and not port.isdigit() and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", name):
            raise UsageError(f"target {text!r}: unknown prefix {name + ':'!r} (known: {', '.join(PREFIXES)}; "
                             "registries are HOST[:PORT]/NAME)")
        if not _HOSTNAME.match(name):
            raise bad("not a host name or IPv4 address")
        if _DOTTED_NUMBERS.match(name):
            try:
                ipaddress.IPv4Address(name)
            except ValueError:
                raise bad("not an IPv4 address") from None
    if port is not None:
        if not (port.isascii() and port.isdigit()):
            raise bad(f"port {port!r} is not a number")
        if not 1 <= int(port) <= 65535:
            raise bad(f"port {port} is out of range 1-65535")


@dataclass(frozen=True)
class Target:
    """A parsed target. `name` is the repository (or layout path); tag/digest optional."""

    kind: str
    host: str
    name: str
    tag: str | None = None
    digest: str | None = None
    glob: bool = False          # the last part of the name is a glob: expanded before planning

    @property
    def repository(self) -> str:
        """`HOST/NAME` (or `oci-layout:PATH`) without tag or digest."""
        if self.kind == LAYOUT:
            return f"oci-layout:{self.name}"
        if self.kind == GHA:
            return f"gha:{self.name}"
        return f"{self.host}/{self.name}"

    @property
    def reference(self) -> str | None:
        return self.digest or self.tag

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    bare = host
    if bare.startswith("["):
        bare = bare[1:].split("]", 1)[0]
    elif bare.count(":") == 1:
        bare = bare.split(":", 1)[0]
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def _split_layout(path: str) -> Target:
    tag = digest = None
    if "@" in path:
        path, digest = path.rsplit("@", 1)
    # A `:TAG` suffix on a layout path: only if what precedes is a directory and the
    # whole string is not one.
    if ":" in path and not os.path.isdir(path):
        base, maybe_tag = path.rsplit(":", 1)
        if TAG_PATTERN.match(maybe_tag) and "/" not in maybe_tag:
            path, tag = base, maybe_tag
    if not path:
        raise UsageError("oci-layout target has no path: use oci-layout:PATH")
    if ".." not in path.split("/"):     # one name per directory (history, journal): `d/`, `d/./` -> `d`
        path = os.path.normpath(path)   # (`..` stays: through a symlink it need not mean the parent)
    return Target(LAYOUT, "", path, tag, digest)


def _gha(rest: str, text: str) -> Target:
    """`gha:OWNER/REPO`: a repository's GitHub Actions cache."""
    owner, _, repo = rest.partition("/")
    if (":" in repo or "@" in repo) and _GH_OWNER.match(owner):
        raise UsageError(f"target {text!r}: a gha: target takes no :TAG or @DIGEST (the Actions cache has "
                         "keys, not tags; a policy selects entries by key)")
    glob = any(c in repo for c in GLOB_CHARS)
    if glob and _GH_OWNER.match(owner) and _GLOB_PART.match(repo):
        return Target(GHA, "", f"{owner}/{repo}", glob=True)
    if not _GH_OWNER.match(owner) or not _GH_REPO.match(repo) or repo in (".", ".."):
        raise UsageError(f"target {text!r}: expected gha:OWNER/REPO (a GitHub repository, e.g. gha:acme/app) "
                         "or gha:OWNER/* (its repositories with caches)")
    return Target(GHA, "", f"{owner}/{repo}")


def parse_target(text: str) -> Target:
    """Parse a target string; UsageError with the reason if it is not one."""
    raw = text.strip()
    if not raw:
        raise UsageError("empty target")
    if _CONTROL.search(raw):
        raise UsageError(f"target {text[:200]!r}: contains a control character")
    if raw.startswith("oci-layout:"):
        return _split_layout(raw[len("oci-layout:"):])
    if raw.startswith("gha:"):
        return _gha(raw[len("gha:"):], text)
    path = raw.split("@")[0]
    if any(os.path.isfile(os.path.join(p, "oci-layout")) for p in (path, path.rsplit(":", 1)[0])):
        return _split_layout(raw)       # a PATH (optionally :TAG) holding an OCI layout
    if raw.startswith(("/", "./", "../", "~")):       # a path, never HOST/NAME
        return _split_layout(os.path.expanduser(raw))
    for scheme in ("https://", "http://"):
        if raw.startswith(scheme):
            host = raw[len(scheme):].split("/", 1)[0]
            how = ("loopback hosts use plain HTTP without a flag" if is_loopback(host)
                   else "HTTPS is the default; --insecure allows plain HTTP")
            raise UsageError(f"target {text!r}: give HOST/NAME without {scheme} ({how})")
    if "/" not in raw:
        raise UsageError(f"target {text!r}: expected HOST[:PORT]/NAME, ghcr.io/OWNER/NAME, ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO, NS/REPO (Docker Hub), oci-layout:PATH or gha:OWNER/REPO")
    host, rest = raw.split("/", 1)
    if not ("." in host or ":" in host or host == "localhost" or host.startswith("[")):
        host, rest = DOCKERHUB_HOST, raw        # `NS/REPO` is on Docker Hub, as docker reads it
    check_host(host, text)
    if host.lower() in DOCKERHUB_ALIASES:
        host = DOCKERHUB_HOST
    tag = digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not is_digest(digest):
            raise UsageError(f"target {text!r}: invalid digest {digest!r} (expected sha256:<64 hex>)")
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not TAG_PATTERN.match(tag):
            raise UsageError(f"target {text!r}: invalid tag {tag!r}")
    kind = known_kind(host)
    if kind == OCI and _LOOKS_ECR.search(host.lower()):
        raise UsageError(f"target {text!r}: {host!r} looks like an Amazon ECR host but is not one "
                         "(expected ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]: a 12-digit account, a region, no port)")
    if kind != OCI:
        host = host.lower()         # a SaaS host (an unknown host keeps its spelling: credentials are keyed by it)
    head, _, last = rest.rpartition("/")
    if any(c in last for c in GLOB_CHARS):
        if tag or digest:
            raise UsageError(f"target {text!r}: a glob target takes no :TAG or @DIGEST (name each repository "
                             "as REPOSITORY:TAG to restrict a run to one tag)")
        if not _GLOB_PART.match(last) or (head and not _NAME.match(head)):
            raise UsageError(f"target {text!r}: a glob may only be the last part of the name (HOST/team/*, "
                             "ghcr.io/OWNER/app-*)")
        if kind == GHCR and not head:
            raise UsageError(f"target {text!r}: expected ghcr.io/OWNER/GLOB (the owner's container packages)")
        if kind == DOCKERHUB and not head:
            raise UsageError(f"target {text!r}: expected docker.io/NAMESPACE/GLOB (a namespace's repositories)")
        return Target(kind, host, rest, glob=True)
    if not _NAME.match(rest):
        raise UsageError(f"target {text!r}: invalid repository name {rest!r} (lowercase, digits, . _ - and /)")
    if kind == ECR and not (2 <= len(rest) <= 256 and _ECR_NAME.match(rest)):
        raise UsageError(f"target {text!r}: invalid ECR repository name {rest!r} (2-256 characters: lowercase "
                         "letters and digits, one of . _ - between them, / between parts)")
    if kind == GHCR and "/" not in rest:
        raise UsageError(f"target {text!r}: expected ghcr.io/OWNER/NAME")
    if kind == DOCKERHUB and rest.count("/") != 1:
        raise UsageError(f"target {text!r}: expected docker.io/NAMESPACE/REPOSITORY (Docker Hub names have two parts; "
                         "official images as library/NAME)")
    return Target(kind, host, rest, tag, digest)


def parse_run_target(text: str) -> Target:
    """A target of `ls`, `plan`, `prune` or `report`: `REPOSITORY` or `REPOSITORY:TAG` (the run is
    restricted to that tag); `@DIGEST` names one artifact, which only `inspect` takes (UsageError)."""
    target = parse_target(text)
    if target.digest is not None:
        raise UsageError(f"target {text!r}: @DIGEST names one artifact, for `janitor inspect`; ls, plan, prune "
                         "and report take REPOSITORY or REPOSITORY:TAG")
    return target
