"""gunicorn access log as one JSON object per request (gunicorn.conf.py: logger_class).

gunicorn's own access_log_format is a %-template: a path or user agent holding quotes
or control characters would break a JSON template. Here the atoms are encoded by the
json module. The request id is the one the service echoes in X-Request-Id; the
Authorization header is never among the logged fields.
"""
from __future__ import annotations

import json
import traceback

from gunicorn.glogging import Logger

FIELDS = {
    "time": "t", "request_id": "{x-request-id}o", "remote": "h", "method": "m", "path": "U",
    "query": "q", "status": "s", "bytes": "B", "duration_us": "D", "user_agent": "a",
}


class JsonAccessLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        try:
            record = {name: atoms[atom] for name, atom in FIELDS.items()}
            for number in ("status", "bytes", "duration_us"):
                if str(record[number]).isdigit():
                    record[number] = int(record[number])
            self.access_log.info(json.dumps(record, ensure_ascii=True))
        except Exception:  # noqa: BLE001 - logging must never fail a request
            self.error(traceback.format_exc())
