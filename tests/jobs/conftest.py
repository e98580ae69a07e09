"""The queue tests run on SQLite and PostgreSQL with the decision-log tests' fixtures."""
from tests.decisionlog.conftest import postgres_admin_url, postgres_module_database, store, target  # noqa: F401
