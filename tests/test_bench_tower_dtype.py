"""CPU smoke of bench/tower_dtype.py: one row per tower, with times and a small bfloat16 error."""

import importlib.util
import re
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("tower_dtype", Path(__file__).parent.parent / "bench" / "tower_dtype.py")
tower_dtype = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(tower_dtype)


def test_bench_prints_each_towers_times_error_and_cosine(capsys):
    tower_dtype.main(["--shapes", "tiny"])
    out = capsys.readouterr().out
    assert "CPU; tiny towers, random init, batch 2" in out
    for tower in ("CLIPVisionEncoder", "HTSATAudioEncoder"):
        full, half, speedup, error, cosine = map(float, re.search(
            rf"{tower}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s+([\d.]+)", out).groups())
        assert full > 0 and half > 0 and speedup > 0  # (the printed times are rounded)
        assert 0 < error < 0.02 and 0.999 < cosine <= 1.0
