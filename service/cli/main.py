"""`credit-rules`: the service's HTTP API from the shell (docs/api-contract.md, "Command line").

    credit-rules --url http://rules:8080 --token $TOKEN publish rulesets/sme-credit-policy/1.1.0.yaml

--url / CREDIT_RULES_URL (default http://localhost:8080), --token / CREDIT_RULES_TOKEN.
Exit status: 0 done, 1 the service refused or the operation failed (the problem's title, detail
and every error are printed), 2 a usage error (unknown option, unreadable file: one line).
--json prints the service's JSON answer (or problem) on stdout, nothing else; progress bars go
to stderr. `test` runs a ruleset's embedded tests locally, without a server.

click for the commands and options, rich for tables and the job progress bar, requests for HTTP.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import requests
import simplejson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from service.contract import OUTCOMES

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Failed(click.ClickException):
    """A refused or failed operation: exit 1, its message already printed."""

    exit_code = 1

    def show(self, file=None) -> None:
        if self.message:
            err.print(self.message, markup=False)


class Usage(click.UsageError):
    """A usage error told in one line (exit 2)."""

    def show(self, file=None) -> None:
        click.echo(f"credit-rules: {self.message}", err=True)


# -- HTTP --------------------------------------------------------------------------------------


class Api:
    def __init__(self, url: str, token: str | None, as_json: bool):
        self.url = url.rstrip("/")
        self.token = token
        self.as_json = as_json
        self.session = requests.Session()

    def call(self, method: str, path: str, *, ok=(200,), **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if "json" in kwargs:  # exact decimals: not requests' own encoder
            kwargs["data"] = simplejson.dumps(kwargs.pop("json"), use_decimal=True, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.request(method, self.url + path, headers=headers, timeout=120, **kwargs)
        except requests.RequestException as exc:
            raise Failed(f"cannot reach {self.url}: {type(exc).__name__}: {_short(exc)}") from None
        if response.status_code not in ok:
            self.refused(response)
        return response

    def refused(self, response: requests.Response):
        try:
            body = response.json()
        except ValueError:
            body = None
        if self.as_json:
            click.echo(json.dumps(body if body is not None else {"status": response.status_code, "body": response.text},
                                  ensure_ascii=False, indent=2))
            raise Failed("")
        if not isinstance(body, dict):
            raise Failed(f"HTTP {response.status_code}: {response.text[:300]}")
        lines = [f"{body.get('title', 'Error')} ({body.get('status', response.status_code)})"
                 + (f" [{body['code']}]" if body.get("code") else "") + f": {body.get('detail', '')}"]
        for e in body.get("errors") or []:
            where = e.get("path") or "(document)"
            line = f":{e['line']}" if e.get("line") else ""
            lines.append(f"  - {where}{line}: {e.get('message')}" + (f" [{e['code']}]" if e.get("code") else ""))
        raise Failed("\n".join(lines))


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"


def read_file(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise Usage(f"cannot read {path}: {exc.strerror or exc}") from None


def read_json_file(path: str):
    """JSON with exact decimals (simplejson), so a number reaches the service with its own digits."""
    try:
        return simplejson.loads(read_file(path).decode("utf-8"), use_decimal=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Usage(f"{path} is not JSON: {exc}") from None


def _dumps(value) -> str:
    return simplejson.dumps(value, ensure_ascii=False, indent=2, use_decimal=True)


def _document_type(path: str, data: bytes) -> str:
    return "application/json" if path.endswith(".json") or data.lstrip()[:1] == b"{" else "application/yaml"


def _document_name(data: bytes, path: str) -> str:
    import yaml

    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise Usage(f"{path}: no `name` in the document; give --name")
    return doc["name"]


# -- the command group ----------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="CREDIT_RULES_URL", default="http://localhost:8080", show_default=True,
              help="The service (CREDIT_RULES_URL).")
@click.option("--token", envvar="CREDIT_RULES_TOKEN", default=None, help="Bearer token (CREDIT_RULES_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the service's JSON answer, nothing else.")
@click.pass_context
def cli(ctx, url, token, as_json):
    """Credit-decision rules service from the shell / 信贷决策规则服务命令行."""
    ctx.obj = Api(url, token, as_json)


def json_flag(f):
    """`--json` after the command too (`credit-rules publish x.yaml --json`)."""
    def callback(ctx, param, value):
        if value:
            ctx.find_object(Api).as_json = True
    return click.option("--json", "as_json_local", is_flag=True, expose_value=False, callback=callback,
                        help="Print the service's JSON answer, nothing else.")(f)


def show(api: Api, body, human) -> None:
    if api.as_json:
        click.echo(_dumps(body))
    else:
        human(body)


def _tests_line(tests: dict | None) -> str:
    if not tests:
        return ""
    cases = tests.get("cases", [])
    passed = sum(1 for c in cases if c.get("passed"))
    cov = tests.get("coverage") or {}
    return f"tests {passed}/{len(cases)} passed, rule coverage {cov.get('fired', '?')}/{cov.get('rules', '?')}"


# -- rulesets ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("file")
@json_flag
@click.pass_obj
def validate(api: Api, file):
    """Check a ruleset document on the server (nothing stored)."""
    data = read_file(file)
    body = api.call("POST", "/v1/rulesets:validate", data=data, headers={"Content-Type": _document_type(file, data)}).json()
    show(api, body, lambda b: out.print(f"valid: {b['name']} {b['version']} ({_tests_line(b.get('tests'))}, "
                                        f"{len(b.get('warnings', []))} warnings)"))


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--rulesets", "rulesets_dir", default="rulesets", show_default=True,
              help="Directory of the rulesets a document may use.")
@json_flag
@click.pass_obj
def test(api: Api, paths, rulesets_dir):
    """Run the embedded tests of ruleset documents (files or directories) locally, no server."""
    from service.rulesets.document import DocumentError, parse_document
    from service.decision_engine import Registry

    files = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files += sorted(path.rglob("*.yaml")) + sorted(path.rglob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise Usage(f"cannot read {p}: No such file or directory")
    registry = Registry()
    if Path(rulesets_dir).is_dir():
        registry.load_directory(rulesets_dir, run_tests=False)
    results, failed = [], False
    for path in files:
        try:
            doc = parse_document(path.read_bytes(), "json" if path.suffix == ".json" else "yaml")
        except DocumentError as exc:
            results.append({"file": str(path), "passed": False, "problems": [p.as_dict() for p in exc.problems]})
            failed = True
            continue
        lv, problems = registry.prepare(doc)
        errors = [p.as_dict() for p in problems if p.severity == "error"]
        report = lv.test_report.as_dict() if lv is not None and lv.test_report else None
        passed = lv is not None and not errors
        failed |= not passed
        results.append({"file": str(path), "passed": passed, "problems": errors, "tests": report})
    if api.as_json:
        click.echo(_dumps({"passed": not failed, "files": results}))
    else:
        for r in results:
            mark = "[green]ok  [/]" if r["passed"] else "[red]FAIL[/]"
            out.print(f"{mark} {r['file']}: {_tests_line(r.get('tests')) or 'not loaded'}")
            for p in r["problems"]:
                line = f":{p['line']}" if p.get("line") else ""
                out.print(f"       {p['path'] or '(document)'}{line}: {p['message']} [{p['code']}]", markup=False)
            for case in (r.get("tests") or {}).get("cases", []):
                for failure in case.get("failures", []):
                    out.print(f"       test {case['name']!r}: {failure}", markup=False)
    if failed:
        raise Failed("")


@cli.command()
@click.argument("file")
@click.option("--name", default=None, help="Ruleset name (default: the document's `name`).")
@json_flag
@click.pass_obj
def publish(api: Api, file, name):
    """Publish (propose) a ruleset version."""
    data = read_file(file)
    name = name or _document_name(data, file)
    body = api.call("POST", f"/v1/rulesets/{name}/versions", ok=(200, 201), data=data,
                    headers={"Content-Type": _document_type(file, data)}).json()
    show(api, body, lambda b: out.print(
        f"{b['name']} {b['version']}: {b['status']}" + ("" if b.get("created", True) else " (already published, identical)")
        + f"; {_tests_line(b.get('tests'))}; {len(b.get('warnings', []))} warnings"))


def _transition(api: Api, verb: str, name: str, version: str, comment: str | None):
    payload = {"comment": comment} if comment else {}
    body = api.call("POST", f"/v1/rulesets/{name}/versions/{version}:{verb}", json=payload).json()
    show(api, body, lambda b: out.print(f"{name} {version}: {b.get('status', verb + 'd')}"))


@cli.command()
@click.argument("name")
@click.argument("version")
@click.option("--comment", "-m", default=None)
@json_flag
@click.pass_obj
def approve(api: Api, name, version, comment):
    """Approve a proposed version (role approve; not its proposer)."""
    _transition(api, "approve", name, version, comment)


@cli.command()
@click.argument("name")
@click.argument("version")
@click.option("--comment", "-m", default=None)
@json_flag
@click.pass_obj
def reject(api: Api, name, version, comment):
    """Reject a proposed version (role approve)."""
    _transition(api, "reject", name, version, comment)


@cli.command()
@click.argument("name")
@click.argument("from_version", metavar="FROM")
@click.argument("to_version", metavar="TO")
@json_flag
@click.pass_obj
def diff(api: Api, name, from_version, to_version):
    """Rules and parameters added, removed and changed between two versions."""
    body = api.call("GET", f"/v1/rulesets/{name}/diff", params={"from": from_version, "to": to_version}).json()

    def human(b):
        for part in ("rules", "parameters"):
            section = b.get(part) or {}
            for kind in ("added", "removed", "changed"):
                for item in section.get(kind, []):
                    out.print(f"{kind:8} {part[:-1]:9} {item.get('id')}", markup=False)
        if not any((b.get(p) or {}).get(k) for p in ("rules", "parameters") for k in ("added", "removed", "changed")):
            out.print("no differences in rules or parameters")
    show(api, body, human)


# -- decisions ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("file")
@click.option("--ruleset", default=None, help="When FILE holds only the input.")
@click.option("--version", "version", default=None)
@click.option("--as-of", default=None)
@click.option("--application-id", default=None)
@click.option("--trace", type=click.Choice(["full", "fired", "none"]), default=None)
@click.option("--dry-run", is_flag=True, default=False, help="Evaluate a pinned proposed version, log nothing.")
@json_flag
@click.pass_obj
def decide(api: Api, file, ruleset, version, as_of, application_id, trace, dry_run):
    """Evaluate one application: FILE is a request body (or only its `input`, with --ruleset and --application-id)."""
    data = read_json_file(file)
    if not isinstance(data, dict):
        raise Usage(f"{file}: expected a JSON object")
    body = dict(data) if "input" in data else {"input": data}
    for key, value in (("ruleset", ruleset), ("version", version), ("as_of", as_of),
                       ("application_id", application_id), ("trace", trace)):
        if value is not None:
            body[key] = value
    if dry_run:
        body["dry_run"] = True
    for key in ("ruleset", "application_id"):
        if key not in body:
            raise Usage(f"give --{key.replace('_', '-')} (or put `{key}` in {file})")
    answer = api.call("POST", "/v1/decisions", json=body).json()

    def human(b):
        out.print(f"[bold]{b['outcome']}[/] {b['ruleset']['name']} {b['ruleset']['version']} "
                  f"decision {b.get('decision_id', '(dry run)')}")
        for r in b.get("reasons", []):
            out.print(f"  {r['code']} ({r['rule_id']}): {r['message_en']} / {r['message_zh']}", markup=False)
    show(api, answer, human)


@cli.command()
@click.argument("decision_id")
@json_flag
@click.pass_obj
def replay(api: Api, decision_id):
    """Re-evaluate a logged decision with its logged version; exit 1 if the answer differs."""
    body = api.call("POST", f"/v1/decisions/{decision_id}/replay").json()
    show(api, body, lambda b: out.print(f"identical: {str(b.get('identical')).lower()}"
                                        + ("" if b.get("identical") else f"\n{_dumps(b.get('differences'))}")))
    if not body.get("identical"):
        raise Failed("" if api.as_json else "the replayed answer differs from the logged one")


@cli.command()
@click.option("--expected-head", default=None, help="SEQ:HASH recorded earlier.")
@json_flag
@click.pass_obj
def verify(api: Api, expected_head):
    """Check the decision log's hash chain; exit 1 if it is broken."""
    params = {}
    if expected_head:
        seq, _, digest = expected_head.partition(":")
        params = {"expected_head_seq": seq, "expected_head_hash": digest}
    body = api.call("GET", "/v1/audit/verify", params=params).json()

    def human(b):
        head = b.get("head") or {}
        if b.get("ok"):
            out.print(f"ok: {b.get('checked')} records, head {head.get('seq')}:{head.get('hash')}")
        else:
            out.print(f"[red]BROKEN[/]: {_dumps(b.get('first_problem'))}")
    show(api, body, human)
    if not body.get("ok"):
        raise Failed("" if api.as_json else "the decision log does not verify")


# -- impact and jobs -------------------------------------------------------------------------------


def _matrix_table(title: str, matrix: dict) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("from \\ to")
    for o in OUTCOMES:
        table.add_column(o, justify="right")
    for a in OUTCOMES:
        table.add_row(a, *[str(matrix[a][b]) for b in OUTCOMES])
    return table


def _print_impact(result: dict) -> None:
    out.print(f"{result['ruleset']} {result['from']['version']} -> {result['to']['version']}: "
              f"{result['evaluated']} evaluated, {result['changed_count']} changed, {len(result['errors'])} not evaluable")
    out.print(_matrix_table("outcome matrix", result["matrix"]))
    for breakdown in ("by_segment", "by_region_tier", "by_size_class"):
        for value, matrix in (result.get(breakdown) or {}).items():
            moved = sum(matrix[a][b] for a in OUTCOMES for b in OUTCOMES if a != b)
            total = sum(matrix[a][b] for a in OUTCOMES for b in OUTCOMES)
            out.print(f"  {breakdown[3:]:12} {value:24} {total:7} cases, {moved:6} change outcome", markup=False)


@cli.command()
@click.argument("name")
@click.option("--from", "from_version", required=True)
@click.option("--to", "to_version", required=True)
@click.option("--logged-from", default=None, help="Backtest over the decisions logged from this instant (ISO 8601 with zone)…")
@click.option("--logged-to", default=None, help="… to this one (exclusive).")
@click.option("--limit", type=int, default=None)
@click.option("--applications", "applications_file", default=None, help="JSON file: a list of {application_id, as_of, input}.")
@click.option("--as-of", default=None)
@click.option("--csv", "csv_path", default=None, help="Write the changed cases as CSV here.")
@click.option("--no-wait", is_flag=True, help="Print the job and return; do not wait for it.")
@json_flag
@click.pass_obj
def impact(api: Api, name, from_version, to_version, logged_from, logged_to, limit, applications_file, as_of,
           csv_path, no_wait):
    """Impact of a new version: inline for given applications, else a job with a progress bar."""
    body: dict = {"from": from_version, "to": to_version}
    if applications_file:
        body["applications"] = read_json_file(applications_file)
    elif logged_from and logged_to:
        body.update(logged_from=logged_from, logged_to=logged_to)
    else:
        raise Usage("give --applications FILE, or --logged-from and --logged-to")
    if limit is not None:
        body["limit"] = limit
    if as_of:
        body["as_of"] = as_of
    response = api.call("POST", f"/v1/rulesets/{name}/impact", ok=(200, 202), json=body)
    if response.status_code == 200:
        result = response.json()
        if csv_path:
            _write_changes_csv(csv_path, result["changed"])
        show(api, result, _print_impact)
        return
    job = response.json()
    if no_wait:
        show(api, job, lambda j: out.print(f"job {j['id']}: {j['status']} ({response.headers.get('Location')})"))
        return
    job = _follow(api, job)
    if job["status"] != "done":
        if api.as_json:
            click.echo(_dumps(job))
        raise Failed("" if api.as_json else f"job {job['id']} {job['status']}" + (f": {job['error']}" if job.get("error") else ""))
    if csv_path:
        text = api.call("GET", f"/v1/jobs/{job['id']}/changes.csv").content
        Path(csv_path).write_bytes(text)
    show(api, job, lambda j: (out.print(f"job {j['id']}: done"), _print_impact(j["result"]),
                              csv_path and out.print(f"changed cases written to {csv_path}")))


def _follow(api: Api, job: dict) -> dict:
    """Poll a job with a progress bar (on stderr) until it finishes; Ctrl-C cancels it."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("case pairs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False, disable=api.as_json and not err.is_terminal) as progress:
        task = progress.add_task(f"job {job['id'][:13]}… {job['status']}", total=None)
        try:
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = api.call("GET", f"/v1/jobs/{job['id']}").json()
                progress.update(task, completed=job["progress"]["done"], total=job["progress"]["total"],
                                description=f"job {job['id'][:13]}… {job['status']}")
        except KeyboardInterrupt:
            api.call("POST", f"/v1/jobs/{job['id']}:cancel", ok=(200, 409))
            raise Failed(f"interrupted: job {job['id']} cancelled") from None
    return job


def _write_changes_csv(path: str, changed: list) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(("application_id", "as_of", "from_outcome", "to_outcome", "from_reasons", "to_reasons",
                         "rules_responsible", "from_results", "to_results"))
        for c in changed:
            app_id = c["application_id"]
            app_id = "'" + app_id if app_id[:1] in ("=", "+", "-", "@", "\t", "\r") else app_id  # as the service's CSV
            writer.writerow([app_id, c["as_of"], c["from"]["outcome"], c["to"]["outcome"],
                             " ".join(c["from"]["reasons"]), " ".join(c["to"]["reasons"]), " ".join(c["rules_responsible"]),
                             json.dumps(c["from"]["results"], ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                             json.dumps(c["to"]["results"], ensure_ascii=False, sort_keys=True, separators=(",", ":"))])


@cli.command()
@click.argument("job_id")
@click.option("--cancel", is_flag=True, help="Cancel it.")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar until it finishes.")
@json_flag
@click.pass_obj
def job(api: Api, job_id, cancel, wait):
    """Show (or cancel, or follow) a job."""
    if cancel:
        body = api.call("POST", f"/v1/jobs/{job_id}:cancel").json()
    else:
        body = api.call("GET", f"/v1/jobs/{job_id}").json()
        if wait:
            body = _follow(api, body)
    show(api, body, lambda j: out.print(f"job {j['id']}: {j['status']} {j['progress']['done']}/{j['progress']['total']}"))


@cli.command()
@click.option("--ruleset", default=None)
@click.option("--limit", type=int, default=20, show_default=True)
@json_flag
@click.pass_obj
def jobs(api: Api, ruleset, limit):
    """The newest jobs."""
    params = {"limit": limit, **({"ruleset": ruleset} if ruleset else {})}
    body = api.call("GET", "/v1/jobs", params=params).json()

    def human(b):
        for j in b["jobs"]:
            out.print(f"{j['id']}  {j['status']:9} {j['ruleset']} {j['from']} -> {j['to']}  "
                      f"{j['progress']['done']}/{j['progress']['total']}  {j['created_by']}", markup=False)
    show(api, body, human)


# -- rollouts ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("name")
@click.option("--challenger", default=None, help="Start or change a rollout with this version.")
@click.option("--mode", type=click.Choice(["shadow", "split"]), default=None)
@click.option("--share", type=float, default=None, help="split: the challenger's share, 0.0-1.0.")
@click.option("--sticky-by", default=None, help="split: the input field that keeps an applicant on one arm.")
@click.option("--end", is_flag=True, help="End the rollout.")
@click.option("--report", is_flag=True, help="The rollout report (matrix over shadow pairs, changed cases).")
@click.option("--from", "time_from", default=None, help="--report: from this instant.")
@click.option("--to", "time_to", default=None, help="--report: to this instant.")
@json_flag
@click.pass_obj
def rollout(api: Api, name, challenger, mode, share, sticky_by, end, report, time_from, time_to):
    """Show, set (--challenger --mode), end (--end) a rollout, or read its --report."""
    path = f"/v1/rulesets/{name}/rollout"
    if sum(bool(x) for x in (challenger, end, report)) > 1:
        raise Usage("give one of --challenger, --end, --report")
    if report:
        params = {k: v for k, v in (("from", time_from), ("to", time_to)) if v}
        body = api.call("GET", path + "/report", params=params).json()

        def human(b):
            out.print(f"arms: {b.get('arms')}", markup=False)
            out.print(_matrix_table("champion -> challenger (shadow pairs)", b["matrix"]))
            changed = b.get("changed", [])
            out.print(f"{len(changed)} cases answered differently")
            for c in changed[:20]:
                a, z = c.get("champion") or c.get("from") or {}, c.get("challenger") or c.get("to") or {}
                out.print(f"  {c.get('application_id') or c.get('decision_id')}: {a.get('outcome')} -> {z.get('outcome')}  "
                          f"{' '.join(c.get('rules_responsible', []))}", markup=False)
        show(api, body, human)
        return
    if end:
        response = api.call("DELETE", path, ok=(200, 204))
        body = response.json() if response.content else {"ended": True}
        show(api, body, lambda b: out.print(f"{name}: rollout ended"))
        return
    if challenger:
        if mode is None:
            raise Usage("--challenger needs --mode shadow or --mode split")
        payload = {"challenger": challenger, "mode": mode}
        if share is not None:
            payload["share"] = share
        if sticky_by:
            payload["sticky_by"] = sticky_by
        body = api.call("PUT", path, ok=(200, 201), json=payload).json()
    else:
        body = api.call("GET", path).json()
    show(api, body, lambda b: out.print(_dumps(b), markup=False))


# -- export ------------------------------------------------------------------------------------------


@cli.group()
def export():
    """Export logged decisions (CSV) or a ruleset version (its document)."""


@export.command("decisions")
@click.option("--ruleset", default=None)
@click.option("--version", "version", default=None)
@click.option("--application-id", default=None)
@click.option("--outcome", type=click.Choice(OUTCOMES), default=None)
@click.option("--rule-id", default=None)
@click.option("--from", "time_from", default=None)
@click.option("--to", "time_to", default=None)
@click.option("-o", "--output", default="-", help="File (default stdout).")
@click.pass_obj
def export_decisions(api: Api, ruleset, version, application_id, outcome, rule_id, time_from, time_to, output):
    """The decision log (role audit) as CSV."""
    params = {k: v for k, v in (("ruleset", ruleset), ("version", version), ("application_id", application_id),
                                ("outcome", outcome), ("rule_id", rule_id), ("from", time_from), ("to", time_to)) if v}
    params["format"] = "csv"
    _write(output, api.call("GET", "/v1/decisions", params=params).content)


@export.command("ruleset")
@click.argument("name")
@click.argument("version")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("-o", "--output", default="-", help="File (default stdout).")
@click.pass_obj
def export_ruleset(api: Api, name, version, fmt, output):
    """A published version's document."""
    accept = "application/yaml" if fmt == "yaml" else "application/json"
    response = api.call("GET", f"/v1/rulesets/{name}/versions/{version}", headers={"Accept": accept})
    data = response.content if fmt == "yaml" else _dumps(response.json()["document"]).encode("utf-8") + b"\n"
    _write(output, data)


def _write(output: str, data: bytes) -> None:
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise Usage(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(f"written to {output}", markup=False)


def main() -> None:
    try:
        cli.main(prog_name="credit-rules", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("credit-rules: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
