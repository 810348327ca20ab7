"""Training from cached encoder features vs from media files, same config, same run of this script.

    python bench/feature_cache.py --steps 20 [--config train/configs/tiny_synth.yaml] [key=value ...]

Extracts the features once (timed separately), trains `--steps` steps each way and prints step
throughput side by side with the ratio, and the largest loss difference between the two runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--config", default="train/configs/tiny_synth.yaml")
    args, overrides = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = ["--config", args.config, f"max_steps={args.steps}", f"save_every={args.steps}", *overrides]
        extract = run(["train/extract_features.py", "--out", str(tmp / "features"), "--config", args.config, *overrides])
        rows = {}
        for name, extra in (("media", []), ("feature cache", [f"feature_cache={tmp / 'features'}"])):
            run(["train/sft.py", *common, f"output_dir={tmp / name}", *extra])
            rows[name] = [json.loads(line) for line in open(tmp / name / "metrics.jsonl")]
    print(f"{args.steps} steps of {args.config} {' '.join(overrides)}; feature extraction took {extract:.1f} s (once)")
    print(f"{'':<16}{'tokens/s (median over steps 2..N)':>36}")
    speed = {}
    for name, log in rows.items():
        speed[name] = statistics.median(e["tokens_per_s"] for e in log[1:])  # step 1 includes warm-up
        print(f"{name:<16}{speed[name]:>36,.0f}")
    diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(rows["media"], rows["feature cache"]))
    print(f"feature cache / media throughput: {speed['feature cache'] / speed['media']:.2f}x; "
          f"largest loss difference over {args.steps} steps: {diff:.2e}")


if __name__ == "__main__":
    main()
