"""The calculators' catalog cache: a load that races a write is never stored."""

from __future__ import annotations

from service.services.catalog_reader import CacheMiss, CatalogCache


def test_a_load_racing_a_clear_is_not_cached() -> None:
    cache = CatalogCache(ttl_seconds=60)

    def stale_load() -> str:
        cache.clear()  # a write commits while the old row is being read
        return "old row"

    assert cache.get(("gpu", "x"), stale_load) == "old row"
    assert cache.get(("gpu", "x"), lambda: "new row") == "new row"
    assert cache.get(("gpu", "x"), None) == "new row"


def test_cache_only_reads_raise_on_a_miss_and_ttl_zero_disables() -> None:
    cache = CatalogCache(ttl_seconds=0)
    assert cache.get(("preset", "p"), lambda: {"n_layers": 2}) == {"n_layers": 2}
    try:
        cache.get(("preset", "p"), None)
    except CacheMiss:
        pass
    else:
        raise AssertionError("expected a cache miss")
