"""gunicorn access log as one JSON object per request (gunicorn.conf.py: logger_class).

gunicorn's own access_log_format is a %-template: a path or user agent holding quotes
or control characters would break a JSON template. Here the atoms are encoded by the
json module. The request id is the one the service echoes in X-Request-Id; the
Authorization header is never among the logged fields, and a credential sent in the query
string instead (`?access_token=…`, `?api_key=…`) is replaced by `[redacted]`: a client's
mistake must not put a live token into every log collector.
"""
from __future__ import annotations

import json
import re
import traceback
from urllib.parse import parse_qsl, quote

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
            record["query"] = redact_query(record["query"])
            for number in ("status", "bytes", "duration_us"):
                if str(record[number]).isdigit():
                    record[number] = int(record[number])
            self.access_log.info(json.dumps(record, ensure_ascii=True))
        except Exception:  # noqa: BLE001 - logging must never fail a request
            self.error(traceback.format_exc())


# Query parameters that can carry a credential: token, access_token, id_token, api_key,
# apikey, api-key, key, secret, password, auth, authorization (any case).
_SECRET_PARAM = re.compile(r"(?i)^(?:[a-z_-]*token|api[_-]?key|key|secret|password|passwd|auth|authorization)$")
REDACTED = "[redacted]"


def redact_query(query: str) -> str:
    """The query string with the value of every credential-like parameter replaced."""
    if not query or "=" not in query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_PARAM.match(name) for name, _ in pairs):
        return query
    return "&".join(f"{quote(name, safe='')}={REDACTED if _SECRET_PARAM.match(name) else quote(value, safe='')}"
                    for name, value in pairs)
