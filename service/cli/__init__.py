"""The `credit-rules` command line (main.py)."""
