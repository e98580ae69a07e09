"""The `credit-rules` console script against a real gunicorn server, as a user runs it: exit 0 on
success, 1 when the service refuses (the problem's title, detail and errors printed), 2 on usage
errors (a missing file is one line, never a traceback); --json is machine-readable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs.helpers import SME, sme_applications, sme_stricter_yaml
from tests.server import ALL, EVALUATE, ROOT, TOKENS, GunicornServer

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "credit-rules")
FIXTURE_RULESETS = ROOT / "tests" / "fixtures" / "rulesets"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = GunicornServer({"RULES_API_TOKENS": TOKENS, "JOB_PROCESSES": "1", "JOB_CHUNK_SIZE": "25"},
                       data_dir=str(tmp_path_factory.mktemp("cli-server")))
    s.start(timeout=300)
    yield s
    s.stop()


def run(*args, token=ALL, url=None, server=None, stdin=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_RULES_")}
    if server is not None:
        env["CREDIT_RULES_URL"] = url or server.url
    if token:
        env["CREDIT_RULES_TOKEN"] = token
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, input=stdin, timeout=600,
                          cwd=cwd or ROOT)


def no_traceback(result):
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


@pytest.fixture(scope="module")
def stricter(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "sme-1.0.1.yaml"
    path.write_text(sme_stricter_yaml(), encoding="utf-8")
    return path


def test_publish_is_idempotent_and_validate_diff_export_work(server, stricter, tmp_path):
    validated = run("validate", str(stricter), server=server)
    assert validated.returncode == 0 and "valid: sme-credit-policy 1.0.1" in validated.stdout
    first = run("--json", "publish", str(stricter), server=server)
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["name"] == SME and body["version"] == "1.0.1" and body["created"] is True
    again = run("publish", str(stricter), "--json", server=server)
    assert again.returncode == 0 and json.loads(again.stdout)["created"] is False
    diff = run("diff", SME, "1.0.0", "1.0.1", server=server)
    assert diff.returncode == 0 and "changed  parameter rating_floor_standard" in diff.stdout
    exported = tmp_path / "out.yaml"
    assert run("export", "ruleset", SME, "1.0.1", "-o", str(exported), server=server).returncode == 0
    assert exported.read_text(encoding="utf-8") == stricter.read_text(encoding="utf-8")


def test_refusals_exit_1_with_the_problem_and_its_errors(server, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken-demo\nversion: '1.0.0'\nrules: 7\n", encoding="utf-8")
    result = run("validate", str(broken), server=server)
    assert result.returncode == 1
    assert "Unprocessable Content (422)" in result.stderr and "  - " in result.stderr   # every error listed
    no_traceback(result)
    wrong_role = run("publish", str(broken), token=EVALUATE, server=server)
    assert wrong_role.returncode == 1 and "Forbidden (403)" in wrong_role.stderr
    no_token = run("verify", token=None, server=server)
    assert no_token.returncode == 1 and "Unauthorized (401)" in no_token.stderr
    unknown = run("approve", SME, "9.9.9", server=server)
    assert unknown.returncode == 1 and "(404)" in unknown.stderr
    as_json = run("--json", "diff", SME, "1.0.0", "7.0.0", server=server)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["status"] == 404


def test_usage_errors_exit_2_in_one_line(server):
    missing = run("publish", "no/such/file.yaml", server=server)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "credit-rules: cannot read no/such/file.yaml: No such file or directory"
    assert missing.stdout == ""
    for args in (("bogus",), ("impact", SME, "--from", "1.0.0", "--to", "1.0.1"), ("decide",)):
        result = run(*args, server=server)
        assert result.returncode == 2, args
        no_traceback(result)
    unreachable = run("verify", url="http://127.0.0.1:9", server=server)
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("cannot reach http://127.0.0.1:9")
    no_traceback(unreachable)


def test_decide_replay_verify_and_export_decisions(server, tmp_path):
    app = sme_applications(1, prefix="CLI")[0]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"ruleset": SME, "version": "1.0.0", **app}, ensure_ascii=False), encoding="utf-8")
    decided = run("--json", "decide", str(request), token=EVALUATE, server=server)
    assert decided.returncode == 0, decided.stderr
    decision = json.loads(decided.stdout)
    assert decision["outcome"] in ("APPROVE", "REFER", "DECLINE") and decision["application_id"] == "CLI-000000"
    human = run("decide", str(request), server=server)
    assert human.returncode == 0 and human.stdout.startswith(decision["outcome"])
    only_input = tmp_path / "input.json"
    only_input.write_text(json.dumps({"applicant": {"name": "x"}}), encoding="utf-8")
    invalid = run("decide", str(only_input), "--ruleset", SME, "--application-id", "CLI-BAD", server=server)
    assert invalid.returncode == 1 and "input.applicant" in invalid.stderr
    replayed = run("replay", decision["decision_id"], server=server)
    assert replayed.returncode == 0 and "identical: true" in replayed.stdout
    verified = run("--json", "verify", server=server)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True
    csv_path = tmp_path / "decisions.csv"
    exported = run("export", "decisions", "--application-id", "CLI-000000", "-o", str(csv_path), server=server)
    assert exported.returncode == 0
    assert decision["decision_id"] in csv_path.read_text(encoding="utf-8")


def test_local_test_runs_embedded_tests_without_a_server(tmp_path):
    ok = run("test", "rulesets/sme-size-classification", token=None)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   rulesets/sme-size-classification/2.0.0.yaml: tests" in ok.stdout
    failing = tmp_path / "toy.yaml"
    text = (FIXTURE_RULESETS / "toy" / "1.0.0.yaml").read_text(encoding="utf-8")
    failing.write_text(text.replace("outcome: DECLINE", "outcome: APPROVE", 1), encoding="utf-8")
    result = run("--json", "test", str(failing), token=None)
    assert result.returncode == 1
    assert json.loads(result.stdout)["passed"] is False
    assert run("test", "nope.yaml", token=None).returncode == 2


def test_impact_runs_a_job_with_a_progress_bar_and_writes_csv(server, stricter, tmp_path):
    assert run("publish", str(stricter), server=server).returncode == 0
    items = [{"ruleset": SME, "version": "1.0.0", "trace": "none", **a} for a in sme_applications(120, prefix="CLIJOB")]
    import requests

    assert requests.post(server.url + "/v1/decisions:batch", json={"items": items},
                         headers={"Authorization": f"Bearer {ALL}"}, timeout=300).status_code == 200
    csv_path = tmp_path / "changes.csv"
    result = run("impact", SME, "--from", "1.0.0", "--to", "1.0.1", "--logged-from", "2020-01-01T00:00:00Z",
                 "--logged-to", "2100-01-01T00:00:00Z", "--csv", str(csv_path), server=server)
    assert result.returncode == 0, result.stderr
    assert "case pairs" in result.stderr                      # the progress bar (on stderr)
    assert "outcome matrix" in result.stdout and "region_tier" in result.stdout
    rows = csv_path.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("application_id,as_of,from_outcome,to_outcome") and len(rows) > 1
    as_json = run("--json", "impact", SME, "--from", "1.0.0", "--to", "1.0.1", "--logged-from", "2020-01-01T00:00:00Z",
                  "--logged-to", "2100-01-01T00:00:00Z", "--limit", "10", server=server)
    assert as_json.returncode == 0
    job = json.loads(as_json.stdout)
    assert job["status"] == "done" and job["result"]["evaluated"] == 10
    listed = run("jobs", "--ruleset", SME, "--limit", "1", server=server)
    assert listed.returncode == 0 and listed.stdout.startswith(job["id"])


RELEASE_SCRIPT = ROOT / "docs" / "worked-release" / "release.sh"
IDENTITIES = {"LI_TOKEN": "li-wei-7c1e20", "WANG_TOKEN": "wang-fang-93ad41", "ZHAO_TOKEN": "zhao-min-5be0c2",
              "CORE_TOKEN": "core-bank-11f7aa"}


def test_the_readme_shows_the_worked_release_script_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    body = RELEASE_SCRIPT.read_text(encoding="utf-8").split("set -euo pipefail\n", 1)[1]
    assert body.strip() in readme


def test_the_worked_release_from_the_shell_runs(tmp_path):
    """README's release, as a user runs it: propose, self-approval refused, approve as a second
    identity, shadow, the report, a backtest job with its progress bar and CSV."""
    shipped = tmp_path / "shipped"
    import shutil

    shutil.copytree(ROOT / "rulesets", shipped)
    new = ROOT / "rulesets" / SME / "1.1.0.yaml"
    if new.exists():                       # the 1.1 policy ships in the repository: not deployed here yet
        (shipped / SME / "1.1.0.yaml").unlink()
    else:                                  # before it does: any new version effective later
        new = tmp_path / "1.1.0.yaml"
        new.write_text(sme_stricter_yaml("1.1.0").replace("effective_from: 2024-06-17", "effective_from: 2027-01-01", 1),
                       encoding="utf-8")
    tokens = (f"li.wei={IDENTITIES['LI_TOKEN']}:publish+evaluate+approve,wang.fang={IDENTITIES['WANG_TOKEN']}:approve,"
              f"zhao.min={IDENTITIES['ZHAO_TOKEN']}:audit,core-banking={IDENTITIES['CORE_TOKEN']}:evaluate")
    s = GunicornServer({"RULES_API_TOKENS": tokens, "RULESETS_DIR": str(shipped), "JOB_PROCESSES": "1",
                        "PUBLISH_APPROVALS": "1"}, data_dir=str(tmp_path / "data"))
    s.start(timeout=300)
    try:
        env = {**os.environ, **IDENTITIES, "CREDIT_RULES_URL": s.url, "NEW": str(new), "CSV": str(tmp_path / "changes.csv"),
               "PATH": f"{Path(CLI).parent}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", str(RELEASE_SCRIPT)], capture_output=True, text=True, env=env,
                                timeout=900, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "sme-credit-policy 1.1.0: proposed" in out
        assert "(403) [self_approval]" in result.stderr
        assert "sme-credit-policy 1.1.0: active" in out
        assert "champion -> challenger" in out and "case pairs" in result.stderr
        assert "outcome matrix" in out and (tmp_path / "changes.csv").exists()
    finally:
        s.stop()
