"""The engine (`engine/run.py`): one run gathers, plans and applies with each store opened once."""

from __future__ import annotations

import json

from ghcr_janitor.stores.layout.store import LayoutStore


def test_prune_yes_opens_each_store_once_and_closes_it_once(cli, layout, monkeypatch):
    """`prune --yes` gathers, plans, applies and collects garbage through one open store (before the
    engine, the session closed it after gathering and apply opened it again)."""
    opened, closed = [], []
    real_init, real_close = LayoutStore.__init__, LayoutStore.aclose

    def init(self, *args, **kwargs):
        opened.append(args)
        real_init(self, *args, **kwargs)

    async def aclose(self):
        closed.append(self.name)
        await real_close(self)

    monkeypatch.setattr(LayoutStore, "__init__", init)
    monkeypatch.setattr(LayoutStore, "aclose", aclose)
    target = f"oci-layout:{layout}"
    assert json.loads(cli("plan", target).stdout)["targets"][0]["actions"], "the example has stale caches"
    opened.clear(), closed.clear()
    result = cli("prune", target, "--yes")
    assert result.exit_code == 0, result.output
    assert "gc " in result.stdout and "freed" in result.stdout
    assert len(opened) == 1 and closed == [str(layout)]


def test_apply_parses_the_plans_targets_once_and_opens_each_store_once(cli, layout, tmp_path, monkeypatch):
    from ghcr_janitor.core import reference

    plan = tmp_path / "plan.json"
    assert cli("plan", f"oci-layout:{layout}", "-o", plan).exit_code == 0
    opened = []
    real_init = LayoutStore.__init__

    def init(self, *args, **kwargs):
        opened.append(args)
        real_init(self, *args, **kwargs)

    parsed = []
    real_parse = reference.parse_target

    def parse(text, *args, **kwargs):
        parsed.append(text)
        return real_parse(text, *args, **kwargs)

    monkeypatch.setattr(LayoutStore, "__init__", init)
    monkeypatch.setattr(reference, "parse_target", parse)
    result = cli("apply", plan, "--yes")
    assert result.exit_code == 0, result.output
    assert len(opened) == 1 and len(parsed) == 1
