"""Walk a stream of stored decisions and report the first break in the chain.

Backend-independent: each backend opens a consistent snapshot, streams the records
(seq >= the retention floor, ascending) into `verify_chain` and hands it the
chain_head and retention anchor read from the same snapshot. Memory use is one record.
"""
from __future__ import annotations

from typing import Callable, Iterable

from . import chain
from .rows import RetentionAnchor, StoredDecision
from .store import VerifyReport


class _Problem(Exception):
    def __init__(self, seq: int, decision_id: str | None, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.as_dict = {"seq": seq, "decision_id": decision_id, "kind": kind, "detail": detail}


def verify_chain(
    records: Iterable[StoredDecision],
    *,
    head: tuple[int, str],
    anchor: RetentionAnchor | None,
    key: bytes | None,
    expected_head: tuple[int, str] | None = None,
    find_orphan_index_seq: Callable[[], int | None] = lambda: None,
) -> VerifyReport:
    """`find_orphan_index_seq` returns the seq of a fired-rule index row whose record
    does not exist (or None); it is only called once the chain itself checked out."""
    counter = {"checked": 0}
    try:
        _walk(records, head, anchor, key, expected_head, find_orphan_index_seq, counter)
        problem = None
    except _Problem as found:
        problem = found.as_dict
    return VerifyReport(
        ok=problem is None,
        checked=counter["checked"],
        first_problem=problem,
        head={"seq": head[0], "hash": head[1]},
        retention_floor=anchor.to_dict() if anchor else None,
    )


def _walk(records, head, anchor, key, expected_head, find_orphan_index_seq, counter) -> None:
    next_seq = anchor.first_seq if anchor else 1
    prev_hash = anchor.prev_hash if anchor else chain.GENESIS_HASH
    if anchor and anchor.anchor_hash != anchor.expected_hash(key):
        raise _Problem(anchor.first_seq, None, "altered",
                       "the retention anchor does not match its hash")

    pinned_seq, pinned_hash = expected_head if expected_head else (None, None)
    # A pinned head just below the floor is the anchor's prev_hash; further below, the
    # records are purged and cannot be checked.
    if pinned_seq is not None and pinned_seq == next_seq - 1 and pinned_hash != prev_hash:
        raise _Problem(pinned_seq, None, "head_mismatch",
                       f"expected head seq {pinned_seq} hash {pinned_hash}, "
                       f"the chain has {prev_hash}")

    last_decision_id = None
    for rec in records:
        if rec.seq != next_seq:
            raise _Problem(next_seq, None, "missing",
                           f"record seq {next_seq} is missing (next stored record is seq {rec.seq})")
        if rec.prev_hash != prev_hash:
            raise _Problem(rec.seq, rec.decision_id, "broken_link",
                           f"prev_hash is not the hash of record seq {rec.seq - 1}")
        if chain.record_hash(rec.prev_hash, rec.hashed_fields(), key) != rec.hash:
            raise _Problem(rec.seq, rec.decision_id, "altered",
                           "the stored fields do not match the record's hash")
        if sorted(rec.indexed_rule_ids or ()) != rec.fired_rule_ids():
            raise _Problem(rec.seq, rec.decision_id, "index_mismatch",
                           "the fired-rule index rows do not match the record's fired_rules")
        if rec.seq == pinned_seq and rec.hash != pinned_hash:
            raise _Problem(rec.seq, rec.decision_id, "head_mismatch",
                           f"expected head hash {pinned_hash}, the record has {rec.hash}")
        counter["checked"] += 1
        prev_hash, next_seq, last_decision_id = rec.hash, rec.seq + 1, rec.decision_id

    last_seq = next_seq - 1
    head_seq, head_hash = head
    if (head_seq, head_hash) != (last_seq, prev_hash):
        # point at the first seq where the head and the records disagree
        seq = head_seq if head_seq == last_seq else min(head_seq, last_seq) + 1
        raise _Problem(seq, last_decision_id if seq == last_seq else None, "head_mismatch",
                       f"chain_head is seq {head_seq} hash {head_hash}; "
                       f"the log ends at seq {last_seq} hash {prev_hash}")
    if pinned_seq is not None and pinned_seq > last_seq:
        raise _Problem(pinned_seq, None, "head_mismatch",
                       f"expected head seq {pinned_seq} but the log ends at seq {last_seq}")
    orphan_seq = find_orphan_index_seq()
    if orphan_seq is not None:
        raise _Problem(orphan_seq, None, "index_mismatch",
                       f"fired-rule index rows exist for seq {orphan_seq}, which has no record")
