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


# --------------------------------------------------------------------------- the guards' other side


def _prep(d: Path, out: str, *extra: str) -> int:
    (d / "p.yaml").write_text("dataset: {options: {num_images: 14, num_subjects: 7}}\n")
    return main(["prepare", "--params", str(d / "p.yaml"), "--out", out, *extra])


def test_rerun_replaces_own_output_and_force_replaces_others(tmp_path, monkeypatch, capsys):
    w = tmp_path / "work"  # the params file stays outside the working folder
    w.mkdir()
    monkeypatch.chdir(w)
    assert _prep(tmp_path, "prep") == 0 and _prep(tmp_path, "prep") == 0  # our own output: replaced
    (w / "thesis").mkdir()
    (w / "thesis" / "a.tex").write_text("x")
    assert _prep(tmp_path, "thesis") == 2
    assert _prep(tmp_path, "thesis", "--force") == 0
    assert (w / "thesis" / "meta.json").exists() and not (w / "thesis" / "a.tex").exists()
    capsys.readouterr()
    assert _prep(tmp_path, ".", "--force") == 2  # never the current folder, even with --force
    assert "current directory" in capsys.readouterr().err
    assert (w / "thesis" / "meta.json").exists()


def test_debug_adds_the_traceback(tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("seed: 1\nseed: 2\n")
    assert main(["check", "--params", str(p)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["check", "--debug", "--params", str(p)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("llfer: error:")


def test_stale_extraction_folder_removed(tmp_path, monkeypatch):
    """A tar source is extracted to a temporary folder; one left by a killed run goes at the next extraction."""
    import tarfile
    import tempfile

    from bad_inputs import _dead_pid
    from llfer.data.sources import open_tree

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f".llfer-extract.llfer-{_dead_pid()}.x1.tmp"
    stale.mkdir()
    (tmp_path / "a.txt").write_text("a")
    with tarfile.open(tmp_path / "s.tar", "w") as t:
        t.add(tmp_path / "a.txt", arcname="a.txt")
    with open_tree(tmp_path / "s.tar") as tree:
        assert tree.files == ["a.txt"] and not stale.exists()
    assert not list(tmp_path.glob(".llfer-extract*"))


def test_macro_f1_over_present_classes():
    import numpy as np

    from llfer.metrics.classification import classification_metrics

    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b", "c"])
    assert m["absent_classes"] == ["c"]
    assert abs(m["macro_f1"] - (2 / 3 + 0.8) / 2) < 1e-9  # F1 of a and b only
