"""Signed checkpoints of the chain head (Ed25519, via `cryptography`).

A checkpoint is {"seq", "hash", "time", "signature"}: the signature (base64) is over the
UTF-8 canonical JSON — sorted keys, no spaces — of {"hash", "seq", "time"}. Anyone with
the public key can then check that the chain still passes through (seq, hash): a writer
with database access but without the signing key cannot truncate the log or rewrite
history before a checkpoint (rebuilding every later hash works only without an HMAC
key, and no longer hides anything once a checkpoint is signed).

Who signs: every process configured with the key runs a `Checkpointer`; each round it
asks the store to sign *if due*. The store decides inside one write transaction that
holds the signer lock (PostgreSQL: an advisory transaction lock; SQLite: the write lock)
whether the head moved and the newest checkpoint is older than the interval, so across
workers and instances one checkpoint is signed per interval and two can never name the
same seq (it is the primary key).
"""
from __future__ import annotations

import atexit
import base64
import binascii
import logging
import os
import threading
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from service import canonical

log = logging.getLogger("service.decisionlog.checkpoints")

DEFAULT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: str  # chain.timestamp_text form, UTC
    signature: str  # base64

    def to_dict(self) -> dict:
        return asdict(self)


def signed_bytes(seq: int, hash_: str, time: str) -> bytes:
    """What is signed: canonical JSON of {"hash", "seq", "time"} (sorted, no spaces)."""
    return canonical.dumps({"hash": hash_, "seq": seq, "time": time}).encode("utf-8")


class SigningKeyError(ValueError):
    """DECISION_LOG_SIGNING_KEY is not an Ed25519 private key."""


def load_signing_key(text: str) -> Ed25519PrivateKey:
    """PKCS#8 PEM, or base64 of the raw 32-byte seed."""
    text = text.strip()
    if "-----BEGIN" in text:
        pem = text.replace("\\n", "\n").encode("ascii", "replace")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"DECISION_LOG_SIGNING_KEY is not a readable PKCS#8 PEM key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError("DECISION_LOG_SIGNING_KEY must be an Ed25519 key")
        return key
    try:
        seed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError("DECISION_LOG_SIGNING_KEY is neither PEM nor base64") from None
    if len(seed) != 32:
        raise SigningKeyError(f"DECISION_LOG_SIGNING_KEY: a raw Ed25519 seed is 32 bytes, not {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("the public key must be an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def sign(key: Ed25519PrivateKey, seq: int, hash_: str, time: str) -> Checkpoint:
    signature = key.sign(signed_bytes(seq, hash_, time))
    return Checkpoint(seq, hash_, time, base64.b64encode(signature).decode("ascii"))


def signature_ok(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        public_key.verify(base64.b64decode(checkpoint.signature, validate=True),
                          signed_bytes(checkpoint.seq, checkpoint.hash, checkpoint.time))
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


class Checkpointer:
    """Signs the chain head at least every `interval_s` (when it moved) and once more
    at shutdown. One per process; survives fork (the thread is restarted in the child)."""

    def __init__(self, store, key: Ed25519PrivateKey, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.store = store
        self.key = key
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def start(self) -> "Checkpointer":
        self._start_thread()
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.stop)
        return self

    def _after_fork(self) -> None:
        self._stop = threading.Event()
        self._pid = os.getpid()
        self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decision-log-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Poll several times per interval: the store signs only when the newest checkpoint
        # is older than the interval, whoever signed it.
        while not self._stop.wait(self._poll_s()):
            self.round(final=False)

    def _poll_s(self) -> float:
        return max(0.05, self.interval_s / 4)

    def round(self, *, final: bool) -> Checkpoint | None:
        # Due once the newest checkpoint is interval - poll old: with a poll every
        # `poll` seconds, no gap between checkpoints exceeds the interval.
        due_after = 0.0 if final else max(0.0, self.interval_s - self._poll_s())
        try:
            return self.store.sign_checkpoint(self.key, min_interval_s=due_after)
        except Exception as exc:  # an outage must not kill the thread; the next round retries
            log.warning("could not sign a checkpoint: %s", exc)
            return None

    def stop(self) -> None:
        """Stop the thread and sign the head if it moved since the last checkpoint."""
        if os.getpid() != self._pid or self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.round(final=True)
