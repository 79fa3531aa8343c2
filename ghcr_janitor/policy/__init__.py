"""Retention policies: loading and validating TOML, pure evaluation, descriptions."""

from ghcr_janitor.policy.describe import describe
from ghcr_janitor.policy.evaluate import Decision, evaluate
from ghcr_janitor.policy.loader import load_default_policy, load_policy
from ghcr_janitor.policy.model import Policy, Rule, Selector

__all__ = ["Decision", "Policy", "Rule", "Selector", "describe", "evaluate", "load_default_policy", "load_policy"]
