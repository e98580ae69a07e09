"""The in-memory registry of loaded ruleset versions, and the load pipeline.

It sits above rulesets/, engine/ and schemas/ and joins them: a loaded version is the
parsed ruleset, its compiled durable_rules network and its input validator.

    text -> parse_document -> parse_ruleset -> static checks -> compile -> embedded tests

A version enters the registry only when every step passes. What a step produced is
shared within the process, keyed by content (sha256): a document text is parsed once, and
a version with the same sha256 and the same used versions is compiled once, however many
registries load it (the gunicorn master compiles the shipped rulesets before forking, see
`warm`). A version the store already accepted is loaded without its static checks and
embedded tests (`checks=False`): they passed when it was published, on this same code path.

Evaluation picks a version by
pin or by `as_of` (the active version whose effective window contains the date; the
latest effective_from wins, then the highest version), evaluates the rulesets it
`uses` for the same `as_of`, then itself.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from service import canonical
from service.engine.compiler import CompiledRuleset, CompileError, compile_ruleset
from service.engine.evaluator import Evaluation, Evaluator
from service.errors import (
    InvalidRuleset, Problem, RulesetUnavailable, UnknownRuleset, UnresolvableDependency, VersionNotActive,
)
from service.rulesets.analysis import conflicting_rules, plan_waves, static_check, unreachable_rules
from service.rulesets.document import DocumentError, SourceDocument, parse_document
from service.rulesets.model import Ruleset, Use
from service.rulesets.testing import TestReport
from service.rulesets.testing import run_tests as run_embedded_tests
from service.identifiers import SEMVER_RE
from service.rulesets.parse import ProblemLocator, UsedRuleset, parse_ruleset
from service.schemas.ruleset_input import InputValidator, default_sub_input


def version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


@dataclass
class LoadedVersion:
    ruleset: Ruleset
    compiled: CompiledRuleset
    evaluator: Evaluator
    validator: InputValidator
    source_text: str
    source_format: str
    retired: bool = False
    # registry status from four-eyes publishing (proposed | active | rejected); None when the
    # version was not published for approval (shipped, PUBLISH_APPROVALS=0): its document's status holds
    release_status: str | None = None
    warnings: list[Problem] = field(default_factory=list)
    test_report: TestReport | None = None  # from the embedded tests run when it was prepared
    checked: bool = True  # static checks ran (False: loaded as already accepted by the store)
    cache_key: tuple | None = field(default=None, repr=False)  # (sha256, used versions' sha256s)

    @property
    def name(self) -> str:
        return self.ruleset.name

    @property
    def ruleset_canonical_json(self) -> str:
        """The canonical JSON form whose sha256 identifies this version."""
        return canonical.dumps(self.ruleset.data)

    @property
    def version(self) -> str:
        return self.ruleset.version

    @property
    def status(self) -> str:
        """The registry status: retired | proposed | active | rejected (| draft, unapproved doc)."""
        if self.retired or self.ruleset.status == "retired":
            return "retired"
        return self.release_status or self.ruleset.status


# Process-wide, content-keyed: shared by every registry of the process and, when filled in the
# gunicorn master (`warm`), by every forked worker. Only loaded (accepted or shipped)
# documents and versions are kept, never those merely validated.
_DOCUMENTS: dict[tuple[str, str], SourceDocument] = {}
_PREPARED: dict[tuple, LoadedVersion] = {}
_CACHE_LOCK = threading.Lock()


def read_document(text: str | bytes, source_format: str | None) -> SourceDocument:
    """parse_document, once per distinct text (a parsed document is never modified)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    key = (hashlib.sha256(raw).hexdigest(), source_format or "")
    doc = _DOCUMENTS.get(key)
    if doc is None:
        doc = parse_document(text, source_format)
        with _CACHE_LOCK:
            doc = _DOCUMENTS.setdefault(key, doc)
    return doc


def warm(directory: str | Path, *, checks: bool = True) -> int:
    """Parse, check, compile and test every version under `directory` into the process caches
    (no store); returns how many loaded. Run before fork, the workers start from them: a
    first start on an empty store then publishes the shipped versions without checking
    them again in every worker."""
    registry = Registry()
    registry.load_directory(directory, run_tests=checks, checks=checks)
    return len(registry.all())


class Registry:
    def __init__(self):
        self._versions: dict[str, dict[str, LoadedVersion]] = {}
        self._lock = threading.RLock()

    # -- contents ---------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[LoadedVersion]:
        return sorted(self._versions.get(name, {}).values(), key=lambda lv: version_key(lv.version))

    def get(self, name: str, version: str) -> LoadedVersion | None:
        return self._versions.get(name, {}).get(version)

    def all(self) -> list[LoadedVersion]:
        return [lv for name in self.names() for lv in self.versions(name)]

    def add(self, lv: LoadedVersion) -> None:
        with self._lock:
            self._versions.setdefault(lv.name, {})[lv.version] = lv
        if lv.cache_key is not None:
            with _CACHE_LOCK:
                known = _PREPARED.get(lv.cache_key)
                if known is None or (lv.checked and not known.checked):
                    _PREPARED[lv.cache_key] = lv

    def mark_retired(self, name: str, version: str) -> None:
        lv = self.get(name, version)
        if lv is not None:
            lv.retired = True

    def used_map(self, names) -> dict[str, UsedRuleset]:
        return {n: UsedRuleset(n, [lv.ruleset for lv in self.versions(n)]) for n in names if n in self._versions}

    # -- the load pipeline ------------------------------------------------------

    def prepare(self, doc: SourceDocument, *, run_tests: bool = True,
                checks: bool = True) -> tuple[LoadedVersion | None, list[Problem]]:
        """Parse, check, compile and test a document against this registry. Nothing is added.

        `checks=False` (a version the store already accepted) skips the reachability and
        conflict analysis; the wave plan, which compiling needs, is always made."""
        uses = doc.data.get("uses") if isinstance(doc.data, dict) else None
        used_names = [u.get("ruleset") for u in uses.values() if isinstance(u, dict)] if isinstance(uses, dict) else []
        used = self.used_map(sorted({n for n in used_names if isinstance(n, str)}))
        key = (doc.sha256, tuple((n, tuple(r.sha256 for r in u.versions)) for n, u in used.items()))
        known = _PREPARED.get(key)
        if known is not None and not doc.problems and (known.checked or not checks):
            # Its own retired flag, and the text it was loaded from (the same content may be YAML or JSON).
            lv = replace(known, retired=False, source_text=doc.source_text, source_format=doc.source_format)
            problems = list(lv.warnings)
            if run_tests and lv.test_report is None:
                report = lv.test_report = run_embedded_tests(lv, self)
                problems += report.problems()
                lv.warnings = [p for p in problems if p.severity != "error"]
                if any(p.severity == "error" for p in problems):
                    return None, problems
            return lv, problems
        ruleset, problems = parse_ruleset(doc, used)
        problems = doc.problems + problems
        if ruleset is None:
            return None, problems
        locate = ProblemLocator(doc).located
        if any(p.severity == "error" for p in problems):
            # Not loadable, but list what the static checks see in the rules that parsed too.
            return None, problems + locate(unreachable_rules(ruleset) + conflicting_rules(ruleset))
        plan, static_problems = static_check(ruleset) if checks else plan_waves(ruleset)
        problems = problems + locate(static_problems)
        if plan is None or any(p.severity == "error" for p in problems):
            return None, problems
        try:
            compiled = compile_ruleset(ruleset, plan)
        except CompileError as exc:
            return None, problems + [Problem("engine_limit", "rules", str(exc))]
        lv = LoadedVersion(ruleset=ruleset, compiled=compiled, evaluator=Evaluator(compiled),
                           validator=InputValidator(ruleset), source_text=doc.source_text,
                           source_format=doc.source_format, checked=checks, cache_key=key)
        if run_tests:
            report = lv.test_report = run_embedded_tests(lv, self)
            problems = problems + report.problems()
        lv.warnings = [p for p in problems if p.severity != "error"]
        if any(p.severity == "error" for p in problems):
            return None, problems
        return lv, problems

    def load_text(self, text: str | bytes, source_format: str | None = None, *, run_tests: bool = True) -> LoadedVersion:
        """Prepare and add; raises InvalidRuleset with every problem."""
        try:
            doc = parse_document(text, source_format)
        except DocumentError as exc:
            raise InvalidRuleset("the document cannot be read", exc.problems) from None
        lv, problems = self.prepare(doc, run_tests=run_tests)
        if lv is None:
            raise InvalidRuleset("the ruleset is invalid", problems)
        self.add(lv)
        return lv

    def load_directory(self, directory: str | Path, *, run_tests: bool = True, checks: bool = True,
                       names: set[str] | None = None) -> dict[str, list[Problem]]:
        """Load every `<name>/<version>.yaml|json` under a directory (only those `names`, when
        given), used rulesets first. Returns problems per file (empty when all loaded)."""
        directory = Path(directory)
        files = sorted(p for p in directory.glob("*/*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
                       and (names is None or p.parent.name in names))
        pending = {}
        failures: dict[str, list[Problem]] = {}
        for path in files:
            rel = str(path.relative_to(directory))
            try:
                doc = read_document(path.read_bytes(), "json" if path.suffix == ".json" else "yaml")
            except DocumentError as exc:
                failures[rel] = exc.problems
                continue
            data = doc.data if isinstance(doc.data, dict) else {}
            if data.get("name") != path.parent.name or data.get("version") != path.stem:
                failures[rel] = [Problem("file_name", "", f"file must be <name>/<version>: found name {data.get('name')!r}, version {data.get('version')!r}")]
                continue
            pending[rel] = doc
        # Used rulesets first: repeat until nothing more loads.
        while pending:
            progressed = False
            for rel, doc in list(pending.items()):
                uses = doc.data.get("uses") or {}
                needs = {u.get("ruleset") for u in uses.values() if isinstance(u, dict)} if isinstance(uses, dict) else set()
                if any(n in {d.data.get("name") for d in pending.values()} and n != doc.data.get("name") for n in needs):
                    continue
                lv, problems = self.prepare(doc, run_tests=run_tests, checks=checks)
                del pending[rel]
                progressed = True
                if lv is None:
                    failures[rel] = problems
                else:
                    self.add(lv)
            if not progressed:
                for rel, doc in pending.items():
                    failures[rel] = [Problem("uses_cycle", "uses", "rulesets use each other in a cycle")]
                break
        return failures

    # -- choosing and evaluating ------------------------------------------------

    def resolve(self, name: str, version: str | None, as_of: dt.date, *, allow_retired: bool = False,
                allow_proposed: bool = False) -> LoadedVersion:
        versions = self._versions.get(name)
        if not versions:
            raise UnknownRuleset(f"unknown ruleset {name!r}")
        if version is not None:
            if not isinstance(version, str) or not SEMVER_RE.match(version) or version not in versions:
                raise UnknownRuleset(f"ruleset {name!r} has no version {version!r}")
            lv = versions[version]
            if (lv.retired or lv.ruleset.status == "retired") and not allow_retired:
                raise RulesetUnavailable(f"{name} {version} is retired and cannot be used for new decisions")
            if lv.release_status == "rejected" or (lv.release_status == "proposed" and not allow_proposed):
                raise VersionNotActive(f"{name} {version} is {lv.release_status}, not active"
                                       + ("; evaluate it with \"dry_run\": true" if lv.release_status == "proposed" else ""))
            return lv
        # Never a proposed or rejected version: only approval makes a version choosable by date.
        candidates = [lv for lv in versions.values()
                      if lv.status == "active" and lv.ruleset.effective_on(as_of)]
        if not candidates:
            raise UnknownRuleset(f"ruleset {name!r} has no active version effective on {as_of.isoformat()}")
        return max(candidates, key=lambda lv: (lv.ruleset.effective_from, version_key(lv.version)))

    def evaluate(self, name: str, raw_input, *, as_of: dt.date, version: str | None = None,
                 pins: dict[str, str] | None = None, allow_retired: bool = False) -> tuple[LoadedVersion, Evaluation]:
        lv = self.resolve(name, version, as_of, allow_retired=allow_retired)
        data = lv.validator.load(raw_input)
        return lv, self.evaluate_loaded(lv, data, as_of=as_of, pins=pins)

    def evaluate_loaded(self, lv: LoadedVersion, data: dict, *, as_of: dt.date,
                        pins: dict[str, str] | None = None) -> Evaluation:
        """Evaluate already-validated input, its `uses` first (each in its own session)."""
        used: dict[str, Evaluation] = {}
        for use in lv.ruleset.uses:
            pinned = (pins or {}).get(use.ruleset)
            use_as_of = use.as_of or as_of
            try:
                ulv = self.resolve(use.ruleset, pinned, use_as_of, allow_retired=pinned is not None)
            except (UnknownRuleset, RulesetUnavailable) as exc:
                raise UnresolvableDependency(f"{lv.ruleset.key} uses {use.ruleset}: {exc.message}") from None
            used[use.alias] = ulv.evaluator.evaluate(sub_input(use, data, ulv.ruleset), as_of=use_as_of)
        return lv.evaluator.evaluate(data, as_of=as_of, uses=used)


def sub_input(use: Use, data: dict, used: Ruleset) -> dict:
    """The input of a used ruleset, built from this one's validated input.

    Types were proven assignable when the ruleset was parsed, so there is no second
    validation; unmapped optional fields take their defaults."""
    sub = {}
    for target, source in use.input:
        if source.kind == "field":
            value = data
            for part in source.name.split("."):
                value = None if value is None else value.get(part)
            sub[target] = value
        else:
            sub[target] = source.value
    return default_sub_input(used.input, sub)
