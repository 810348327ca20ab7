"""CPU benchmark of the synthetic world: time and disk for n scenes against the goal (5,000 scenes in
<= 180 s on a 2-core machine, files included). Deletes what it wrote unless --keep.

    python bench/synth_world.py --n 5000 --out /tmp/synth_bench

CPU seconds (this process and its workers) are printed beside the wall time: on a shared machine the
wall time also counts other jobs, and CPU seconds / cores is what the run would take alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: instruct_data is not installed

from instruct_data.synth import generate  # noqa: E402

GOAL_SCENES, GOAL_S = 5000, 180.0


def _cpu_seconds() -> float:
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--n", type=int, default=GOAL_SCENES)
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument("--keep", action="store_true", help="keep the generated world")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty; pass a new folder (the benchmark deletes it afterwards)")

    cpu, start = _cpu_seconds(), time.perf_counter()
    generate(args.out, args.n, args.seed, workers=args.workers)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    sizes = {d: sum(f.stat().st_size for f in (args.out / d).iterdir()) for d in ("images", "audio")}
    total_mb = (sum(sizes.values()) + (args.out / "annotations.jsonl").stat().st_size) / 1e6
    goal = GOAL_S * args.n / GOAL_SCENES
    cores = args.workers or os.cpu_count() or 1

    print(f"{'scenes':<22}{args.n}")
    print(f"{'workers':<22}{cores}")
    print(f"{'seconds (wall)':<22}{seconds:.1f}    goal <= {goal:.0f}  {'PASS' if seconds <= goal else 'FAIL'}")
    print(f"{'CPU seconds / workers':<22}{cpu / cores:.1f}    (CPU {cpu:.1f} s: the wall time on an idle machine)")
    print(f"{'scenes/s':<22}{args.n / seconds:.1f}    goal >= {GOAL_SCENES / GOAL_S:.1f}")
    print(f"{'MB written':<22}{total_mb:.0f}    (images {sizes['images'] / 1e6:.0f}, audio {sizes['audio'] / 1e6:.0f}; "
          f"{total_mb * 1e3 / max(args.n, 1):.0f} kB/scene)")
    if not args.keep:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
