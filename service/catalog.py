"""The published ruleset versions of this deployment: the store is the truth, the registry the cache.

On start, every shipped document under RULESETS_DIR is published into the store (it is
a no-op when already there with the same content; a shipped file whose content differs
from what was published under its version stops the start — published versions are
immutable). Then every version in the store is loaded. Publishing goes through the same
path; other instances notice through the store's registry generation, checked at most
every `refresh_seconds` and whenever a request names something not loaded yet.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from service.boundary import store_errors_translated
from service.decisionlog import NotFound, RulesetVersionRow, Store
from service.decisionlog.releases import Approval, ReleaseState, RolloutRow, TransitionRefused
from service.errors import (
    InvalidRollout, InvalidRuleset, NoRollout, Problem, ReleaseConflict, SelfApproval, StorageUnavailable,
    UnknownRuleset, VersionConflict,
)
from service.rulesets.document import DocumentError, parse_document
from service.decision_engine import Engine, LoadedVersion, Registry, version_key
from service.decision_engine.registry import read_document

log = logging.getLogger("service.catalog")


@dataclass
class PublishResult:
    version: LoadedVersion
    created: bool
    warnings: list[Problem]


@store_errors_translated
class Catalog:
    def __init__(self, store: Store, shipped_dir: str | Path | None, refresh_seconds: float = 1.0,
                 publish_approvals: int = 0):
        self.store = store
        self.publish_approvals = publish_approvals
        self.rollouts: dict[str, RolloutRow] = {}
        self.shipped_dir = Path(shipped_dir) if shipped_dir else None
        self.refresh_seconds = refresh_seconds
        self.registry = Registry()
        self.engine = Engine(self.registry)  # the decision path evaluates through this
        self._generation: int | None = None
        self._checked_at = 0.0
        self._lock = threading.RLock()
        self.load_errors: dict[str, list[Problem]] = {}
        self._seeded = False
        self._shipped: list[tuple[str, str, str]] | None = None

    # -- start and refresh ---------------------------------------------------------

    def start(self) -> None:
        """Publish shipped rulesets into the store, then load everything it holds.

        If the store is down now, sync() finishes the job when it is back."""
        self._seed_shipped()
        self.sync(force=True)

    def _seed_shipped(self) -> None:
        if self._seeded:
            return
        if self._shipped is None:
            self._shipped = self._read_shipped()
        staged = None
        for name, version, sha256 in self._shipped:
            row = self.store.get_version(name, version)
            if row is not None and row.sha256 != sha256:
                raise VersionConflict(f"shipped {name} {version} differs from the published version "
                                      f"(sha256 {row.sha256[:12]}); publish a new version instead of editing a released file")
            if row is None:
                staged = staged or self._stage_shipped()
                lv = staged[(name, version)]
                # The deployment is their approval: no release_state row, so the document's status holds.
                self.store.publish_version(lv.name, lv.version, lv.ruleset.sha256, lv.ruleset_canonical_json,
                                           lv.source_text, lv.source_format, "shipped",
                                           after_insert=self.store.event_hook(lv.name, lv.version, "shipped", "shipped"))
        self._seeded = True

    def _read_shipped(self) -> list[tuple[str, str, str]]:
        """(name, version, sha256) of every shipped file: read and hashed only."""
        if self.shipped_dir is None or not self.shipped_dir.is_dir():
            return []
        out = []
        for path in sorted(p for p in self.shipped_dir.glob("*/*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()):
            try:
                doc = read_document(path.read_bytes(), "json" if path.suffix == ".json" else "yaml")
            except DocumentError:
                self._stage_shipped()  # raises, naming every file that does not load
                raise
            data = doc.data if isinstance(doc.data, dict) else {}
            name, version = data.get("name"), data.get("version")
            if name != path.parent.name or version != path.stem:
                self._stage_shipped()
            out.append((name, version, doc.sha256))
        return out

    def _stage_shipped(self) -> dict[tuple[str, str], LoadedVersion]:
        """Every shipped version through every check and its embedded tests, as publishing
        does: needed only for those the store does not hold yet (a first start, a new file)."""
        staging = Registry()
        failures = staging.load_directory(self.shipped_dir)
        if failures:
            raise InvalidRuleset(f"shipped rulesets in {self.shipped_dir} do not load: {sorted(failures)}",
                                 [p for problems in failures.values() for p in problems])
        return {(lv.name, lv.version): lv for lv in staging.all()}

    def sync(self, *, force: bool = False) -> None:
        """Load versions published (or retired) since the last look."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.refresh_seconds:
            return
        with self._lock:
            self._seed_shipped()  # no-op once done; finishes a start the store was down for
            generation = self.store.registry_generation()
            self._checked_at = time.monotonic()
            if generation == self._generation and not force:
                return
            rows = self.store.list_versions()
            states = self.store.release_states()
            rollouts = self.store.list_rollouts()
            self._load_rows(rows, states)
            for lv in self.registry.all():
                state = states.get((lv.name, lv.version))
                lv.release_status = state.status if state is not None else None
            self.rollouts = rollouts
            self._generation = generation

    def refresh_for_miss(self) -> None:
        """Someone asked for a ruleset or version we do not have: look now."""
        self.sync(force=True)

    def _load_rows(self, rows: list[RulesetVersionRow], states: dict | None = None) -> None:
        pending = [r for r in rows if self.registry.get(r.name, r.version) is None]
        for row in rows:
            if row.retired_at is not None:
                self.registry.mark_retired(row.name, row.version)
        # Used rulesets must be loaded before their users: retry until nothing changes.
        while pending:
            progressed = False
            for row in list(pending):
                try:
                    doc = read_document(row.source_text, row.source_format)
                except DocumentError as exc:
                    self.load_errors[f"{row.name}@{row.version}"] = exc.problems
                    pending.remove(row)
                    continue
                # Accepted when it was published (every check, its tests): compile only.
                lv, problems = self.registry.prepare(doc, run_tests=False, checks=row.sha256 != doc.sha256)
                if lv is None:
                    if any(p.code == "unknown_ruleset" for p in problems) and len(pending) > 1:
                        continue  # its used ruleset may load later in this pass
                    self.load_errors[f"{row.name}@{row.version}"] = problems
                    log.error("stored ruleset %s %s does not load: %s", row.name, row.version,
                              "; ".join(p.message for p in problems if p.severity == "error"))
                    pending.remove(row)
                    continue
                lv.retired = row.retired_at is not None
                state = (states or {}).get((row.name, row.version))
                lv.release_status = state.status if state is not None else None  # before it can be resolved
                self.registry.add(lv)
                pending.remove(row)
                progressed = True
            if not progressed:
                break

    # -- publishing -------------------------------------------------------------------

    def check(self, text: bytes | str, source_format: str | None) -> tuple[LoadedVersion | None, list[Problem]]:
        """Every check publishing does (structure, types, static checks, embedded tests); nothing stored."""
        self.sync()
        try:
            doc = parse_document(text, source_format)
        except DocumentError as exc:
            return None, exc.problems
        return self.registry.prepare(doc)

    def publish(self, name: str, text: bytes | str, source_format: str, published_by: str | None, *,
                comment: str | None = None) -> PublishResult:
        """Publish a checked version. With PUBLISH_APPROVALS > 0 it is stored `proposed`
        (whatever its document's status) until approved; with 0 it is usable at once."""
        self.sync(force=True)
        try:
            doc = parse_document(text, source_format)
        except DocumentError as exc:
            raise InvalidRuleset("the document cannot be read", exc.problems) from None
        data = doc.data if isinstance(doc.data, dict) else {}
        mismatch = []
        if data.get("name") != name:
            mismatch.append(Problem("name_mismatch", "name", f"the document's name {data.get('name')!r} is not {name!r} from the URL"))
        if data.get("version") is not None and not isinstance(data.get("version"), str):
            mismatch.append(Problem("bad_version", "version", "`version` must be a quoted string like '1.0.0'"))
        if mismatch:
            raise InvalidRuleset("the document does not match the URL", mismatch)
        existing = self.store.get_version(name, str(data.get("version")))
        if existing is not None:
            if existing.sha256 == doc.sha256:
                lv = self.registry.get(name, existing.version)
                if lv is not None:
                    return PublishResult(lv, created=False, warnings=[])
            else:
                raise VersionConflict(f"{name} {existing.version} is already published with different content "
                                      f"(sha256 {existing.sha256[:12]}…); published versions are immutable — publish a new version")
        lv, problems = self.registry.prepare(doc)
        if lv is None:
            raise InvalidRuleset(f"{name} {data.get('version')} was not published", problems)
        if lv.ruleset.status == "retired":
            raise InvalidRuleset("a new version cannot be published as retired",
                                 [Problem("bad_status", "status", "publish as draft or active")])
        if self.publish_approvals > 0:
            hook = self.store.propose_hook(name, lv.version, published_by, comment)
        else:
            hook = self.store.event_hook(name, lv.version, "published", published_by, comment)
        _, created = self.store.publish_version(name, lv.version, lv.ruleset.sha256, lv.ruleset_canonical_json,
                                                doc.source_text, doc.source_format, published_by, after_insert=hook)
        if created and self.publish_approvals > 0:
            lv.release_status = "proposed"
        elif not created:
            self.sync(force=True)  # someone else stored it a moment ago: take their status
            lv = self.registry.get(name, lv.version) or lv
        self.registry.add(lv)
        return PublishResult(lv, created=created, warnings=lv.warnings)

    def retire(self, name: str, version: str, retired_by: str | None) -> RulesetVersionRow:
        self.sync(force=True)
        if self.registry.get(name, version) is None:
            raise UnknownRuleset(f"ruleset {name!r} has no version {version!r}")
        row = self.store.retire_version(name, version, retired_by,
                                        after_retire=self.store.event_hook(name, version, "retired", retired_by))
        self.registry.mark_retired(name, version)
        return row

    # -- four-eyes: approve / reject, history ---------------------------------------------

    def approve(self, name: str, version: str, identity: str | None, comment: str | None) -> Approval:
        self.get(name, version)  # 404 for an unknown version
        try:
            approval = self.store.approve_version(name, version, identity, comment, max(1, self.publish_approvals))
        except TransitionRefused as exc:
            raise _refused(exc) from None
        self.sync(force=True)
        return approval

    def reject(self, name: str, version: str, identity: str | None, comment: str | None) -> ReleaseState:
        self.get(name, version)
        try:
            state = self.store.reject_version(name, version, identity, comment)
        except TransitionRefused as exc:
            raise _refused(exc) from None
        self.sync(force=True)
        return state

    def history(self, name: str, version: str) -> list[dict]:
        """Every transition, oldest first: {event, identity, at, comment[, detail]}."""
        self.get(name, version)
        return [e.as_dict() for e in self.store.release_history(name, version)]

    def status_of(self, name: str, version: str) -> str:
        """The registry status: proposed | active | rejected | retired (| draft)."""
        return self.get(name, version).status

    # -- rollouts ---------------------------------------------------------------------------

    def rollout(self, name: str) -> RolloutRow | None:
        """The running rollout of a ruleset, as of the last sync (at most refresh_seconds old)."""
        self._catch_up()
        return self.rollouts.get(name)

    def start_rollout(self, name: str, challenger: str, mode: str, share: str | None, sticky_by: str | None,
                      identity: str | None, comment: str | None = None) -> tuple[RolloutRow, bool]:
        self.sync(force=True)
        lv = self.get(name, challenger)
        if lv.status not in ("active", "proposed"):
            raise InvalidRollout(f"the challenger must be active or proposed; {name} {challenger} is {lv.status}",
                                 [Problem("invalid_rollout", "challenger", f"{challenger} is {lv.status}")])
        row, created = self.store.set_rollout(name, challenger, mode, share, sticky_by, identity, comment)
        self.sync(force=True)
        return row, created

    def end_rollout(self, name: str, identity: str | None, comment: str | None = None) -> RolloutRow:
        self.versions(name)  # 404 for an unknown ruleset
        try:
            row = self.store.end_rollout(name, identity, comment)
        except NotFound:
            raise NoRollout(f"{name} has no rollout running") from None
        self.sync(force=True)
        return row

    # -- reading ----------------------------------------------------------------------

    # Reads first catch up with what other instances published or retired (at most every
    # `refresh_seconds`): a version added to a ruleset this process already knows is no miss.

    def _catch_up(self) -> None:
        try:
            self.sync()
        except StorageUnavailable:
            pass  # published versions are immutable: serve what is loaded (a miss still asks the store)

    def get(self, name: str, version: str) -> LoadedVersion:
        self._catch_up()
        lv = self.registry.get(name, version)
        if lv is None:
            self.refresh_for_miss()
            lv = self.registry.get(name, version)
        if lv is None:
            raise UnknownRuleset(f"ruleset {name!r} has no version {version!r}")
        return lv

    def versions(self, name: str) -> list[LoadedVersion]:
        self._catch_up()
        versions = self.registry.versions(name)
        if not versions:
            self.refresh_for_miss()
            versions = self.registry.versions(name)
        if not versions:
            raise UnknownRuleset(f"unknown ruleset {name!r}")
        return sorted(versions, key=lambda lv: version_key(lv.version))


def _refused(exc: TransitionRefused):
    if exc.reason == "self_approval":
        return SelfApproval(str(exc))
    return ReleaseConflict(str(exc))
