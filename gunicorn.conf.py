"""gunicorn settings, read automatically by `gunicorn 'service.wsgi:app'` from this directory.

Threaded workers (service/serving.py): the main thread of each worker polls connections
and a pool of GUNICORN_THREADS (24) threads reads and answers them, so a slow client holds
one thread, not a whole worker; reading one request must finish within
REQUEST_READ_TIMEOUT (15) seconds (then 408). Evaluations still run one at a time per
process: durable_rules' C extension holds the GIL and keeps per-process state, and
service/engine/durable.py serialises its sessions with a lock. Each worker builds the app
itself after fork (its own store connections); the shipped rulesets are parsed and
compiled once, in the master before forking (`on_starting`), and every worker starts from
those (service/decision_engine/registry.py, keyed by sha256).

The configuration is checked here, in the master, before any worker starts: a bad
RULES_API_TOKENS (or any other setting) stops gunicorn with one line saying what is wrong.
"""
import gc
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
import time

from service.config import ConfigError, Settings

try:
    Settings.from_env()
except ConfigError as exc:
    sys.stderr.write(f"credit-rules: {exc}\n")
    sys.exit(2)  # SystemExit is not caught by gunicorn's config loader: no traceback

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "service.serving.BoundedThreadWorker"
# 24, not 16: while some threads of a worker wait for the log's shared commit, the others
# keep evaluating (interleaved HTTP runs at 100 connections, three pairs: decisions/s
# +1 to +10 %, decisions/no-op 0.265 -> 0.282; 32 gave nothing more). BENCHMARKS.md.
threads = int(os.environ.get("GUNICORN_THREADS", "24"))
worker_connections = 1000
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 2
backlog = 2048
max_requests = 0  # the engine's memory is flat (tests/engine/test_isolation.py); no recycling needed
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Access log: one JSON object per request (service/accesslog.py), with the request id the
# service echoes in X-Request-Id. The Authorization header is never logged.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
logger_class = "service.accesslog.JsonAccessLogger"

# Prometheus multiprocess mode: every worker writes its samples under this directory.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="credit-rules-metrics-")

# Without CONSOLE_SECRET_KEY the console signs sessions with a key made here, once per server,
# so that all its workers share it (the app logs a warning; sessions end at restart).
if not os.environ.get("CONSOLE_SECRET_KEY"):
    os.environ.setdefault("CONSOLE_SECRET_KEY_GENERATED", secrets.token_urlsafe(48))


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    _compile_shipped(server)


def _compile_shipped(server):
    """Compile once for all workers (durable_rules networks built before fork work in the
    children: tests/decision_engine/test_startup.py). No store is opened here."""
    from service.config import Settings
    from service.decision_engine.registry import warm

    started = time.monotonic()
    directory = Settings.from_env().rulesets_dir
    try:
        count = warm(directory) if directory and os.path.isdir(directory) else 0
    except Exception:  # noqa: BLE001 - each worker loads (and reports) the rulesets itself
        server.log.exception("compiling the shipped rulesets before fork failed")
        return
    # The modules every worker's create_app imports, imported once here too (no app, no store).
    import importlib
    for module in ("flask", "service.decisionlog", "service.catalog", "service.decisions", "service.schemas.api"):
        importlib.import_module(module)
    server.log.info("checked and compiled %d shipped ruleset versions in %.2f s (shared by every worker)",
                    count, time.monotonic() - started)


def post_fork(server, worker):
    worker.forked_at = time.monotonic()


def post_worker_init(worker):
    # The app is built: its long-lived objects (compiled rulesets, registry, Flask) go to
    # the permanent generation, so a full collection scans only what requests allocate.
    # Without this a full collection of a worker took ~150 ms (p50; 188 max) holding the
    # GIL, and when that worker held the log's write turn every worker waited for it
    # (BENCHMARKS.md, "2026-12-02, afternoon"). No gc.collect() first: it would add
    # ~0.4 s to a worker's start, to save the little garbage frozen with the rest.
    gc.freeze()
    # A young collection every 10,000 net allocations instead of 700: nearly everything a
    # request allocates is freed by reference counting first, so each collection finds
    # little, and ten times fewer of them pause the worker (interleaved HTTP A/B, 8 rounds:
    # decisions/s 579 -> 609, no-op unchanged).
    gc.set_threshold(10_000, 20, 50)
    catalog = worker.wsgi.extensions.get("catalog") if hasattr(worker.wsgi, "extensions") else None
    loaded = len(catalog.registry.all()) if catalog is not None else 0
    worker.log.info("worker %s ready in %.2f s (%d ruleset versions loaded)",
                    worker.pid, time.monotonic() - getattr(worker, "forked_at", time.monotonic()), loaded)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


# Jobs (service/jobs/): the master runs one job runner beside the request workers.
def when_ready(server):
    from service.jobs import embedded
    embedded.start(server)


def on_exit(server):
    from service.jobs import embedded
    embedded.stop(server)
