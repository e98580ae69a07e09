"""Walk a stream of stored decisions and report the first break in the chain.

Backend-independent: each backend opens a consistent snapshot, streams the records
(seq >= the retention floor, ascending) into `verify_chain` and hands it the
chain_head and retention anchor read from the same snapshot. Memory use is one record.
"""
from __future__ import annotations

from typing import Callable, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import chain
from .checkpoints import Checkpoint, signature_ok
from .rows import RetentionAnchor, StoredDecision
from .store import VerifyReport


Problem = dict  # {seq, decision_id, kind, detail}


def verify_chain(
    records: Iterable[StoredDecision],
    *,
    head: tuple[int, str],
    anchor: RetentionAnchor | None,
    key: bytes | None,
    expected_head: tuple[int, str] | None = None,
    find_orphan_index_seq: Callable[[], int | None] = lambda: None,
    checkpoints: list[Checkpoint] = (),
    public_key: Ed25519PublicKey | None = None,
    since: Checkpoint | None = None,
) -> VerifyReport:
    """`find_orphan_index_seq` returns the seq of a fired-rule index row whose record
    does not exist (or None); it is only called once the chain itself checked out.

    Every checkpoint's signature is checked (with `public_key`; without one they are
    reported unchecked) and the chain must pass through each: the record at its seq has
    its hash, and the log reaches that far. `since`: a checkpoint to start from instead
    of the beginning — `records` then start at its seq, which must hold its hash."""
    walk = _ChainWalk(head, anchor, key, expected_head, checkpoints, since)
    problem = _bad_signature(checkpoints, public_key) or walk.first_problem(records, find_orphan_index_seq)
    latest = checkpoints[-1].to_dict() if checkpoints else None
    return VerifyReport(
        ok=problem is None,
        checked=walk.checked,
        first_problem=problem,
        head={"seq": head[0], "hash": head[1]},
        retention_floor=anchor.to_dict() if anchor else None,
        checkpoints={"checked": len(checkpoints),
                     "signatures": "verified" if public_key is not None else "unchecked",
                     "latest": latest, "since": since.seq if since else None},
    )


def _bad_signature(checkpoints: list[Checkpoint], public_key: Ed25519PublicKey | None) -> Problem | None:
    if public_key is None:
        return None
    for checkpoint in checkpoints:
        if not signature_ok(public_key, checkpoint):
            return _problem(checkpoint.seq, None, "bad_checkpoint",
                            f"the signature of the checkpoint at seq {checkpoint.seq} does not verify")
    return None


def _problem(seq: int, decision_id: str | None, kind: str, detail: str) -> Problem:
    return {"seq": seq, "decision_id": decision_id, "kind": kind, "detail": detail}


class _ChainWalk:
    def __init__(self, head: tuple[int, str], anchor: RetentionAnchor | None,
                 key: bytes | None, expected_head: tuple[int, str] | None,
                 checkpoints: list[Checkpoint] = (), since: Checkpoint | None = None) -> None:
        self.head = head
        self.anchor = anchor
        self.key = key
        self.pinned_seq, self.pinned_hash = expected_head if expected_head else (None, None)
        self.checkpoints = {c.seq: c.hash for c in checkpoints}
        self.since = since
        self.checked = 0

    def first_problem(self, records: Iterable[StoredDecision],
                      find_orphan_index_seq: Callable[[], int | None]) -> Problem | None:
        if self.since is not None:
            return self._walk(records, self.since.seq, None, find_orphan_index_seq)
        anchor = self.anchor
        next_seq = anchor.first_seq if anchor else 1
        prev_hash = anchor.prev_hash if anchor else chain.GENESIS_HASH
        below_floor = self.checkpoints.get(next_seq - 1)
        if below_floor is not None and below_floor != prev_hash:
            return _problem(next_seq - 1, None, "checkpoint_mismatch",
                            f"the checkpoint at seq {next_seq - 1} signed hash {below_floor}; "
                            f"the retention anchor links to {prev_hash}")
        if anchor and anchor.anchor_hash != anchor.expected_hash(self.key):
            return _problem(anchor.first_seq, None, "altered",
                            "the retention anchor does not match its hash")
        # A pinned head just below the floor is the anchor's prev_hash; further below,
        # the records are purged and cannot be checked.
        if self.pinned_seq == next_seq - 1 and self.pinned_hash != prev_hash:
            return _problem(self.pinned_seq, None, "head_mismatch",
                            f"expected head seq {self.pinned_seq} hash {self.pinned_hash}, "
                            f"the chain has {prev_hash}")
        return self._walk(records, next_seq, prev_hash, find_orphan_index_seq)

    def _walk(self, records: Iterable[StoredDecision], next_seq: int, prev_hash: str | None,
              find_orphan_index_seq: Callable[[], int | None]) -> Problem | None:
        """prev_hash None: the first record is trusted to link (it must match the
        checkpoint it starts from)."""
        last_decision_id = None
        for rec in records:
            problem = self._check_record(rec, next_seq, prev_hash)
            if problem:
                return problem
            self.checked += 1
            prev_hash, next_seq, last_decision_id = rec.hash, rec.seq + 1, rec.decision_id

        return (self._check_end(next_seq - 1, prev_hash, last_decision_id)
                or self._check_orphans(find_orphan_index_seq))

    def _check_record(self, rec: StoredDecision, expected_seq: int,
                      expected_prev_hash: str | None) -> Problem | None:
        if rec.seq != expected_seq:
            return _problem(expected_seq, None, "missing",
                            f"record seq {expected_seq} is missing "
                            f"(the next stored record is seq {rec.seq})")
        if expected_prev_hash is not None and rec.prev_hash != expected_prev_hash:
            return _problem(rec.seq, rec.decision_id, "broken_link",
                            f"prev_hash is not the hash of record seq {rec.seq - 1}")
        if chain.record_hash(rec.prev_hash, rec.hashed_fields(), self.key) != rec.hash:
            return _problem(rec.seq, rec.decision_id, "altered",
                            "the stored fields do not match the record's hash")
        if sorted(rec.indexed_rule_ids or ()) != rec.fired_rule_ids():
            return _problem(rec.seq, rec.decision_id, "index_mismatch",
                            "the fired-rule index rows do not match the record's fired_rules")
        signed = self.checkpoints.get(rec.seq)
        if signed is not None and rec.hash != signed:
            return _problem(rec.seq, rec.decision_id, "checkpoint_mismatch",
                            f"the checkpoint at seq {rec.seq} signed hash {signed}, the record has "
                            f"{rec.hash}: history before it was rewritten")
        if rec.seq == self.pinned_seq and rec.hash != self.pinned_hash:
            return _problem(rec.seq, rec.decision_id, "head_mismatch",
                            f"expected head hash {self.pinned_hash}, the record has {rec.hash}")
        return None

    def _check_end(self, last_seq: int, last_hash: str,
                   last_decision_id: str | None) -> Problem | None:
        head_seq, head_hash = self.head
        if (head_seq, head_hash) != (last_seq, last_hash):
            # point at the first seq where chain_head and the records disagree
            seq = head_seq if head_seq == last_seq else min(head_seq, last_seq) + 1
            return _problem(seq, last_decision_id if seq == last_seq else None,
                            "head_mismatch",
                            f"chain_head is seq {head_seq} hash {head_hash}; "
                            f"the log ends at seq {last_seq} hash {last_hash}")
        beyond = [seq for seq in self.checkpoints if seq > last_seq]
        if beyond:
            return _problem(min(beyond), None, "checkpoint_mismatch",
                            f"a checkpoint was signed at seq {min(beyond)} but the log ends at "
                            f"seq {last_seq}: it was truncated")
        if self.pinned_seq is not None and self.pinned_seq > last_seq:
            return _problem(self.pinned_seq, None, "head_mismatch",
                            f"expected head seq {self.pinned_seq} but the log ends at "
                            f"seq {last_seq}")
        return None

    @staticmethod
    def _check_orphans(find_orphan_index_seq: Callable[[], int | None]) -> Problem | None:
        orphan_seq = find_orphan_index_seq()
        if orphan_seq is None:
            return None
        return _problem(orphan_seq, None, "index_mismatch",
                        f"fired-rule index rows exist for seq {orphan_seq}, which has no record")
