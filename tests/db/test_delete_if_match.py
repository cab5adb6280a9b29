"""A DELETE with If-Match deletes the version it accepted, not a newer one: a write committed between
the request's read and its delete keeps the row (412), on Postgres, where readers do not block writers.
(On SQLite a write takes the database's write lock at BEGIN, so no writer can come in between.)"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.orm import Session

from service.db.engine import begin_write, build_engine, session_factory
from service.db.migrate import upgrade
from service.db.models import ModelPreset
from service.db.repositories import VersionedRepository, catalog_version
from service.db.seed import seed_catalog
from service.errors import PreconditionFailed
from service.services import catalog


def test_a_delete_with_if_match_keeps_a_row_changed_after_its_check(backend: str, make_database) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite serialises writes from BEGIN: no write can land between the check and the delete")
    engine = build_engine(make_database(backend))
    sessions = session_factory(engine)
    try:
        upgrade(engine)
        with Session(engine) as session:
            seed_catalog(session)
            session.commit()

        def a_write_lands_meanwhile(_session: Session, item_id: str) -> int:
            """Runs between delete_item's If-Match check and its delete: another writer's PATCH commits."""
            with sessions() as other:
                begin_write(other)
                assert VersionedRepository(other, ModelPreset).update_if_version(item_id, {"notes": "meanwhile"}, 1)
                other.commit()
            return 0  # no price references it

        models = dataclasses.replace(catalog.MODELS, referenced_by=a_write_lands_meanwhile)
        with sessions() as session:
            begin_write(session)
            version_before = catalog_version(session)
            with pytest.raises(PreconditionFailed, match="'llama-2-7b' changed while this request was applied"):
                catalog.delete_item(session, models, "llama-2-7b", '"1"')
        with sessions() as session:
            row = VersionedRepository(session, ModelPreset).get("llama-2-7b")
            assert row is not None and (row.notes, row.version) == ("meanwhile", 2)
            assert catalog_version(session) == version_before + 1  # the PATCH's bump only
    finally:
        engine.dispose()
