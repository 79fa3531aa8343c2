"""ghcr-janitor: keep container-registry build caches under control.

The library API (docs/cli.md, "Library"): inventory, plan and apply from Python, with the same engine
and the same safety checks as the `janitor` command::

    import ghcr_janitor

    plan = ghcr_janitor.make_plan(["oci-layout:/tmp/buildx-cache"])     # the packaged default policy
    results = ghcr_janitor.apply_plan(plan)

Every name in `__all__` is part of the contract; they are imported on first use, so `import
ghcr_janitor` (and `janitor --version`) stays light.
"""

import sys
from typing import Any

__version__ = "0.2.0.dev0"

# httpx's package __init__ imports its optional command-line client (click, rich, pygments;
# ~60 ms of every run here) when those happen to be installed. The janitor never uses it;
# marking the module absent makes httpx take its documented fallback.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

# name -> the module that defines it
_EXPORTS = {
    # the engine, synchronous
    "take_inventory": "ghcr_janitor.engine.api",
    "make_plan": "ghcr_janitor.engine.api",
    "apply_plan": "ghcr_janitor.engine.api",
    # policies
    "load_policy": "ghcr_janitor.policy.loader",
    "load_default_policy": "ghcr_janitor.policy.loader",
    "Policy": "ghcr_janitor.policy.model",
    "Rule": "ghcr_janitor.policy.model",
    "Selector": "ghcr_janitor.policy.model",
    # inventories
    "Inventory": "ghcr_janitor.core.models",
    "Artifact": "ghcr_janitor.core.models",
    # plans and their files
    "Plan": "ghcr_janitor.plan.model",
    "TargetPlan": "ghcr_janitor.plan.model",
    "Action": "ghcr_janitor.plan.model",
    "Kept": "ghcr_janitor.plan.model",
    "read_plan": "ghcr_janitor.plan.file",
    "write_plan": "ghcr_janitor.plan.file",
    # what applying did
    "TargetResult": "ghcr_janitor.apply.results",
    "ActionResult": "ghcr_janitor.apply.results",
    # errors: one tree (core/errors.py)
    "JanitorError": "ghcr_janitor.core.errors",
    "UsageError": "ghcr_janitor.core.errors",
    "PolicyError": "ghcr_janitor.core.errors",
    "PlanError": "ghcr_janitor.core.errors",
    "TargetsFailed": "ghcr_janitor.core.errors",
    "RegistryError": "ghcr_janitor.core.errors",
    "NetworkError": "ghcr_janitor.core.errors",
    "NotFoundError": "ghcr_janitor.core.errors",
    "AuthError": "ghcr_janitor.core.errors",
    "TagMovedError": "ghcr_janitor.core.errors",
    "CannotUntag": "ghcr_janitor.core.errors",
    "ManifestError": "ghcr_janitor.core.errors",
    "LayoutError": "ghcr_janitor.core.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ghcr_janitor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value                  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
