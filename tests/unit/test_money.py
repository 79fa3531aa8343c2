"""Money (issue 23, Cost): prices exact to the cent, which bytes each store bills, the settings file's
`[prices.STORE]` over the defaults, `cost: null` where no price is known, budgets and exit 3."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest

from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.models import Artifact, Inventory, StoreTraits
from ghcr_janitor.core.money import DEFAULT_PRICES, GIB, Price, amount, money, price_for
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.plan.cost import cost_of
from ghcr_janitor.plan.model import Action, TargetPlan
from ghcr_janitor.report.budget import Budget, crossing, parse_budget, reasons

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)


def cents(size: int, per_gib: str) -> Decimal:
    """The expected amount, computed apart: exact fractions, then half up to the cent."""
    exact = Fraction(size) * Fraction(per_gib) / 2 ** 30
    whole, rest = divmod(exact * 100, 1)
    return (Decimal(whole) + (1 if rest >= Fraction(1, 2) else 0)) / 100


# --- arithmetic -------------------------------------------------------------------------------

@pytest.mark.parametrize("size, per_gib, expected", [
    (1024 * GIB, "0.10", "102.40"),             # 1 TiB in ECR: AWS's own example figure
    (5 * GIB, "0.07", "0.35"),                  # 5 GiB of Actions cache beyond the included 10
    (GIB // 2, "0.01", "0.01"),                 # exactly half a cent rounds up
    (GIB // 2 - 1, "0.01", "0.00"),             # a byte less does not
    (3 * GIB, "0.1", "0.30"),                   # 0.1 + 0.1 + 0.1 without float drift
    (1_234_567_890_123, "0.0913125", None),     # ACR's per-day price as a month, odd size
    (987_654_321, "0.25", None),
])
def test_amounts_are_exact_to_the_cent(size, per_gib, expected):
    got = amount((size, Decimal(per_gib)))
    assert got == cents(size, per_gib)
    if expected is not None:
        assert got == Decimal(expected)
    assert got.as_tuple().exponent == -2


def test_an_amount_sums_its_parts_before_rounding_once():
    # 0.004 + 0.004 = 0.008 -> 0.01; rounding each part first would give 0.00.
    part = (Decimal("0.004") * GIB / Decimal("0.01")).to_integral_value()
    assert amount((int(part), Decimal("0.01")), (int(part), Decimal("0.01"))) == Decimal("0.01")
    assert money(Decimal("3.1"), "EUR") == "3.10 EUR"


def test_the_defaults_say_where_they_come_from_and_ghcr_is_free():
    for key, price in DEFAULT_PRICES.items():
        assert price.source.startswith("https://") and re.fullmatch(r"\d{4}-\d\d-\d\d", price.price_date), key
    assert DEFAULT_PRICES["ghcr"].per_gib_month == 0 and "free" in DEFAULT_PRICES["ghcr"].describe()
    assert DEFAULT_PRICES["gha"].included == 10 * GIB
    assert DEFAULT_PRICES["ecr"].archive_minimum_days == 90
    assert "0.0913125 USD per GiB-month" in DEFAULT_PRICES["acr"].describe()
    for unpriced in ("dockerhub", "gitlab", "harbor", "oci", "layout"):
        assert price_for(unpriced, {}) is None


# --- which bytes are billed ---------------------------------------------------------------------

def art(digest: str, blobs: dict[str, int], **extra) -> Artifact:
    return Artifact(digest, "application/vnd.oci.image.manifest.v1+json", "buildkit-cache",
                    {digest: 100, **blobs}, extra=dict(extra))


def inventory(arts: list[Artifact], price: Price | None, **facts) -> Inventory:
    inv = Inventory("example/app", {}, {a.digest: a for a in arts}, facts=dict(facts),
                    traits=StoreTraits(price=price.store if price else None))
    inv.price = price
    return inv


def delete(*digests: str, reclaim: int) -> TargetPlan:
    return TargetPlan("example/app", reclaim_size=reclaim, actions=[Action("delete", None, d) for d in digests])


def test_a_plain_store_bills_every_byte_and_the_plan_saves_its_reclaim_times_the_price():
    price = Price("ecr", Decimal("0.10"))
    inv = inventory([art("sha256:a", {"b1": 3 * GIB}), art("sha256:b", {"b1": 3 * GIB, "b2": 2 * GIB})], price)
    cost = cost_of(inv, NOW, delete("sha256:b", reclaim=2 * GIB + 100))
    assert cost.billed_size == inv.total_size() == 5 * GIB + 200
    assert cost.per_month == cents(5 * GIB + 200, "0.10")
    assert cost.saves_per_month == cents(2 * GIB + 100, "0.10") == Decimal("0.20")


def test_the_actions_cache_bills_only_its_usage_beyond_the_included_amount_and_at_most_its_limit():
    price = DEFAULT_PRICES["gha"]
    entries = [art(f"cache:{i}", {}) for i in range(3)]
    under = cost_of(inventory(entries, price, usage=9 * GIB, limit=10 * GIB), NOW, delete(reclaim=GIB))
    assert (under.billed_size, under.per_month, under.saves_per_month) == (0, Decimal("0.00"), Decimal("0.00"))
    over = cost_of(inventory(entries, price, usage=15 * GIB, limit=20 * GIB), NOW, delete(reclaim=7 * GIB))
    assert over.billed_size == 5 * GIB and over.per_month == Decimal("0.35")
    assert over.saves_per_month == Decimal("0.35")          # 7 GiB freed, but only 5 were billed
    capped = cost_of(inventory(entries, price, usage=25 * GIB, limit=20 * GIB), NOW)
    assert capped.per_month == Decimal("0.70") and capped.saves_per_month is None


def test_archived_images_are_billed_at_the_archive_price_and_save_nothing_within_their_minimum():
    price = Price("ecr", Decimal("0.10"), archive_per_gib_month=Decimal("0.05"), archive_minimum_days=90)
    young = art("sha256:young", {"y": 4 * GIB}, archived=True, archived_at=NOW - timedelta(days=10))
    old = art("sha256:old", {"o": 2 * GIB}, archived=True, archived_at=NOW - timedelta(days=100))
    live = art("sha256:live", {"l": GIB})
    inv = inventory([young, old, live], price)
    cost = cost_of(inv, NOW, delete("sha256:young", "sha256:old", "sha256:live", reclaim=7 * GIB + 300))
    assert cost.per_month == amount((GIB + 100, Decimal("0.10")), (6 * GIB + 200, Decimal("0.05")))
    assert cost.minimum_size == 4 * GIB + 100               # the young image stays billed for 80 more days
    assert cost.saves_per_month == amount((GIB + 100, Decimal("0.10")), (2 * GIB + 100, Decimal("0.05")))


def test_a_store_without_a_known_price_costs_null_never_a_guess():
    inv = inventory([art("sha256:a", {"b": GIB})], None)
    assert cost_of(inv, NOW, delete("sha256:a", reclaim=GIB)) is None


# --- the settings file ---------------------------------------------------------------------------

def settings_with(tmp_path, body: str) -> Settings:
    path = tmp_path / "settings.toml"
    path.write_text(body)
    return Settings.from_env({"JANITOR_SETTINGS": str(path)})


def test_the_settings_file_wins_over_the_default(tmp_path):
    s = settings_with(tmp_path, '[prices.gha]\nper_gib_month = 0.05\nprice_date = 2026-11-30\n'
                                '[prices.harbor]\nper_gib_month = 0.02\ncurrency = "EUR"\nsource = "our SAN"\n')
    gha = price_for("gha", s.prices, s.settings_file, s.prices_date)
    assert gha.per_gib_month == Decimal("0.05") and gha.included_gib == 10 and gha.price_date == "2026-11-30"
    assert str(s.settings_file) in gha.source
    harbor = price_for("harbor", s.prices, s.settings_file, s.prices_date)
    assert (harbor.per_gib_month, harbor.currency, harbor.source) == (Decimal("0.02"), "EUR", "our SAN")
    assert harbor.price_date == s.prices_date        # a price set without a date: the file's day


@pytest.mark.parametrize("body, key", [
    ("[prices.ghcr]\nper_gib_month = -0.25\n", "prices.ghcr.per_gib_month"),
    ("[prices.ghcr]\nper_gib_month = nan\n", "prices.ghcr.per_gib_month"),
    ("[prices.ghcr]\nper_gib_month = inf\n", "prices.ghcr.per_gib_month"),
    ("[prices.ghcr]\nper_gib_month = \"0.25\"\n", "prices.ghcr.per_gib_month"),
    ("[prices.ghcr]\nper_gib_month = true\n", "prices.ghcr.per_gib_month"),
    ("[prices.gha]\nincluded_gib = -10\n", "prices.gha.included_gib"),
    ("[prices.ecr]\narchive_minimum_days = 9.5\n", "prices.ecr.archive_minimum_days"),
    ("[prices.ghcr]\nper_gib_month = 0.2\ncurrency = \"usd\"\n", "prices.ghcr.currency"),
    ("[prices.ghcr]\ncurrency = \"EUR\"\n", "prices.ghcr.currency"),
    ("[prices.ghcr]\nper_gib_month = 0.2\nprice_date = \"yesterday\"\n", "prices.ghcr.price_date"),
    ("[prices.ghcr]\nper_gib_mnoth = 0.2\n", "prices.ghcr.per_gib_mnoth"),
    ("[prices.quay]\nper_gib_month = 0.2\n", "prices.quay"),
    ("[prices.harbor]\nsource = \"x\"\n", "prices.harbor.per_gib_month"),
    ("[prices.ghcr]\nper_gib_month = 0.2\nsource = \"\"\n", "prices.ghcr.source"),
])
def test_hostile_price_settings_are_one_line_usage_errors_naming_file_and_key(tmp_path, body, key):
    with pytest.raises(UsageError) as caught:
        settings_with(tmp_path, body)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "settings.toml") in message and f": {key}:" in message


# --- budgets ------------------------------------------------------------------------------------

def test_budgets_parse_and_malformed_ones_are_usage_errors():
    assert parse_budget("50", "20GiB") == Budget(Decimal(50), None, 20 * GIB)
    assert parse_budget("12.5eur", None) == Budget(Decimal("12.5"), "EUR", None)
    for bad in ("abc", "-5", "nan", "5 dollars"):
        with pytest.raises(UsageError, match="--budget-cost"):
            parse_budget(bad, None)
    with pytest.raises(UsageError, match="--budget-size"):
        parse_budget(None, "lots")


def test_over_budget_compares_todays_cost_and_size_and_the_projection_says_when():
    price = Price("ecr", Decimal("0.10"))
    cost = cost_of(inventory([art("sha256:a", {"b": 5 * GIB - 100})], price), NOW)     # 5 GiB: 0.50 USD
    assert reasons(Budget(Decimal("0.50")), cost, 5 * GIB) == []
    assert reasons(Budget(Decimal("0.49")), cost, 5 * GIB) != []
    assert reasons(Budget(Decimal("0.49"), "EUR"), cost, 5 * GIB) == []        # not its currency: not checked
    assert reasons(Budget(size=5 * GIB), cost, 5 * GIB) == []
    assert len(reasons(Budget(Decimal("0.01"), size=GIB), cost, 5 * GIB)) == 2
    # 1.00 USD at 0.10 a GiB-month is 10 GiB: 5 GiB away at 1 GiB a week.
    assert crossing(Budget(Decimal("1.00")), cost, 5 * GIB, float(GIB)) == \
        "at this rate it crosses its 1.00 USD a month budget in about 35 days"
    assert crossing(Budget(size=4 * GIB), cost, 5 * GIB, None) == "already over its 4.0 GiB budget"


# --- the CLI: ls, plan, report, budgets, exit 3 ---------------------------------------------------

@pytest.fixture
def priced(tmp_path, monkeypatch):
    """A settings file pricing local cache dirs at a high price, so the figures are not zero."""
    path = tmp_path / "prices.toml"
    path.write_text('[prices.layout]\nper_gib_month = 1000000\nprice_date = 2026-12-01\nsource = "test price"\n')
    monkeypatch.setenv("JANITOR_SETTINGS", str(path))
    return Decimal(1000000)


def test_unpriced_targets_carry_cost_null_and_no_money_anywhere(cli, layout, tmp_path):
    doc = json.loads(cli("ls", f"oci-layout:{layout}", "-O", "json").stdout)
    assert doc["targets"][0]["totals"]["cost"] is None
    plan = json.loads(cli("plan", f"oci-layout:{layout}").stdout)
    assert plan["targets"][0]["cost"] is None
    table = cli("plan", f"oci-layout:{layout}", "-O", "table").stdout
    markdown = cli("plan", f"oci-layout:{layout}", "-O", "markdown").stdout
    assert "USD" not in table + markdown and "cost:" not in table + markdown
    cli("ls", f"oci-layout:{layout}", "--metrics-file", str(tmp_path / "m.prom"))
    assert "ghcr_janitor_cost_per_month{" not in (tmp_path / "m.prom").read_text()


def test_the_reports_money_equals_the_plans_bytes_times_the_price(cli, layout, priced, tmp_path, monkeypatch):
    plan = json.loads(cli("plan", f"oci-layout:{layout}").stdout)["targets"][0]
    ls = json.loads(cli("ls", f"oci-layout:{layout}", "-O", "json").stdout)["targets"][0]["totals"]
    reclaim, stored = plan["reclaim_size"], ls["repository_size"]
    assert plan["cost"]["saves_per_month"] == float(amount((reclaim, priced))) > 0
    assert plan["cost"]["per_month"] == ls["cost"]["per_month"] == float(amount((stored, priced)))
    assert (plan["cost"]["currency"], plan["cost"]["price_date"], plan["cost"]["price_source"]) == \
        ("USD", "2026-12-01", "test price")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli("report", f"oci-layout:{layout}", "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 0
    html = (tmp_path / "r.html").read_text()
    assert f'data-figure="saves" data-target="oci-layout:{layout}" data-amount="{amount((reclaim, priced))}"' in html
    assert f'data-amount="{amount((stored, priced))}"' in html and "prices of 2026-12-01" in html
    assert f"{amount((reclaim, priced))} USD" in summary.read_text()
    cli("plan", f"oci-layout:{layout}", "--metrics-file", str(tmp_path / "m.prom"))
    metrics = (tmp_path / "m.prom").read_text()
    assert f'ghcr_janitor_saves_per_month{{currency="USD",repository="oci-layout:{layout}"}} {float(amount((reclaim, priced)))}' in metrics


def test_over_budget_exits_3_after_writing_the_report_with_one_line_per_target(cli, layout, priced, tmp_path):
    out = tmp_path / "r.html"
    result = cli("report", f"oci-layout:{layout}", "-o", str(out), "--budget-cost", "0.01", "--fail-over-budget")
    assert result.exit_code == 3 and out.is_file() and "Over budget:" in out.read_text()
    lines = [line for line in result.stderr.splitlines() if line.startswith("over budget:")]
    assert len(lines) == 1 and f"oci-layout:{layout}" in lines[0] and "USD a month" in lines[0]
    plan = cli("plan", f"oci-layout:{layout}", "--budget-size", "1KiB", "--fail-over-budget")
    assert plan.exit_code == 3 and json.loads(plan.stdout)["targets"]           # the plan is written first


def test_under_budget_or_without_the_flag_the_exit_is_0(cli, layout, priced, tmp_path):
    under = cli("report", f"oci-layout:{layout}", "-o", str(tmp_path / "r.html"), "--budget-cost", "1000000",
                "--budget-size", "1GiB", "--fail-over-budget")
    assert under.exit_code == 0 and "over budget" not in under.stderr
    said = cli("plan", f"oci-layout:{layout}", "--budget-size", "1KiB")
    assert said.exit_code == 0 and "over budget:" in said.stderr


def test_a_budget_flag_that_cannot_be_read_is_exit_2_before_anything_is_contacted(cli, tmp_path):
    assert cli("plan", "127.0.0.1:9/none", "--fail-over-budget").exit_code == 2
    assert cli("report", "127.0.0.1:9/none", "-o", str(tmp_path / "r.html"), "--budget-cost", "lots").exit_code == 2


# --- each store class names its price -------------------------------------------------------------

def test_every_store_class_names_a_known_price_key_and_the_priced_ones_have_defaults():
    from tests.unit.test_report_store_traits import store_classes
    from ghcr_janitor.core.money import PRICE_STORES

    by_kind = {c.kind: getattr(c, "traits", StoreTraits()).price for c in store_classes()}
    assert all(key is None or key in PRICE_STORES for key in by_kind.values()), by_kind
    assert {k: by_kind.get(k) for k in ("ghcr", "gha", "oci", "layout")} == \
        {"ghcr": "ghcr", "gha": "gha", "oci": "oci", "layout": "layout"}
    assert {"ghcr", "gha", "ecr", "acr", "gar"} <= set(DEFAULT_PRICES)


def test_the_actions_cache_is_priced_from_its_usage_beyond_the_included_10_gib(cli, gha, monkeypatch, tmp_path):
    path = tmp_path / "prices.toml"           # the included amount lowered so that the seed's bytes are billed
    path.write_text("[prices.gha]\nincluded_gib = 0\nper_gib_month = 100000\n")
    monkeypatch.setenv("JANITOR_SETTINGS", str(path))
    totals = json.loads(cli("ls", "gha:acme/app", "-O", "json").stdout)["targets"][0]["totals"]
    assert totals["cost"]["billed_size"] == totals["usage"] > 0
    assert totals["cost"]["per_month"] == float(amount((totals["usage"], Decimal(100000))))
    monkeypatch.delenv("JANITOR_SETTINGS")
    default = json.loads(cli("ls", "gha:acme/app", "-O", "json").stdout)["targets"][0]["totals"]["cost"]
    assert default["per_month"] == 0.0 and default["included_size"] == 10 * GIB      # within the free 10 GiB
    assert default["price_source"] == DEFAULT_PRICES["gha"].source
