"""Signed checkpoints: who signs, what is signed, and what a writer without the keys
can no longer hide (truncation, rewriting history) — no HMAC key anywhere here."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.decisionlog.checkpoints import (
    Checkpointer, SigningKeyError, load_signing_key, public_key_pem, signed_bytes,
)
from service.decisionlog.rows import prepare_decision

from .conftest import run_processes
from .factories import make_decision
from .workers import sign_checkpoints

SEED = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC = KEY.public_key()


def fill(store, start, count):
    for n in range(start, start + count):
        store.append_decision(make_decision(f"d-{n}"))


def test_keys_load_from_pem_or_a_base64_seed():
    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    for text in (pem, pem.replace("\n", "\\n"), base64.b64encode(SEED).decode()):
        assert public_key_pem(load_signing_key(text)) == public_key_pem(KEY)
    for bad in ("not a key", base64.b64encode(b"short").decode(), "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"):
        with pytest.raises(SigningKeyError):
            load_signing_key(bad)


def test_a_checkpoint_signs_canonical_json_of_hash_seq_time(store):
    fill(store, 1, 3)
    checkpoint = store.sign_checkpoint(KEY, min_interval_s=0)
    assert (checkpoint.seq, checkpoint.hash) == (3, store.verify().head["hash"])
    message = signed_bytes(checkpoint.seq, checkpoint.hash, checkpoint.time)
    assert message == json.dumps({"hash": checkpoint.hash, "seq": 3, "time": checkpoint.time},
                                 sort_keys=True, separators=(",", ":")).encode()
    PUBLIC.verify(base64.b64decode(checkpoint.signature), message)  # raises if wrong
    assert store.list_checkpoints() == [checkpoint]


def test_only_when_the_head_moved_and_the_interval_passed(store):
    assert store.sign_checkpoint(KEY, min_interval_s=0) is None  # empty log
    fill(store, 1, 2)
    assert store.sign_checkpoint(KEY, min_interval_s=0).seq == 2
    assert store.sign_checkpoint(KEY, min_interval_s=0) is None  # head did not move
    fill(store, 3, 1)
    assert store.sign_checkpoint(KEY, min_interval_s=3600) is None  # newest is too recent
    assert store.sign_checkpoint(KEY, min_interval_s=0).seq == 3
    assert [c.seq for c in store.list_checkpoints()] == [3, 2]  # newest first
    assert [c.seq for c in store.list_checkpoints(before_seq=3)] == [2]


def test_many_processes_signing_at_once_make_one_checkpoint(target, store):
    fill(store, 1, 5)
    results = run_processes(sign_checkpoints, [(target.database_url, target.data_dir)] * 4)
    assert sorted(results) == [False, False, False, True]
    assert [c.seq for c in store.list_checkpoints()] == [5]


def test_verify_checks_signatures_and_reports_them(store):
    fill(store, 1, 4)
    store.sign_checkpoint(KEY, min_interval_s=0)
    fill(store, 5, 2)
    report = store.verify(public_key=PUBLIC)
    assert report.ok and report.checkpoints["checked"] == 1 and report.checkpoints["signatures"] == "verified"
    assert store.verify().checkpoints["signatures"] == "unchecked"
    other = Ed25519PrivateKey.generate().public_key()
    problem = store.verify(public_key=other).first_problem
    assert (problem["seq"], problem["kind"]) == (4, "bad_checkpoint")


def test_a_forged_checkpoint_signature_is_caught(target, store):
    fill(store, 1, 3)
    store.sign_checkpoint(KEY, min_interval_s=0)
    target.sql("UPDATE checkpoints SET seq = 2, hash = (SELECT hash FROM decisions WHERE seq = 2)")
    assert store.verify(public_key=PUBLIC).first_problem["kind"] == "bad_checkpoint"


def test_truncation_after_a_checkpoint_is_caught_without_the_hmac_key(target, store):
    fill(store, 1, 6)
    store.sign_checkpoint(KEY, min_interval_s=0)
    # The attacker deletes the tail and makes chain_head agree: the plain chain verifies.
    target.sql("DELETE FROM decision_rules WHERE seq > 3")
    target.sql("DELETE FROM decisions WHERE seq > 3")
    target.sql("UPDATE chain_head SET seq = 3, hash = (SELECT hash FROM decisions WHERE seq = 3)")
    report = store.verify(public_key=PUBLIC)
    assert not report.ok
    assert (report.first_problem["seq"], report.first_problem["kind"]) == (6, "checkpoint_mismatch")


def test_rewritten_history_before_a_checkpoint_is_caught_without_the_hmac_key(target, store):
    fill(store, 1, 6)
    store.sign_checkpoint(KEY, min_interval_s=0)
    rewrite_from(target, store, seq=2)
    report = store.verify(public_key=PUBLIC)
    # every record hashes and links (the rebuilt chain is self-consistent): only the
    # signed checkpoint tells
    assert (report.first_problem["seq"], report.first_problem["kind"]) == (6, "checkpoint_mismatch")
    assert report.checked == 5


def rewrite_from(target, store, seq):
    """What a database writer can do without an HMAC key: alter record `seq` and rebuild
    every later hash and chain_head so that the chain alone verifies again."""
    rows = target.sql("SELECT decision_id FROM decisions WHERE seq >= ? ORDER BY seq", (seq,))
    prev_hash = target.sql("SELECT hash FROM decisions WHERE seq = ?", (seq - 1,))[0][0]
    for offset, (decision_id,) in enumerate(rows):
        rec = make_decision(decision_id, outcome="DECLINE" if offset == 0 else "APPROVE")
        placed = prepare_decision(rec).chained(seq + offset, prev_hash, None)
        target.sql("UPDATE decisions SET outcome = ?, response = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                   (placed.outcome, placed.response_json, placed.prev_hash, placed.hash, placed.seq))
        prev_hash = placed.hash
    target.sql("UPDATE chain_head SET hash = ?", (prev_hash,))


def test_incremental_verify_walks_only_what_is_newer(target, store):
    fill(store, 1, 5)
    store.sign_checkpoint(KEY, min_interval_s=0)
    fill(store, 6, 3)
    report = store.verify(public_key=PUBLIC, since=5)
    assert report.ok and report.checked == 4 and report.checkpoints["since"] == 5  # seqs 5..8
    # damage before the checkpoint is out of scope; after it, caught
    target.sql("UPDATE decisions SET outcome = 'REFER' WHERE seq = 2")
    assert store.verify(public_key=PUBLIC, since=5).ok
    target.sql("UPDATE decisions SET outcome = 'REFER' WHERE seq = 7")
    assert store.verify(public_key=PUBLIC, since=5).first_problem["seq"] == 7
    # the starting record itself must still be the signed one
    target.sql("UPDATE decisions SET hash = ? WHERE seq = 5", ("e" * 64,))
    assert store.verify(public_key=PUBLIC, since=5).first_problem["kind"] in ("altered", "checkpoint_mismatch")
    missing = store.verify(public_key=PUBLIC, since=4).first_problem
    assert (missing["seq"], missing["kind"]) == (4, "bad_checkpoint")


def test_the_checkpointer_signs_periodically_and_at_stop(store):
    fill(store, 1, 2)
    checkpointer = Checkpointer(store, KEY, interval_s=3600).start()
    fill(store, 3, 1)
    checkpointer.stop()  # shutdown: the moved head is signed whatever the interval
    assert [c.seq for c in store.list_checkpoints()] == [3]
