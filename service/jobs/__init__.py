"""Persistent impact / backtest jobs: a store-backed queue (queue.py), the work a job
process does (work.py), the runner keeping those processes (runner.py) and its start by the
gunicorn master (embedded.py)."""
