"""SQLAlchemy tables, repositories and Alembic migrations. No other layer writes SQL."""
