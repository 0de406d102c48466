"""The database layer: one ``Database`` protocol (``base``) with two backends, SQLite (``sqlite``, the
embedded default) and PostgreSQL (``postgres``, for several processes); the migrations runner
(``migrations``); stored times (``times``); which backend to open (``location``)."""

from bot.db.base import DATABASE_DOWN, Database, DatabaseUnavailable
from bot.db.location import DatabaseLocation, migration_status, open_database
from bot.db.migrations import AppliedMigration, MigrationError, Row, load_migrations
from bot.db.times import from_db_time, to_db_time, utcnow

__all__ = [
    "DATABASE_DOWN",
    "AppliedMigration",
    "Database",
    "DatabaseLocation",
    "DatabaseUnavailable",
    "MigrationError",
    "Row",
    "from_db_time",
    "load_migrations",
    "migration_status",
    "open_database",
    "to_db_time",
    "utcnow",
]
