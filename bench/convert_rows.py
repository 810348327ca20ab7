"""How fast `convert` turns annotation rows into samples without touching media (goal: 100k rows ≤ 60 s).

    python bench/convert_rows.py --rows 100000

Writes a VGGSound-format annotation file of N rows (classification + AVFC, so the run also draws
AVFC negatives from the whole pool) and times parsing, checks, templates and JSON output.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from instruct_data.convert import convert
from instruct_data.sources import get_source

GOAL_SECONDS_PER_100K = 60.0


def write_annotations(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    classes = ["dog barking", "playing acoustic guitar", "church bell ringing", "car engine starting", "cat meowing"]
    lines = [f"vid{i:07d},{rng.randrange(300)},{rng.choice(classes)},{rng.choice(['train', 'test'])}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        annotations = Path(tmp) / "vggsound.csv"
        write_annotations(annotations, args.rows)
        start = time.perf_counter()
        summary = convert(get_source("vggsound"), annotations, Path(tmp) / "out.jsonl", progress=False)
        seconds = time.perf_counter() - start
    goal = GOAL_SECONDS_PER_100K * args.rows / 100_000
    print(f"rows {summary.rows}  samples {sum(summary.samples.values())}  rejected {sum(summary.rejected.values())}")
    print(f"{'':<12}{'seconds':>10}{'rows/s':>12}")
    print(f"{'measured':<12}{seconds:>10.1f}{summary.rows / seconds:>12,.0f}")
    print(f"{'goal':<12}{goal:>10.1f}{args.rows / goal:>12,.0f}   {'PASS' if seconds <= goal else 'FAIL'} "
          f"({seconds / goal:.2f} of the budget)")


if __name__ == "__main__":
    main()
