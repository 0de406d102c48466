"""The database layer: the SQLite backend (`sqlite`), the migrations runner (`migrations`), stored times."""

from bot.db.migrations import AppliedMigration, MigrationError, load_migrations
from bot.db.sqlite import MIGRATIONS_DIR, Database, DatabaseUnavailable, migration_status
from bot.db.times import from_db_time, to_db_time, utcnow

__all__ = [
    "MIGRATIONS_DIR",
    "AppliedMigration",
    "Database",
    "DatabaseUnavailable",
    "MigrationError",
    "from_db_time",
    "load_migrations",
    "migration_status",
    "to_db_time",
    "utcnow",
]
