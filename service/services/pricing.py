"""Price resolution: which dollars per GPU-hour an answer uses (explicit, a provider's current
price, or the cheapest current price in the catalog snapshot), for every use case that prices
GPU-hours (training cost, budgets, plans, serving)."""

from __future__ import annotations

from service.errors import Unprocessable
from service.schemas import cost as s
from service.services.catalog_reader import CatalogReader


def resolve_price(catalog_reader: CatalogReader, gpu_id: str, choice: s.PriceChoice) -> s.PriceQuote:
    """An explicit price, the provider's current price, or the cheapest current price."""
    if choice.usd_per_gpu_hour is not None:
        return s.PriceQuote(
            usd_per_gpu_hour=choice.usd_per_gpu_hour, provider=None, pricing=None, as_of=None, source="request", chosen="explicit"
        )
    catalog = catalog_reader.snapshot()
    if choice.provider is not None and catalog.item("providers", choice.provider) is None:
        known = ", ".join(catalog.ids("providers"))
        raise Unprocessable.for_field("provider", f"unknown provider {choice.provider!r}; known: {known}")
    rows = catalog.current_prices({"gpu_id": gpu_id, "provider_id": choice.provider, "pricing": choice.pricing})
    if not rows:
        where = f" from {choice.provider}" if choice.provider else ""
        raise Unprocessable.for_field(
            "usd_per_gpu_hour", f"the catalog has no {choice.pricing} price for {gpu_id}{where}; give usd_per_gpu_hour"
        )
    row = min(rows, key=lambda r: (r.usd_per_gpu_hour, r.provider_id))
    return s.PriceQuote(
        usd_per_gpu_hour=row.usd_per_gpu_hour,
        provider=row.provider_id,
        pricing=row.pricing,
        as_of=row.as_of,
        source=row.source,
        chosen="provider" if choice.provider else "cheapest",
    )


def listed_price(catalog: CatalogReader, gpu_id: str, choice: s.PriceChoice, *, many: bool) -> s.PriceQuote | None:
    """:func:`resolve_price`, except that a GPU compared among ``many`` without a price is listed
    unpriced (None) rather than failing the whole answer."""
    try:
        return resolve_price(catalog, gpu_id, choice)
    except Unprocessable:
        if many:
            return None
        raise
