"""The README's reliability figures are the measured ones (bench/results/hostile.json,
written by bench/hostile_report.py from the hostile suite's ledger), never typed by hand."""
from __future__ import annotations

import json
import re

from tests.server import ROOT

RESULTS = ROOT / "bench" / "results" / "hostile.json"


def test_readme_reliability_table_matches_the_measured_figures():
    figures = json.loads(RESULTS.read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Reliability"):]
    row = re.search(r"^\| inputs tried .*\n\|[-| ]+\n(\|.*\|)$", section, re.M).group(1)
    cells = [c.strip().replace(",", "") for c in row.strip("|").split("|")]
    assert cells == [str(figures[k]) for k in ("inputs_tried", "answers_4xx", "answers_5xx", "decisions_answered",
                                               "decisions_lost", "decisions_duplicated")]


def test_the_measured_run_passed_with_no_5xx_and_nothing_lost_or_duplicated():
    figures = json.loads(RESULTS.read_text(encoding="utf-8"))
    assert figures["suite_passed"] is True
    assert figures["inputs_tried"] > 200 and figures["answers_4xx"] > 150
    assert figures["answers_5xx"] == 0 and figures["no_answer"] == 0
    assert figures["decisions_lost"] == 0 and figures["decisions_duplicated"] == 0
    assert figures["decisions_not_checked"] == 0
    assert figures["decisions_checked_in_log"] >= figures["decisions_answered"] > 0
