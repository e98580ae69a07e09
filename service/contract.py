"""Values the API contract fixes, shared by every layer (a leaf: imports nothing of the service)."""
from __future__ import annotations

OUTCOMES = ("APPROVE", "REFER", "DECLINE")
TRACE_LEVELS = ("full", "fired", "none")
# One limit for a batch of decisions, a page of search results and the applications of an
# inline impact run: large enough for real work, small enough for one request.
MAX_ITEMS_PER_REQUEST = 1000
DEFAULT_PAGE_SIZE = 50
