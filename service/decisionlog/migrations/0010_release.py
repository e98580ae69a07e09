"""Release records: four-eyes status, history and rollouts (the SQL lives in releases.py)."""
from service.decisionlog.releases import POSTGRES_0010 as POSTGRESQL, SQLITE_0010 as SQLITE

__all__ = ["SQLITE", "POSTGRESQL"]
