"""No state leaks between evaluations, and the same input always gives the same bytes."""
from __future__ import annotations

import datetime as dt
import gc
import subprocess
import sys

import psutil
import pytest

from service import canonical
from service.engine import durable
from tests.engine.samples import sample_inputs

AS_OF = dt.date(2026, 1, 15)


def _prepared(shipped):
    lv = shipped.resolve("sme-credit-policy", None, AS_OF)
    inputs = [lv.validator.load(raw) for raw in sample_inputs()]
    return lv, inputs


@pytest.mark.slow
def test_100k_alternating_evaluations_equal_fresh_ones_and_memory_stays_flat(shipped):
    lv, inputs = _prepared(shipped)
    # What each input gives when evaluated alone, in a fresh registry and process state.
    expected = [canonical.dumps(shipped.evaluate_loaded(lv, d, as_of=AS_OF).summary("full")) for d in inputs]
    assert len(set(expected)) == len(expected), "the sample inputs must be very different"
    process = psutil.Process()
    rss_after_warmup = None
    mismatches = 0
    for n in range(100_000):
        k = (n * 7) % len(inputs)  # alternate, never the same input twice in a row
        got = canonical.dumps(shipped.evaluate_loaded(lv, inputs[k], as_of=AS_OF).summary("full"))
        mismatches += got != expected[k]
        if n == 5_000:
            gc.collect()
            rss_after_warmup = process.memory_info().rss
    gc.collect()
    growth = (process.memory_info().rss - rss_after_warmup) / rss_after_warmup
    assert mismatches == 0
    assert durable.live_sessions() == 0
    assert all(v.compiled.engine.is_empty() for v in shipped.all())  # reused sessions left nothing
    assert growth < 0.10, f"resident memory grew {growth:.1%} after warm-up"


def test_same_input_same_bytes(shipped):
    lv, inputs = _prepared(shipped)
    for data in inputs:
        first = canonical.dumps(shipped.evaluate_loaded(lv, data, as_of=AS_OF).summary("full"))
        second = canonical.dumps(shipped.evaluate_loaded(lv, data, as_of=AS_OF).summary("full"))
        assert first == second


def test_same_input_same_bytes_in_another_process(shipped):
    """Nothing (hash seeds, dict order, load order) makes a fresh process answer differently."""
    lv, inputs = _prepared(shipped)
    here = [canonical.dumps(shipped.evaluate_loaded(lv, d, as_of=AS_OF).summary("full")) for d in inputs]
    script = (
        "import datetime as dt, sys\n"
        "from service import canonical\n"
        "from service.decision_engine.registry import Registry\n"
        "from tests.engine.samples import sample_inputs\n"
        "r = Registry(); r.load_directory('rulesets')\n"
        "lv = r.resolve('sme-credit-policy', None, dt.date(2026, 1, 15))\n"
        "for raw in sample_inputs():\n"
        "    print(canonical.dumps(r.evaluate_loaded(lv, lv.validator.load(raw), as_of=dt.date(2026, 1, 15)).summary('full')))\n"
    )
    from tests.conftest import ROOT
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == here
