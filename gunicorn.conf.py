"""gunicorn settings, read automatically by `gunicorn 'service.wsgi:app'` from this directory.

Sync workers (one request at a time each, no threads: durable_rules' C extension holds
the GIL and its state is per process), as many as the CPUs can keep busy. Each worker
builds the app itself after fork and compiles the rulesets into its own engine.
"""
import multiprocessing
import os
import secrets
import shutil
import tempfile

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 2
backlog = 2048
max_requests = 0  # the engine's memory is flat (tests/engine/test_isolation.py); no recycling needed
limit_request_line = 8190
limit_request_fields = 100

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


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
