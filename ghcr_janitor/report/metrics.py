"""Prometheus text-format metrics (`--metrics-file`), for node_exporter's textfile collector or a Pushgateway.

Built with prometheus_client's own `CollectorRegistry` and written with `write_to_textfile`
(temp file + rename, so a scraper never reads half a file). prometheus_client is imported only
here, and this module only when `--metrics-file` is given: CLI start-up stays lean.

Metric names (all gauges; every one describes the run that wrote the file):

=============================================================  ==========================================
``ghcr_janitor_tags{repository,stage}``                        listed tags (the ``--tag`` globs) per stage
``ghcr_janitor_bytes{repository,stage}``                       bytes of those tags' artifacts (each blob once)
``ghcr_janitor_repository_tags{repository}``                   every tag of the repository
``ghcr_janitor_repository_bytes{repository}``                  every artifact the janitor sees (each blob once)
``ghcr_janitor_untagged_artifacts{repository}``                untagged roots: listed by the store (GHCR, ECR,
                                                               OCI layouts) or remembered (plain registries)
``ghcr_janitor_reclaimable_bytes{repository}``                 what the plan reclaims (HELP: what that is on
                                                               the run's stores, the store's reclaim_note)
``ghcr_janitor_reclaimed_bytes{repository}``                   what the done actions reclaim (HELP: likewise)
``ghcr_janitor_actions{repository,action,status}``             action = delete|untag|retag,
                                                               status = planned|done|skipped|failed
``ghcr_janitor_actions_cache_usage_bytes{repository}``         a gha: target's cache usage (GitHub's figure)
``ghcr_janitor_actions_cache_limit_bytes{repository}``         its cache storage limit
``ghcr_janitor_actions_cache_bytes{repository,kind,ref_state}``  its entries' bytes per kind and ref state
``ghcr_janitor_cost_per_month{repository,currency}``           storage cost a month at today's size (stores
                                                               with a known price only; storage, not transfer)
``ghcr_janitor_saves_per_month{repository,currency}``          what the plan saves a month
``ghcr_janitor_repository_errors{repository}``                 errors met on that repository
``ghcr_janitor_errors``                                        errors in the whole run
``ghcr_janitor_repositories``                                  repositories in this run
``ghcr_janitor_last_run_timestamp_seconds``                    when this file was written
``ghcr_janitor_last_run_success``                              1 when the run had no error, else 0
``ghcr_janitor_last_success_timestamp_seconds``                last run without error (carried over from the
                                                               previous file when this run failed)
=============================================================  ==========================================

`stage` keeps label cardinality bounded: the tag without its ``cache-`` prefix, with a trailing
``-<branch>`` folded, when that is one of the four known stages (``base``, ``python-deps``,
``node-deps``, ``builder``); ``untagged`` for untagged versions; ``other`` for everything else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable

from ghcr_janitor.report.plan_view import reclaim_notes

KNOWN_STAGES = ("python-deps", "node-deps", "builder", "base")
UNTAGGED_STAGE = "untagged"
OTHER_STAGE = "other"
STAGES = KNOWN_STAGES + (OTHER_STAGE, UNTAGGED_STAGE)
ACTION_KINDS = ("delete", "untag", "retag")
STATUSES = ("planned", "done", "gone", "skipped", "failed")
PREFIX = "ghcr_janitor_"
LAST_SUCCESS = PREFIX + "last_success_timestamp_seconds"


def stage_of(tag: str | None) -> str:
    """`cache-python-deps-feature-x` -> `python-deps`; unknown stages -> `other`."""
    if tag is None:
        return UNTAGGED_STAGE
    name = tag[len("cache-"):] if tag.startswith("cache-") else tag
    for stage in KNOWN_STAGES:
        if name == stage or name.startswith(stage + "-"):
            return stage
    return OTHER_STAGE


def _union_size(inventory, digests: Iterable[str]) -> int:
    """Bytes of these artifacts and what follows them (their referrers), each blob once: as `size`."""
    return inventory.total_size(sorted(digests))


MAX_PREVIOUS_BYTES = 64 << 20      # a textfile of this run's metrics is kilobytes


def _previous_success(path: Path) -> float | None:
    """The last-success timestamp of the file this run replaces, if it has one."""
    from ghcr_janitor.core.files import read_regular

    try:
        text = read_regular(path, MAX_PREVIOUS_BYTES).decode("utf-8")
    except (OSError, ValueError):       # missing, not a regular file, too large, not text: start afresh
        return None
    try:
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except Exception:  # a foreign or corrupt file: start afresh
        return None
    return None


def repository_errors(inventory=None, target_plan=None, target_result=None) -> int:
    """Errors met on one repository: the plan's (which include the inventory's) or the inventory's,
    plus an apply that could not start and every failed action."""
    if target_plan is not None:
        count = len(set(target_plan.errors))
    elif inventory is not None:
        count = len(set(inventory.errors))
    else:
        count = 0
    if target_result is not None:
        count += (1 if target_result.error else 0) + sum(1 for r in target_result.results if r.status == "failed")
    return count


def reclaim_help(notes: dict[str, str]) -> str:
    """The HELP text's tail saying what the reclaim figures are: each store's sentence once, with the
    repositories it is about when the run mixes stores (HELP is one line: no newlines)."""
    by_note: dict[str, list[str]] = {}
    for repo, note in notes.items():
        by_note.setdefault(" ".join(note.split()), []).append(repo)
    if not by_note:
        return ""
    if len(by_note) == 1:
        return ": " + next(iter(by_note))
    return "; " + "; ".join(f"{', '.join(repos)}: {note}" for note, repos in by_note.items())


def build_registry(inventories: list | None = None, plans: Any = None, results: list | None = None,
                   errors: int | None = 0, now: float | None = None, previous_success: float | None = None):
    """The CollectorRegistry for one run (exposed for tests and for pushing to a Pushgateway)."""
    from prometheus_client import CollectorRegistry, Gauge

    now = time.time() if now is None else now
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(PREFIX + name, doc, labelnames=labels, registry=reg)

    tags_g = gauge("tags", "Listed tags (matching --tag) per repository and stage", ("repository", "stage"))
    bytes_g = gauge("bytes", "Bytes of the listed tags' artifacts per repository and stage, each blob counted once",
                    ("repository", "stage"))
    repo_tags_g = gauge("repository_tags", "Every tag of the repository", ("repository",))
    repo_bytes_g = gauge("repository_bytes", "Bytes of every artifact the janitor sees, each blob counted once",
                         ("repository",))
    untagged_g = gauge("untagged_artifacts", "Untagged roots, listed by the store or remembered from earlier runs",
                       ("repository",))
    inventories = list(inventories or [])
    what = reclaim_help(reclaim_notes(plans, inventories, results))
    reclaimable_g = gauge("reclaimable_bytes", "Bytes the plan reclaims" + what, ("repository",))
    reclaimed_g = gauge("reclaimed_bytes", "Bytes the actions done in this run reclaim" + what, ("repository",))
    actions_g = gauge("actions", "Actions by kind and status (planned, done, skipped, failed)",
                      ("repository", "action", "status"))
    usage_g = gauge("actions_cache_usage_bytes", "Actions cache usage of the repository", ("repository",))
    limit_g = gauge("actions_cache_limit_bytes", "Actions cache storage limit of the repository", ("repository",))
    cache_g = gauge("actions_cache_bytes", "Actions cache entries' bytes per kind and ref state",
                    ("repository", "kind", "ref_state"))
    cost_g = gauge("cost_per_month", "Storage cost a month at today's size, where the store's price is known "
                   "(storage only; the price date is in the JSON output)", ("repository", "currency"))
    saves_g = gauge("saves_per_month", "What the plan saves a month in storage cost", ("repository", "currency"))
    repo_errors_g = gauge("repository_errors", "Errors met on the repository in this run", ("repository",))
    errors_g = gauge("errors", "Errors in this run")
    repos_g = gauge("repositories", "Repositories in this run")
    last_run_g = gauge("last_run_timestamp_seconds", "Unix time this run finished")
    success_g = gauge("last_run_success", "1 when this run met no error, else 0")
    last_success_g = gauge("last_success_timestamp_seconds", "Unix time of the last run without error")

    target_plans = list(plans.targets) if plans is not None else []
    results = list(results or [])
    by_inventory = {inv.target: inv for inv in inventories}
    by_plan = {tp.target: tp for tp in target_plans}
    by_result = {tr.target: tr for tr in results}
    repositories = list(dict.fromkeys([*by_inventory, *by_plan, *by_result]))

    total_errors = errors or 0
    for repo in repositories:
        inv, tp, tr = by_inventory.get(repo), by_plan.get(repo), by_result.get(repo)
        if inv is not None and inv.traits.entries:
            facts = inv.facts
            if isinstance(facts.get("usage"), int):
                usage_g.labels(repo).set(facts["usage"])
            if isinstance(facts.get("limit"), int):
                limit_g.labels(repo).set(facts["limit"])
            sums: dict[tuple[str, str], int] = {}
            for art in inv.artifacts.values():
                slot = (art.kind, str(art.labels.get("ref_state")))
                sums[slot] = sums.get(slot, 0) + art.size
            for (kind, state), size in sorted(sums.items()):
                cache_g.labels(repo, kind, state).set(size)
            repo_bytes_g.labels(repo).set(inv.total_size())
        elif inv is not None:
            per_stage: dict[str, list] = {}         # stage -> [tag count, digests]
            for tag in inv.listed:
                entry = per_stage.setdefault(stage_of(tag), [0, set()])
                entry[0] += 1
                entry[1].add(inv.tags[tag])
            if inv.untagged:
                per_stage[UNTAGGED_STAGE] = [len(inv.untagged), set(inv.untagged)]
            for stage, (count, digests) in sorted(per_stage.items()):
                tags_g.labels(repo, stage).set(count)
                bytes_g.labels(repo, stage).set(_union_size(inv, digests))
            repo_tags_g.labels(repo).set(len(inv.tags))
            repo_bytes_g.labels(repo).set(inv.total_size())
            untagged_g.labels(repo).set(len(inv.untagged))
        if tp is not None:
            reclaimable_g.labels(repo).set(tp.reclaim_size)
            for kind in ACTION_KINDS:
                actions_g.labels(repo, kind, "planned").set(sum(1 for a in tp.actions if a.action == kind))
        if tr is not None:
            reclaimed_g.labels(repo).set(tr.reclaimed)
            for kind in ACTION_KINDS:
                for status in STATUSES[1:]:
                    actions_g.labels(repo, kind, status).set(
                        sum(1 for r in tr.results if r.action == kind and r.status == status))
        cost = tp.cost if tp is not None and tp.cost is not None else inv.cost if inv is not None else None
        if cost is not None:            # no known price: no money metric (never a guess)
            cost_g.labels(repo, cost.price.currency).set(float(cost.per_month))
            if cost.saves_per_month is not None:
                saves_g.labels(repo, cost.price.currency).set(float(cost.saves_per_month))
        count = repository_errors(inv, tp, tr)
        repo_errors_g.labels(repo).set(count)
        total_errors += count

    errors_g.set(total_errors)
    repos_g.set(len(repositories))
    last_run_g.set(now)
    ok = total_errors == 0
    success_g.set(1 if ok else 0)
    if ok:
        last_success_g.set(now)
    elif previous_success is not None:
        last_success_g.set(previous_success)
    else:
        # Never succeeded as far as this host knows: 0 makes `time() - x` alerts fire.
        last_success_g.set(0)
    return reg


def write_metrics(path: str | os.PathLike, inventories: list | None = None, plans: Any = None,
                  results: list | None = None, errors: int | None = 0, now: float | None = None) -> None:
    """Write the run's metrics to `path` atomically (temp file in the same directory + rename).

    `plans` is one Plan (or None); `errors` counts errors not tied to any repository given
    (e.g. targets whose inventory failed entirely in `ls`); per-repository errors are counted here.
    """
    from prometheus_client import write_to_textfile

    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    reg = build_registry(inventories, plans, results, errors, now, _previous_success(target))
    write_to_textfile(str(target), reg)
