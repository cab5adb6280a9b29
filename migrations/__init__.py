"""Alembic migrations of the catalog store; :mod:`migrations.seeded` holds the data steps the
revisions share (rows a revision seeds, and what its downgrade may take away)."""
