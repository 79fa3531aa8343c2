"""Money: what a store's storage costs a month, from a price per GiB-month, exact to the cent.

Amounts are `Decimal` (never float) and rounded once, half up, to the cent. Only storage at rest is
priced: data transfer (pulls, egress, replication) is out of scope. A vendor's "GB" in a storage price
is taken as GiB (2^30 bytes), as AWS and GitHub bill it. Each store class names its price (the key in
`StoreTraits.price`); `DEFAULT_PRICES` holds the published ones with their source and the date they
were checked; a settings file's `[prices.STORE]` overrides them (core/settings.py validates it).
A store without a known price has no `Price`: its outputs show bytes, never a guessed amount.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Mapping

GIB = 1 << 30
CENT = Decimal("0.01")
CHECKED = "2026-12-07"      # when the defaults below were checked against their sources

# Every key a store class may name, and `[prices.STORE]` may set.
PRICE_STORES = ("ghcr", "gha", "ecr", "dockerhub", "gitlab", "harbor", "acr", "gar", "oci", "layout")


@dataclass(frozen=True)
class Price:
    """A storage price: `per_gib_month` beyond `included_gib` (a per-target allowance), and the
    archive's own price and minimum billed days where the store has an archive (ECR)."""

    store: str
    per_gib_month: Decimal
    currency: str = "USD"
    price_date: str = CHECKED
    source: str = ""
    included_gib: Decimal = Decimal(0)
    archive_per_gib_month: Decimal | None = None
    archive_minimum_days: int = 0
    billed: str = ""            # which bytes are billed, in a sentence for people

    @property
    def included(self) -> int:
        """The included allowance in bytes."""
        return int(self.included_gib * GIB)

    def describe(self) -> str:
        """'0.07 USD per GiB-month beyond 10 GiB, prices of 2026-12-07'; 'free: ..., prices of ...'."""
        if self.per_gib_month == 0 and not self.archive_per_gib_month:
            what = f"free: {self.billed}" if self.billed else "free"
        else:
            what = f"{_number(self.per_gib_month)} {self.currency} per GiB-month"
            if self.included_gib:
                what += f" beyond {_number(self.included_gib)} GiB"
        return f"{what}, prices of {self.price_date}"


def _number(value: Decimal) -> str:
    """A price as people write it: 0.10, 0.07, 0.0913125, 10 (no exponent; cents at least)."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    text = format(value.normalize(), "f")
    return text if len(text.partition(".")[2]) >= 2 else format(value.quantize(CENT), "f")


def money(amount: Decimal, currency: str) -> str:
    """'12.34 USD'."""
    return f"{amount.quantize(CENT, ROUND_HALF_UP)} {currency}"


def amount(*parts: tuple[int, Decimal | None]) -> Decimal:
    """The sum of bytes x price-per-GiB-month over `parts`, rounded once to the cent (half up)."""
    with localcontext() as ctx:
        ctx.prec = 60
        total = sum((Decimal(size) * price / GIB for size, price in parts if price and size), Decimal(0))
        return total.quantize(CENT, ROUND_HALF_UP)


def billed(stored: int, price: Price, limit: int | None = None) -> int:
    """The bytes billed of `stored`: what the store keeps (at most `limit`, where it evicts beyond
    one) beyond the included allowance."""
    if limit is not None:
        stored = min(stored, limit)
    return max(0, stored - price.included)


@dataclass(frozen=True)
class Cost:
    """What a target costs a month at today's size, and what its plan saves a month (None: no plan)."""

    price: Price
    stored_size: int                    # the bytes the store holds (its own usage figure where it has one)
    billed_size: int                    # of which billed (beyond the included amount; archive included)
    per_month: Decimal
    saves_per_month: Decimal | None = None
    saved_size: int | None = None       # billed bytes the plan frees
    # Archived bytes the plan deletes before their minimum billed days are over: billed until then,
    # so not in `saves_per_month`.
    minimum_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON `cost` object (docs/cli.md "Money")."""
        return {"currency": self.price.currency, "per_month": float(self.per_month),
                "saves_per_month": None if self.saves_per_month is None else float(self.saves_per_month),
                "price_date": self.price.price_date, "price_source": self.price.source,
                "per_gib_month": float(self.price.per_gib_month), "included_size": self.price.included,
                "billed_size": self.billed_size,
                **({"saved_size": self.saved_size} if self.saved_size is not None else {}),
                **({"archive_minimum_size": self.minimum_size} if self.minimum_size else {})}


GITHUB_PACKAGES = "https://docs.github.com/en/billing/concepts/product-billing/github-packages"
GITHUB_ACTIONS = "https://docs.github.com/en/billing/concepts/product-billing/github-actions"
ECR_PRICING = "https://aws.amazon.com/ecr/pricing/"
ACR_PRICING = "https://learn.microsoft.com/en-us/azure/container-registry/container-registry-skus"
GAR_PRICING = "https://cloud.google.com/artifact-registry/pricing"

DEFAULT_PRICES: dict[str, Price] = {
    # GitHub: "Container image storage and bandwidth for the Container registry is currently free"
    # (with a month's notice before that changes). A team that wants a figure anyway sets [prices.ghcr].
    "ghcr": Price("ghcr", Decimal(0), source=GITHUB_PACKAGES,
                  billed="GitHub documents Container registry storage as currently free"),
    # "Additional cache storage is $0.07 per GiB, per month" beyond the 10 GB included per repository
    # (github/docs#41573, 2025-11-28), measured as the peak of each hour, charged only where the
    # repository's cache limit was raised above the included amount.
    "gha": Price("gha", Decimal("0.07"), source=GITHUB_ACTIONS, included_gib=Decimal(10),
                 billed="the cache's usage (at most its limit) beyond the 10 GiB included per repository"),
    # $0.10 per GB-month (US East; other regions differ); the archive costs the same for the first
    # 150 TB a month and bills every archived image for at least 90 days.
    "ecr": Price("ecr", Decimal("0.10"), source=ECR_PRICING, archive_per_gib_month=Decimal("0.10"),
                 archive_minimum_days=90,
                 billed="the repository's bytes; archived images at the archive price, at least 90 days each"),
    # $0.003 a GiB-day beyond the tier's included storage (per registry: not subtracted per repository),
    # times 30.4375 days (the average month).
    "acr": Price("acr", Decimal("0.003") * Decimal("30.4375"), source=ACR_PRICING,
                 billed="the repository's bytes (the tier's included storage is the registry's, not subtracted here)"),
    # $0.10 per GB-month over 0.5 GB (per billing account: not subtracted per repository).
    "gar": Price("gar", Decimal("0.10"), source=GAR_PRICING,
                 billed="the repository's bytes (the 0.5 GB free tier is the billing account's, not subtracted here)"),
}

# Why a store has no default price (its outputs show bytes only unless [prices.STORE] sets one).
UNPRICED = {
    "dockerhub": "Docker Hub publishes no per-GiB storage price (storage is within the plan, fair use)",
    "gitlab": "GitLab.com publishes no container registry storage price (its storage limit covers repositories and LFS)",
    "harbor": "a self-hosted Harbor's storage is priced by whoever runs it",
    "oci": "a plain registry's storage is priced by whoever runs it",
    "layout": "a local cache dir is on your own disk",
}


def price_for(store: str | None, overrides: Mapping[str, Mapping[str, Any]], file: object = None,
              file_date: str | None = None) -> Price | None:
    """The price of `store` (a `StoreTraits.price` key): the default, with the settings file's
    `[prices.STORE]` (validated, core/settings.py) over it; None when neither knows one."""
    if store is None:
        return None
    base, table = DEFAULT_PRICES.get(store), overrides.get(store)
    if not table:
        return base
    if base is None:
        base = Price(store, Decimal(0), billed="the repository's bytes")
    fields = {k: table[k] for k in ("per_gib_month", "currency", "included_gib", "archive_per_gib_month",
                                     "archive_minimum_days") if k in table}
    return replace(base, **fields, source=table.get("source") or f"settings file {file} [prices.{store}]",
                   price_date=table.get("price_date") or file_date or base.price_date)
