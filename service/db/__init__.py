"""The catalog store: ORM models, engine and session, repositories (every query lives there)."""
