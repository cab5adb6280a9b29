"""Load the seed data files of ``service/catalog`` into an empty store (one transaction)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from service.catalog import loader
from service.db.models import Gpu, ModelPreset, Price, Provider
from service.db.repositories import catalog_is_empty

GPU_FIELDS = tuple(c.key for c in Gpu.__table__.columns if c.key not in ("version", "updated_at"))
PROVIDER_FIELDS = tuple(c.key for c in Provider.__table__.columns if c.key not in ("version", "updated_at"))
MODEL_FIELDS = tuple(c.key for c in ModelPreset.__table__.columns if c.key not in ("version", "updated_at"))


def seed_catalog(session: Session) -> bool:
    """Insert every seed row when the catalog is empty; return whether it seeded. The caller
    commits."""
    if not catalog_is_empty(session):
        return False
    session.add_all(Gpu(**{k: row.get(k) for k in GPU_FIELDS}, version=1) for row in loader.gpus().values())
    session.add_all(Provider(**{k: row.get(k) for k in PROVIDER_FIELDS}, version=1) for row in loader.providers().values())
    session.add_all(ModelPreset(**{k: row.get(k) for k in MODEL_FIELDS}, version=1) for row in loader.model_presets().values())
    session.flush()
    session.add_all(
        Price(**(row | {"as_of": dt.date.fromisoformat(row["as_of"]), "notes": row.get("notes") or ""}))
        for row in loader.prices()
    )
    session.flush()
    return True
