"""Operator commands for the decision log.

    python -m service.decisionlog migrate
    python -m service.decisionlog verify [--expected-head SEQ:HASH] [--since SEQ] [--public-key FILE]
    python -m service.decisionlog checkpoint
    python -m service.decisionlog purge [--before YYYY-MM-DD] [--force]

Environment: DATABASE_URL (postgresql://...; unset = SQLite under DATA_DIR),
DATA_DIR (default ./var), DECISION_LOG_HMAC_KEY (the chain key, if the service
uses one), DECISION_LOG_SIGNING_KEY (the checkpoint signing key: `checkpoint` signs
with it, `verify` checks signatures with its public key unless --public-key is given),
DECISION_RETENTION_DAYS (purge cutoff when --before is not given).

Exit status: 0 ok, 1 verify found a problem (or purge refused), 2 error.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

from . import open_store
from .checkpoints import SigningKeyError, load_public_key, load_signing_key
from .store import Store, StoreError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    key = os.environ.get("DECISION_LOG_HMAC_KEY")
    try:
        store = open_store(os.environ.get("DATABASE_URL") or None,
                           os.environ.get("DATA_DIR") or "./var",
                           hmac_key=key.encode("utf-8") if key else None)
        with store:
            return args.command(store, args)
    except (StoreError, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _migrate(store: Store, args: argparse.Namespace) -> int:
    applied = store.migrate()
    _emit({"applied": applied, "pending": store.pending_migrations()})
    return 0


def _verify(store: Store, args: argparse.Namespace) -> int:
    report = store.verify(expected_head=args.expected_head, public_key=_public_key(args.public_key),
                          since=args.since)
    _emit(report.to_dict())
    return 0 if report.ok else 1


def _public_key(path: str | None):
    """From --public-key, else derived from DECISION_LOG_SIGNING_KEY, else None."""
    if path:
        with open(path, "rb") as handle:
            return load_public_key(handle.read())
    key = os.environ.get("DECISION_LOG_SIGNING_KEY")
    return load_signing_key(key).public_key() if key else None


def _checkpoint(store: Store, args: argparse.Namespace) -> int:
    key = os.environ.get("DECISION_LOG_SIGNING_KEY")
    if not key:
        raise SigningKeyError("set DECISION_LOG_SIGNING_KEY to sign a checkpoint")
    checkpoint = store.sign_checkpoint(load_signing_key(key), min_interval_s=0)
    _emit({"signed": checkpoint.to_dict() if checkpoint else None})
    return 0


def _purge(store: Store, args: argparse.Namespace) -> int:
    cutoff = _cutoff(args.before)
    if not args.force:
        # Purging a damaged prefix would destroy the evidence: check first.
        report = store.verify()
        if not report.ok:
            _emit({"purged": 0, "refused": "the decision log does not verify",
                   "verify": report.to_dict()})
            return 1
    purged = store.purge_before(cutoff)
    _emit({"purged": purged, "cutoff": cutoff.isoformat()})
    return 0


def _cutoff(before: dt.date | None) -> dt.datetime:
    if before is not None:
        return dt.datetime.combine(before, dt.time(), tzinfo=dt.timezone.utc)
    days = os.environ.get("DECISION_RETENTION_DAYS")
    if not days:
        raise ValueError("give --before YYYY-MM-DD or set DECISION_RETENTION_DAYS")
    if not days.isdigit() or int(days) < 1:
        raise ValueError("DECISION_RETENTION_DAYS must be a positive whole number of days")
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=int(days))


def _expected_head(text: str) -> tuple[int, str]:
    seq, sep, hash_ = text.partition(":")
    if not sep or not seq.isdigit() or len(hash_) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:HASH (hash = 64 hex digits)")
    return int(seq), hash_.lower()


def _emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service.decisionlog",
                                     description="Decision log and ruleset registry store.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.set_defaults(command=_migrate)

    verify = commands.add_parser("verify", help="check the hash chain; exit 1 if broken")
    verify.add_argument("--expected-head", type=_expected_head, metavar="SEQ:HASH",
                        help="a head remembered from an earlier verify")
    verify.add_argument("--since", type=int, metavar="SEQ",
                        help="verify incrementally from the checkpoint at SEQ")
    verify.add_argument("--public-key", metavar="FILE",
                        help="PEM public key for the checkpoint signatures "
                             "(default: derived from DECISION_LOG_SIGNING_KEY)")
    verify.set_defaults(command=_verify)

    checkpoint = commands.add_parser("checkpoint", help="sign the chain head now (if it moved)")
    checkpoint.set_defaults(command=_checkpoint)

    purge = commands.add_parser("purge", help="delete decisions evaluated before a date "
                                              "(a whole prefix of the chain)")
    purge.add_argument("--before", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                       help="cutoff (UTC midnight); default: now - DECISION_RETENTION_DAYS")
    purge.add_argument("--force", action="store_true",
                       help="purge even if the log does not verify")
    purge.set_defaults(command=_purge)
    return parser


if __name__ == "__main__":
    sys.exit(main())
