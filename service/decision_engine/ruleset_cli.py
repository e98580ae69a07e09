"""Command line for ruleset authors.

    python -m service.rulesets test [DIR]      run every ruleset's embedded tests, with rule coverage
    python -m service.rulesets check FILE...    validate documents against the rulesets in DIR (default rulesets/)
    python -m service.rulesets clauses [DIR]    the policy clause -> rule table, as Markdown

Exit status 1 when anything fails, 2 on a usage error (such as a file that does not exist).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.errors import Problem
from service.rulesets.document import DocumentError, parse_document
from service.decision_engine.registry import Registry, read_document
from service.rulesets.testing import run_tests


def _print_problems(where: str, problems: list[Problem]) -> None:
    for p in problems:
        line = f":{p.line}" if p.line else ""
        print(f"  {p.severity.upper():7} {where}{line} {p.path or '(document)'}: {p.message} [{p.code}]")


def cmd_test(directory: Path) -> int:
    registry = Registry()
    failures = registry.load_directory(directory, run_tests=False)
    status = 0
    for rel, problems in sorted(failures.items()):
        print(f"FAIL  {rel}: not loaded")
        _print_problems(rel, problems)
        status = 1
    for lv in registry.all():
        report = run_tests(lv, registry)
        summary = report.as_dict()
        cov = summary["coverage"]
        mark = "ok  " if report.passed else "FAIL"
        print(f"{mark}  {lv.ruleset.key}: {sum(c.passed for c in report.cases)}/{len(report.cases)} tests passed, "
              f"rule coverage {cov['fired']}/{cov['rules']} ({cov['ratio']:.0%})")
        for case in report.cases:
            for failure in case.failures:
                print(f"        test {case.name!r}: {failure}")
        if report.uncovered:
            print(f"        rules no test fires: {', '.join(report.uncovered)}")
        if not report.passed:
            status = 1
    return status


def cmd_check(files: list[Path], directory: Path) -> int:
    """Every check publishing does, on each file; against only the rulesets it uses (loaded
    from `directory` as already accepted: they are checked by their own `check`/`test`)."""
    registry = Registry()
    status = 0
    for path in files:
        try:
            doc = parse_document(path.read_bytes(), "json" if path.suffix == ".json" else "yaml")
        except DocumentError as exc:
            print(f"FAIL  {path}")
            _print_problems(str(path), exc.problems)
            status = 1
            continue
        needed = _used_closure(doc.data, directory) - set(registry.names())
        if needed:
            registry.load_directory(directory, run_tests=False, checks=False, names=needed)
        lv, problems = registry.prepare(doc)
        print(f"{'ok  ' if lv else 'FAIL'}  {path}" + (f" ({lv.ruleset.key}, sha256 {lv.ruleset.sha256[:12]})" if lv else ""))
        _print_problems(str(path), problems)
        status |= lv is None
    return status


def _uses_of(data) -> set[str]:
    uses = data.get("uses") if isinstance(data, dict) else None
    if not isinstance(uses, dict):
        return set()
    return {u["ruleset"] for u in uses.values() if isinstance(u, dict) and isinstance(u.get("ruleset"), str)}


def _used_closure(data, directory: Path) -> set[str]:
    """The rulesets a document uses, and those they use, by name."""
    out: set[str] = set()
    todo = _uses_of(data)
    while todo:
        name = todo.pop()
        out.add(name)
        for path in sorted((directory / name).glob("*")) if (directory / name).is_dir() else ():
            if path.suffix in (".yaml", ".yml", ".json"):
                try:
                    used = read_document(path.read_bytes(), "json" if path.suffix == ".json" else "yaml").data
                except DocumentError:
                    continue  # reported when that ruleset is loaded
                todo |= _uses_of(used) - out
    return out


def cmd_clauses(directory: Path) -> int:
    registry = Registry()
    registry.load_directory(directory, run_tests=False)
    print("| ruleset | version | policy clause | rule id | stage | rule |")
    print("|---|---|---|---|---|---|")
    for lv in registry.all():
        for rule in lv.ruleset.rules:
            print(f"| {lv.name} | {lv.version} | {rule.source or '—'} | `{rule.id}` | {rule.stage} | {rule.title_zh} / {rule.title_en} |")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.rulesets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("test", help="run embedded tests with coverage")
    t.add_argument("directory", nargs="?", default="rulesets", type=Path)
    c = sub.add_parser("check", help="validate documents")
    c.add_argument("files", nargs="+", type=Path)
    c.add_argument("--rulesets", default="rulesets", type=Path, help="rulesets the documents may use")
    k = sub.add_parser("clauses", help="policy clause -> rule id table")
    k.add_argument("directory", nargs="?", default="rulesets", type=Path)
    args = parser.parse_args(argv)
    # A file or directory that is not there is a usage error: one line, exit 2 (like argparse).
    missing = [("file", p) for p in (args.files if args.command == "check" else []) if not p.is_file()]
    missing += [("directory", d) for d in ([args.rulesets] if args.command == "check" else [args.directory])
                if not d.is_dir()]
    if missing:
        kind, path = missing[0]
        print(f"{parser.prog}: error: no such {kind}: {path}", file=sys.stderr)
        return 2
    try:
        if args.command == "test":
            return cmd_test(args.directory)
        if args.command == "check":
            return cmd_check(args.files, args.rulesets)
        return cmd_clauses(args.directory)
    except OSError as exc:  # unreadable, or gone while we read it
        print(f"{parser.prog}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
