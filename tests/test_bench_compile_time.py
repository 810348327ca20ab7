"""CPU smoke of bench/compile_time.py: three variants, each timed in a fresh process, same losses."""

import importlib.util
import re
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("compile_time", Path(__file__).parent.parent / "bench" / "compile_time.py")
compile_time = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compile_time)
ROW = re.compile(r"^(eager|whole decoder|regions)\s+1\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.e+-]+)$", re.M)


@pytest.mark.slow
def test_bench_times_eager_whole_and_regional_compiling_with_equal_losses(capsys):
    compile_time.main(["--layers", "1", "--steps", "1", "--seq", "96", "--batch", "1"])
    out = capsys.readouterr().out
    rows = {name: [float(x) for x in values] for name, *values in ROW.findall(out)}
    assert rows.keys() == {"eager", "whole decoder", "regions"} and "batch 1 x 96 tokens" in out
    assert rows["eager"][2] == 1.0 and all(step > 0 for _, step, _, _ in rows.values())
    assert rows["regions"][0] > rows["eager"][0]  # the first step compiles
    assert max(diff for *_, diff in rows.values()) < 1e-4
