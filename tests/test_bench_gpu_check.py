"""bench/gpu_check.sh's plumbing, with a stand-in `python3` that records its arguments: a GPU session
is too short to find out there that a section name, a time limit or a log path is wrong."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(tmp_path, *sections, deadline=None, python_exit=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python3"
    fake.write_text(f'#!/bin/sh\necho "python3 $*"\nexit {python_exit}\n')
    fake.chmod(0o755)
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"), "SHAPES": "tiny"}
    if deadline is not None:
        env["DEADLINE"] = str(deadline)
    return subprocess.run(["bash", "bench/gpu_check.sh", *sections], cwd=ROOT, env=env, capture_output=True, text=True)


def test_each_section_logs_under_out_and_a_failure_does_not_stop_the_next(tmp_path):
    result = _check(tmp_path, "train_step", "decode", python_exit=3)
    assert "== train_step: exit 3" in result.stdout and "== decode: exit 3" in result.stdout
    log = (tmp_path / "out" / "decode.log").read_text()
    assert "bench/decode.py --shapes tiny --batches 1" in log
    assert "bench/train_step.py --shapes tiny" in (tmp_path / "out" / "train_step.log").read_text()


def test_a_misspelt_section_stops_the_run_before_any_section_starts(tmp_path):
    result = _check(tmp_path, "qlora", "decode", "trainstep")
    assert result.returncode == 2 and "unknown section trainstep" in result.stderr
    assert "== qlora" not in result.stdout and not (tmp_path / "out" / "qlora.log").exists()


def test_sections_are_cut_to_the_deadline_and_skipped_past_it(tmp_path):
    result = _check(tmp_path, "decode", deadline=100)
    assert re.search(r"== decode \(at most (100|99) s\)", result.stdout)  # its own limit is 270 s
    result = _check(tmp_path, "decode", deadline=10)
    assert re.search(r"== decode: skipped, \d+ s left before the 10 s deadline", result.stdout)
