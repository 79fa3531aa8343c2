"""Issue 21 step 0, point 1: report/ asks the inventory's store traits, never the store's kind.

A store that did not exist when report/ was written (here a stand-in "ecr": tags and untagged manifests
it lists itself, like GHCR) must show correctly in every output without a line of report/ changing:
`ls` table, JSON and Markdown, the plan table and Markdown, the step summary, the metrics and the HTML
report, in the words of a repository, never the Actions cache's. And no comparison with a store kind
may come back into report/ (the count below is 0; before issue 21 report/ compared `backend` with "gha"
21 times, 15 in its Python and 6 in its template, and wrote "gha" once as a JSON value).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import pkgutil
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import ghcr_janitor.stores
from ghcr_janitor.core.models import Artifact, Inventory, StoreTraits
from ghcr_janitor.plan.model import Action, Kept, Plan, TargetPlan
from ghcr_janitor.report import html
from ghcr_janitor.report.history import Row, repository_totals
from ghcr_janitor.report.inventory_view import inventory_dict, ls_document, ls_table
from ghcr_janitor.report.markdown import ls_markdown, plan_markdown, step_summary
from ghcr_janitor.report.metrics import build_registry
from ghcr_janitor.report.plan_view import plan_table

REPORT = Path(html.__file__).parent
# Every store kind there is or is planned (issue 21 and the next): none may be named in report/.
STORE_KINDS = ("oci", "ghcr", "layout", "gha", "ecr", "dockerhub", "docker-hub", "gitlab", "harbor", "acr", "gar")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
TARGET = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"
# What only the Actions cache may say about itself.
ACTIONS_CACHE_WORDS = re.compile(r"actions[ -]cache|cache entr|key family|ref state|\bgha\b", re.I)


# --- the count ---------------------------------------------------------------------------------------

def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            found.add(id(body[0].value))
    return found


def _names_kind(node: ast.AST) -> bool:
    """`backend`, `x.backend`, `self.backend`: the store's kind."""
    return (isinstance(node, ast.Name) and node.id == "backend") or (isinstance(node, ast.Attribute) and node.attr == "backend")


def _is_none(operands: list[ast.AST]) -> bool:
    """`backend is None` / `is not None`: whether a value is there, not which store it is."""
    return any(isinstance(n, ast.Constant) and n.value is None for n in operands)


def _is_kind_text(value: object) -> bool:
    return isinstance(value, str) and (value in STORE_KINDS or any(value.startswith(k + ":") for k in STORE_KINDS))


def python_switches(source: str) -> list[str]:
    """Comparisons with a store's kind (`backend == ...`, `... != backend`, `backend in (...)`, `match
    backend`; not `backend is None`) and string literals that are a store kind's name or target prefix ("gha", "gha:")."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        operands = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
        if any(_names_kind(n) for n in operands) and not _is_none(operands):
            found.append(f"{node.lineno}: compares backend")
        elif isinstance(node, ast.Match) and _names_kind(node.subject):
            found.append(f"{node.lineno}: match on backend")
        elif isinstance(node, ast.Constant) and id(node) not in docs and _is_kind_text(node.value):
            found.append(f"{node.lineno}: the store kind {node.value!r}")
    return found


TEMPLATE_SWITCH = re.compile(r"\bbackend\s*(==|!=|\bin\b|\bis\b)|(==|!=)\s*\w+\.backend\b|"
                             r"[\"'](" + "|".join(map(re.escape, STORE_KINDS)) + r")(:[^\"']*)?[\"']")


def template_switches(text: str) -> list[str]:
    return [f"{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in TEMPLATE_SWITCH.finditer(text)]


def switches(root: Path) -> dict[str, list[str]]:
    """Every switch on store kind under `root` (report/), per file."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.suffix == ".py":
            found = python_switches(path.read_text())
        elif path.suffix in (".j2", ".html", ".jinja"):
            found = template_switches(path.read_text())
        else:
            continue
        if found:
            out[str(path.relative_to(root))] = found
    return out


def test_the_counter_finds_switches_in_code_and_templates():
    code = ('def f(inv, tp):\n    """Only gha: targets."""\n    if inv.backend == "gha":\n        return 1\n'
            '    x = {"backend": "layout"}\n    return "ecr" if tp.backend != "oci" else inv.target.startswith("gha:")\n')
    assert len(python_switches(code)) == 7        # 2 comparisons, 5 kind names; not the docstring
    assert python_switches('def f(inv):\n    """The gha store."""\n    return inv.traits.entries\n') == []
    assert len(template_switches('{% if r.backend == "gha" %}x{% elif "ghcr" != r.backend %}{% endif %}')) == 4
    assert template_switches('{{ "key" if r.traits.entries else "tag" }} ({{ r.backend }})') == []


def test_report_never_switches_on_store_kind():
    assert switches(REPORT) == {}


# --- a store report/ has never heard of ------------------------------------------------------------

def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _art(name: str, blobs: dict[str, int], days: int, tags: list[str] = ()) -> Artifact:
    return Artifact(digest=dg(name), media_type="application/vnd.oci.image.manifest.v1+json", kind="buildkit-cache",
                    closure={dg(name): 500} | {dg(b): s for b, s in blobs.items()}, tags=list(tags),
                    created=NOW - timedelta(days=days), age_source="ecr/imagePushedAt", unique_size=100)


def new_store_inventory(**traits) -> Inventory:
    """Three tags (two of one family sharing a layer) and one untagged manifest the store listed."""
    arts = [_art("base", {"os": 60_000, "tools": 12_000}, 3, ["cache-base"]),
            _art("base-pr", {"os": 60_000, "pr": 9_000}, 40, ["cache-base-pr-7"]),
            _art("builder", {"build": 30_000}, 1, ["cache-builder"]),
            _art("old", {"old": 44_000}, 50)]
    tags = {t: a.digest for a in arts for t in a.tags}
    return Inventory(target=TARGET, tags=tags, artifacts={a.digest: a for a in arts}, listed=sorted(tags),
                     untagged=[dg("old")], backend="ecr", reclaim_note="freed at once (the stand-in store says)",
                     traits=StoreTraits(**{"lists_untagged": True} | traits))


def new_store_plan() -> Plan:
    tp = TargetPlan(target=TARGET, backend="ecr", reclaim_size=44_500 + 9_500, reclaim_note="freed at once (the stand-in store says)",
                    actions=[Action("delete", "cache-base-pr-7", dg("base-pr"), reclaim_size=9_500, rule="stale",
                                    reason="older than 30d", kind="buildkit-cache", size=78_500),
                             Action("delete", None, dg("old"), reclaim_size=44_500, rule="untagged",
                                    reason="untagged for 50 days", kind="buildkit-cache", size=44_500)],
                    kept=[Kept("cache-base", dg("base"), "newest of its family"),
                          Kept("cache-builder", dg("builder"), "newest of its family")])
    return Plan(created="2026-12-07T12:00:00Z", policy="policy.toml", targets=[tp])


def history() -> list[Row]:
    return [Row(f"2026-12-0{d}T12:00:00Z", "plan", TARGET, "ecr", 3, 200_000 + d * 1_000, 90_000, 50_000, None)
            for d in range(1, 7)]


def everything_rendered(inv: Inventory, plan: Plan) -> dict[str, str]:
    from prometheus_client import generate_latest

    reports = [html.target_report(inv, plan.targets[0], history(), NOW)]
    return {"ls table": ls_table(inv, NOW), "ls json": repr(ls_document([inv])), "ls markdown": ls_markdown([inv], NOW),
            "plan table": plan_table(plan, NOW, dry_run=True), "plan markdown": plan_markdown(plan, NOW, dry_run=True),
            "step summary": step_summary(plan, None, NOW, dry_run=True, inventories=[inv]),
            "metrics": generate_latest(build_registry([inv], plan, now=NOW.timestamp())).decode(),
            "html": html.render(reports, NOW, "policy.toml", [])}


def test_a_new_store_shows_in_every_output_in_the_words_of_a_repository():
    inv, plan = new_store_inventory(), new_store_plan()
    out = everything_rendered(inv, plan)
    for name, text in out.items():
        if name == "metrics":          # every gauge has its HELP line; no sample of the cache's for this target
            assert not [line for line in text.splitlines() if line.startswith("ghcr_janitor_actions_cache")], name
        else:
            assert not ACTIONS_CACHE_WORDS.search(text), (name, ACTIONS_CACHE_WORDS.search(text))
    assert out["ls table"].splitlines()[1].split()[:2] == ["tag", "digest"]
    assert "3 tags, 4 artifacts" in out["ls table"] and "'untagged_source': 'listed'" in out["ls json"]
    assert "| tag " in out["ls markdown"] and "*untagged*" in out["ls markdown"]
    assert out["plan table"].splitlines()[1].split()[:2] == ["tag", "digest"]
    assert "| tag " in out["plan markdown"] and "freed at once" in out["plan markdown"]
    assert re.search(r"\|\s*3 \(\+1 untagged\)\s*\|", out["step summary"])
    metrics = out["metrics"]
    assert f'ghcr_janitor_repository_tags{{repository="{TARGET}"}} 3.0' in metrics
    assert f'ghcr_janitor_untagged_artifacts{{repository="{TARGET}"}} 1.0' in metrics
    assert "# HELP ghcr_janitor_untagged_artifacts Untagged roots, listed by the store or remembered" in metrics
    page = out["html"]
    assert "This repository grows" in page and "Bytes per cache family" in page and 'data-chart="sharing"' in page
    assert "unique bytes" in page and "<th>tag</th><th>digest</th>" in page and "(ecr)" in page
    assert repository_totals(inv)[0] == 3


def test_the_ls_json_of_a_new_store_lists_tags_and_untagged_with_its_source():
    doc = inventory_dict(new_store_inventory())
    assert doc["backend"] == "ecr" and "entries" not in doc
    assert [t["tag"] for t in doc["tags"]] == ["cache-base", "cache-base-pr-7", "cache-builder"]
    assert [(u["digest"], u["untagged_source"]) for u in doc["untagged"]] == [(dg("old"), "listed")]
    assert doc["totals"]["tags"] == 3 and doc["totals"]["artifacts"] == 4


def test_untagged_source_is_the_artifacts_own_else_listed_where_the_store_lists_untagged():
    inv = new_store_inventory(lists_untagged=False)          # a plain registry: only remembered ones
    assert inventory_dict(inv)["untagged"][0]["untagged_source"] is None
    inv.artifacts[dg("old")].untagged_source = "remembered"
    assert inventory_dict(inv)["untagged"][0]["untagged_source"] == "remembered"
    listing = new_store_inventory()
    listing.artifacts[dg("old")].untagged_source = "remembered"      # the artifact's word wins
    assert inventory_dict(listing)["untagged"][0]["untagged_source"] == "remembered"


def test_the_markdown_of_ls_says_what_a_remembering_store_found_as_the_table_does():
    inv = new_store_inventory(lists_untagged=False)
    inv.artifacts[dg("old")].untagged_source = "remembered"
    assert "remembered:" not in ls_markdown([inv], NOW)          # a store without a memory says nothing of it
    inv.facts["remembered"] = {"count": 0, "since": None}
    assert "remembered: none yet" in ls_markdown([inv], NOW) and "remembered: none yet" in ls_table(inv, NOW)
    inv.facts["remembered"] = {"count": 1, "since": "2026-12-01T08:00:00Z"}
    md = ls_markdown([inv], NOW)
    assert "remembered: 1 untagged manifest" in md and "2026-12-01" in md
    assert inventory_dict(inv)["untagged"][0]["untagged_source"] == "remembered"


def test_a_store_of_entries_that_share_nothing_says_its_own_place():
    """The traits, not the kind, decide: a store of cache entries under another name is laid out as one."""
    inv = new_store_inventory(place="the build cache", shares_blobs=False)
    page = html.render([html.target_report(inv, new_store_plan().targets[0], history(), NOW)], NOW, None, [])
    assert "The build cache grows" in page and "The build cache stores its entries one by one" in page
    assert "The bytes of the build cache, each counted once" in page
    assert 'data-chart="sharing"' not in page and "unique bytes" not in page


# --- the stores say their traits -----------------------------------------------------------------------

def store_classes() -> list[type]:
    """Every class under stores/ with a `kind` (the store classes), modules that need a missing
    optional dependency left out."""
    found = {}
    for info in pkgutil.walk_packages(ghcr_janitor.stores.__path__, "ghcr_janitor.stores."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__ and isinstance(getattr(value, "kind", None), str):
                found[value.__qualname__] = value
    return list(found.values())


def test_every_store_class_says_traits_that_agree_with_its_other_attributes():
    classes = store_classes()
    assert {c.kind for c in classes} >= {"oci", "ghcr", "layout", "gha"}
    for cls in classes:
        traits = getattr(cls, "traits", StoreTraits())
        assert isinstance(traits, StoreTraits), cls
        assert traits.lists_untagged == bool(getattr(cls, "lists_untagged", False)), cls
        assert traits.place.split()[0] in ("this", "the"), cls          # it reads in a sentence: "this repository grows"
    by_kind = {c.kind: c.traits for c in classes}
    assert by_kind["gha"].entries and not by_kind["gha"].shares_blobs and by_kind["gha"].place == "the Actions cache"
    assert by_kind["layout"].unreachable_blobs and not any(t.unreachable_blobs for k, t in by_kind.items() if k != "layout")


class _SilentStore:
    """A registry that holds nothing and says no traits."""

    kind, name, lists_untagged = "ecr", "x", True

    async def list_versions(self):
        return []

    def known_missing(self, digest, listed):
        return False


class _EmptyStore(_SilentStore):
    """The same, with the traits of a store report/ has never heard of."""

    traits = StoreTraits(place="this ECR repository", lists_untagged=True)


def test_a_registry_inventory_carries_its_store_traits():
    """inventory/gather takes the traits from the store, as it takes its reclaim note (a store that
    says none: a plain registry's)."""
    import asyncio

    from ghcr_janitor.inventory.gather import InventoryOptions, build_inventory

    assert asyncio.run(build_inventory(_EmptyStore(), "x", InventoryOptions(now=NOW))).traits == _EmptyStore.traits
    assert asyncio.run(build_inventory(_SilentStore(), "x", InventoryOptions(now=NOW))).traits == StoreTraits()
