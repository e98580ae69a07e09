"""Release records: four-eyes status of published versions, their history, and rollouts.

Three tables beside `ruleset_versions` (migration 0010_release):

- `release_state` — the registry status of a version published for approval
  (`proposed | active | rejected`). A version with no row (shipped, or published with
  PUBLISH_APPROVALS=0) takes its status from its document; retirement stays in
  `ruleset_versions.retired_at`.
- `release_events` — append-only history of every transition (proposed, approved,
  rejected, retired, rollout_started/changed/ended), with identity, time and comment.
  Triggers refuse UPDATE and DELETE, so history cannot be rewritten through SQL by mistake.
- `rollouts` — at most one running champion/challenger rollout per ruleset.

Every change bumps the registry generation in the same transaction, which is how the
other instances notice it (catalog sync) without a restart. The SQL is the same for
both dialects apart from placeholders, written with `?` and turned into `%s` for
PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable

from .chain import timestamp_text
from .rows import parse_timestamp_text
from .store import NotFound, StoreError

STATUSES = ("proposed", "active", "rejected")
MODES = ("shadow", "split")

_APPEND_ONLY_SQLITE = tuple(
    f"""CREATE TRIGGER release_events_no_{op.lower()} BEFORE {op} ON release_events
        BEGIN SELECT RAISE(ABORT, 'release history is append-only'); END"""
    for op in ("UPDATE", "DELETE"))

_TABLES = """CREATE TABLE release_state (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('proposed', 'active', 'rejected')),
        proposed_by TEXT,
        PRIMARY KEY (name, version)
    )
    ;CREATE TABLE release_events (
        id {id_column},
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        event TEXT NOT NULL,
        identity TEXT,
        at TEXT NOT NULL,            -- YYYY-MM-DDTHH:MM:SS.ffffffZ
        comment TEXT,
        detail TEXT                  -- JSON object or NULL
    )
    ;CREATE INDEX release_events_version_idx ON release_events (name, version, id)
    ;CREATE TABLE rollouts (
        name TEXT PRIMARY KEY,
        challenger TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('shadow', 'split')),
        share TEXT,                  -- exact decimal text, split only
        sticky_by TEXT,
        started_by TEXT,
        started_at TEXT NOT NULL
    )"""

SQLITE_0010 = tuple(s.strip() for s in _TABLES.format(id_column="INTEGER PRIMARY KEY AUTOINCREMENT").split(";")) \
    + _APPEND_ONLY_SQLITE
POSTGRES_0010 = tuple(s.strip() for s in _TABLES.format(id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY").split(";")) + (
    """CREATE FUNCTION release_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'release history is append-only'; END $$""",
    """CREATE TRIGGER release_events_append_only BEFORE UPDATE OR DELETE ON release_events
        FOR EACH ROW EXECUTE FUNCTION release_events_append_only()""",
)


class TransitionRefused(StoreError):
    """A release transition that does not apply. `reason`: not_proposed | self_approval."""

    def __init__(self, reason: str, message: str, status: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class ReleaseState:
    name: str
    version: str
    status: str
    proposed_by: str | None


@dataclass(frozen=True)
class ReleaseEvent:
    name: str
    version: str
    event: str
    identity: str | None
    at: dt.datetime
    comment: str | None
    detail: dict | None

    def as_dict(self) -> dict:
        out = {"event": self.event, "identity": self.identity,
               "at": timestamp_text(self.at), "comment": self.comment}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class RolloutRow:
    name: str
    challenger: str
    mode: str
    share: str | None
    sticky_by: str | None
    started_by: str | None
    started_at: dt.datetime


@dataclass(frozen=True)
class Approval:
    state: ReleaseState
    approvers: list[str]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ReleaseRecords:
    """Mixed into both Store backends; runs through their `_run` transactions."""

    # -- plumbing ----------------------------------------------------------------

    def _placeholder(self) -> str:
        return "?" if self.backend == "sqlite" else "%s"

    def _release_tx(self, work: Callable[[Any], Any], *, write: bool):
        placeholder = self._placeholder()
        transaction = getattr(self, "_transaction", None)
        if transaction is not None:  # a backend with one transaction hook for both dialects
            return transaction(lambda conn: work(_Conn(conn, placeholder)), write=write)
        if self.backend == "sqlite":
            return self._run(lambda conn: work(_Conn(conn, placeholder)), write=write)
        return self._run(lambda conn: work(_Conn(conn, placeholder)))

    # -- hooks used inside publish / retire ------------------------------------------

    def propose_hook(self, name: str, version: str, identity: str | None, comment: str | None = None):
        """For `publish_version(after_insert=…)`: the new version is stored as proposed, in
        the same transaction as its row (a crash never leaves an unapproved version active)."""
        def hook(conn) -> None:
            c = _Conn(conn, self._placeholder())
            c.execute("INSERT INTO release_state (name, version, status, proposed_by) VALUES (?, ?, 'proposed', ?)",
                      (name, version, identity))
            _event(c, name, version, "proposed", identity, comment)
        return hook

    def event_hook(self, name: str, version: str, event: str, identity: str | None, comment: str | None = None,
                   detail: dict | None = None):
        """For `publish_version(after_insert=…)`: record one history event with the row."""
        def hook(conn) -> None:
            _event(_Conn(conn, self._placeholder()), name, version, event, identity, comment, detail)
        return hook

    # -- reading --------------------------------------------------------------------

    def release_states(self) -> dict[tuple[str, str], ReleaseState]:
        rows = self._release_tx(lambda c: c.execute(
            "SELECT name, version, status, proposed_by FROM release_state").fetchall(), write=False)
        return {(r[0], r[1]): ReleaseState(*r) for r in rows}

    def release_history(self, name: str, version: str) -> list[ReleaseEvent]:
        rows = self._release_tx(lambda c: c.execute(
            "SELECT name, version, event, identity, at, comment, detail FROM release_events "
            "WHERE name = ? AND version = ? ORDER BY id", (name, version)).fetchall(), write=False)
        return [ReleaseEvent(r[0], r[1], r[2], r[3], parse_timestamp_text(r[4]), r[5],
                             json.loads(r[6]) if r[6] else None) for r in rows]

    def list_rollouts(self) -> dict[str, RolloutRow]:
        rows = self._release_tx(lambda c: c.execute(
            "SELECT name, challenger, mode, share, sticky_by, started_by, started_at FROM rollouts").fetchall(),
            write=False)
        return {r[0]: RolloutRow(*r[:6], parse_timestamp_text(r[6])) for r in rows}

    # -- transitions ----------------------------------------------------------------

    def approve_version(self, name: str, version: str, identity: str | None, comment: str | None,
                        needed: int) -> Approval:
        """Count one approval by `identity`; the version turns active when `needed`
        distinct identities other than the proposer have approved it."""
        def approve(c) -> Approval:
            state = _locked_state(c, name, version)
            if state.status != "proposed":
                raise TransitionRefused("not_proposed", f"{name} {version} is {state.status}, not proposed", state.status)
            if identity is not None and identity == state.proposed_by:
                raise TransitionRefused("self_approval", f"{identity} proposed {name} {version} and cannot approve it")
            approvers = _approvers(c, name, version)
            if identity in approvers:
                raise TransitionRefused("self_approval", f"{identity} has already approved {name} {version}; "
                                        "another identity must approve it")
            approvers.append(identity)
            _event(c, name, version, "approved", identity, comment,
                   {"approvals": len(approvers), "needed": needed})
            if len(approvers) >= needed:
                c.execute("UPDATE release_state SET status = 'active' WHERE name = ? AND version = ?", (name, version))
                _event(c, name, version, "activated", identity, None, {"approvers": approvers})
                state = ReleaseState(name, version, "active", state.proposed_by)
            _bump(c)
            return Approval(state, approvers)

        return self._release_tx(approve, write=True)

    def reject_version(self, name: str, version: str, identity: str | None, comment: str | None) -> ReleaseState:
        def reject(c) -> ReleaseState:
            state = _locked_state(c, name, version)
            if state.status != "proposed":
                raise TransitionRefused("not_proposed", f"{name} {version} is {state.status}, not proposed", state.status)
            c.execute("UPDATE release_state SET status = 'rejected' WHERE name = ? AND version = ?", (name, version))
            _event(c, name, version, "rejected", identity, comment)
            # A rejected version can no longer be anybody's challenger.
            ended = c.execute("DELETE FROM rollouts WHERE name = ? AND challenger = ? RETURNING mode",
                              (name, version)).fetchall()
            if ended:
                _event(c, name, version, "rollout_ended", identity, "the challenger was rejected")
            _bump(c)
            return ReleaseState(name, version, "rejected", state.proposed_by)

        return self._release_tx(reject, write=True)

    def record_release_event(self, name: str, version: str, event: str, identity: str | None,
                             comment: str | None = None, detail: dict | None = None) -> None:
        self._release_tx(lambda c: _event(c, name, version, event, identity, comment, detail), write=True)

    def set_rollout(self, name: str, challenger: str, mode: str, share: str | None, sticky_by: str | None,
                    identity: str | None, comment: str | None = None) -> tuple[RolloutRow, bool]:
        """Start or change the ruleset's rollout; (row, True) when none was running."""
        def put(c) -> tuple[RolloutRow, bool]:
            now = timestamp_text(_now())
            before = c.execute("SELECT challenger, mode, share, sticky_by FROM rollouts WHERE name = ?",
                               (name,)).fetchone()
            if before is None:
                c.execute("INSERT INTO rollouts (name, challenger, mode, share, sticky_by, started_by, started_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, challenger, mode, share, sticky_by, identity, now))
            else:
                c.execute("UPDATE rollouts SET challenger = ?, mode = ?, share = ?, sticky_by = ?, started_by = ?, "
                          "started_at = ? WHERE name = ?", (challenger, mode, share, sticky_by, identity, now, name))
                if before[0] != challenger:
                    _event(c, name, before[0], "rollout_ended", identity, f"replaced by challenger {challenger}")
            detail = {"mode": mode, "share": share, "sticky_by": sticky_by}
            _event(c, name, challenger, "rollout_started" if before is None or before[0] != challenger
                   else "rollout_changed", identity, comment, detail)
            _bump(c)
            return RolloutRow(name, challenger, mode, share, sticky_by, identity, parse_timestamp_text(now)), before is None

        return self._release_tx(put, write=True)

    def end_rollout(self, name: str, identity: str | None, comment: str | None = None) -> RolloutRow:
        def delete(c) -> RolloutRow:
            row = c.execute("DELETE FROM rollouts WHERE name = ? RETURNING name, challenger, mode, share, sticky_by, "
                            "started_by, started_at", (name,)).fetchone()
            if row is None:
                raise NotFound(f"{name} has no rollout running")
            _event(c, name, row[1], "rollout_ended", identity, comment)
            _bump(c)
            return RolloutRow(*row[:6], parse_timestamp_text(row[6]))

        return self._release_tx(delete, write=True)


class _Conn:
    """A connection whose SQL is written with `?` placeholders."""

    def __init__(self, conn, placeholder: str):
        self.conn, self.placeholder = conn, placeholder

    def execute(self, sql: str, params=()):
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        return self.conn.execute(sql, params)


def _event(c: _Conn, name: str, version: str, event: str, identity: str | None, comment: str | None,
           detail: dict | None = None) -> None:
    c.execute("INSERT INTO release_events (name, version, event, identity, at, comment, detail) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)",
              (name, version, event, identity, timestamp_text(_now()), comment,
               json.dumps(detail, sort_keys=True, separators=(",", ":")) if detail is not None else None))


def _bump(c: _Conn) -> None:
    c.execute("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")


def _locked_state(c: _Conn, name: str, version: str) -> ReleaseState:
    # FOR UPDATE serialises concurrent approvals on PostgreSQL; SQLite writers are already serial.
    lock = " FOR UPDATE" if c.placeholder != "?" else ""
    row = c.execute("SELECT name, version, status, proposed_by FROM release_state WHERE name = ? AND version = ?"
                    + lock, (name, version)).fetchone()
    if row is None:
        exists = c.execute("SELECT 1 FROM ruleset_versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        if exists is None:
            raise NotFound(f"ruleset {name} version {version} is not published")
        raise TransitionRefused("not_proposed", f"{name} {version} was not published for approval; it is not proposed")
    return ReleaseState(*row)


def _approvers(c: _Conn, name: str, version: str) -> list[str]:
    rows = c.execute("SELECT identity FROM release_events WHERE name = ? AND version = ? AND event = 'approved' "
                     "ORDER BY id", (name, version)).fetchall()
    return [r[0] for r in rows]
