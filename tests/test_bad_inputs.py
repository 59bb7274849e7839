"""Issue 13's bad inputs (tests/bad_inputs.py), each through the CLI: a one-line error that names the culprit
(exit status 2; 143 for SIGTERM) or a correct result, and nothing outside the command's outputs changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bad_inputs import CASES, Case, diff, snapshot
from conftest import REPO
from llfer.cli import main


def run_subprocess(argv: list[str], cwd: Path, terminate_when: str | None) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), TQDM_DISABLE="1")
    proc = subprocess.Popen([sys.executable, "-m", "llfer.cli", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if terminate_when:
        t0 = time.monotonic()
        while proc.poll() is None and not list(cwd.glob(terminate_when)) and time.monotonic() - t0 < 120:
            time.sleep(0.05)
        if proc.poll() is None:
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    d = tmp_path / "case"
    d.mkdir()
    run = case.setup(d)
    existed = {o for o in run.outputs if (d / o).exists()}
    before = snapshot(d, run.outputs)
    if run.terminate_when:
        status, err = run_subprocess(run.argv, d, run.terminate_when)
    else:
        monkeypatch.chdir(d)
        capsys.readouterr()
        status = main(run.argv)
        err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    if run.culprit is not None:
        if run.terminate_when:
            assert status == 143, err
            assert err.strip().splitlines()[-1] == "llfer: terminated"
        else:
            errors = [ln for ln in err.splitlines() if ln.startswith("llfer: error:")]
            assert status == 2 and len(errors) == 1, err
            assert run.culprit in errors[0], errors[0]
        for o in run.outputs:  # a refused or interrupted command creates none of its outputs
            assert (d / o).exists() == (o in existed), o
    else:
        assert status == 0, err
    if run.check is not None and (status == 0 or run.always_check):
        assert run.check(d) is None, run.check(d)
    assert diff(before, snapshot(d, run.outputs)) == []
