"""`make ablation`: what the auxiliary losses do — the demo's instruction stage trained with both, without
OT, without AC and without either, from one shared projector stage, each evaluated on the same test split.

    python -m demo.ablation [--quick]

Writes runs/ablation/<variant>/ (runs and report per variant) and runs/ablation/comparison.md, the
`eval.compare` table of all four.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from demo.pipeline import QUICK, ROOT, Plan, evaluate, prepare, train
from eval.compare import comparison

VARIANTS = {
    "full": [],
    "no_ot": ["model.loss.ot_weight=0"],
    "no_ac": ["model.loss.ac_weight=0"],
    "no_ot_no_ac": ["model.loss.ot_weight=0", "model.loss.ac_weight=0"],
}


def run(plan: Plan) -> str:
    """Train and evaluate every variant; returns the comparison table (also written to comparison.md)."""
    plan = dataclasses.replace(plan, out=ROOT / plan.out, world=ROOT / plan.world)
    start, timings = time.perf_counter(), {}
    prepare(plan, timings)
    stage1 = None
    reports = {}
    for name, overrides in VARIANTS.items():
        variant = dataclasses.replace(plan, out=plan.out / name, overrides=plan.overrides + overrides)
        checkpoint = train(variant, timings, stage1_dir=stage1)
        stage1 = stage1 or variant.out / "stage1"  # stage 1 (no OT/AC) is the same for all variants
        reports[name] = evaluate(variant, checkpoint, timings)
    table = comparison(reports)
    (plan.out / "comparison.md").write_text(table + "\n")
    print(f"\n## Ablation ({(time.perf_counter() - start) / 60:.1f} min)\n\n{table}\n\nwritten: {plan.out / 'comparison.md'}")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the demo's shortened schedule for every variant")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--world", help="the procedural world (default: the demo's, generated when missing)")
    args = parser.parse_args(argv)
    plan = Plan(**QUICK, world=Path("data/demo_world_quick")) if args.quick else Plan()
    plan = dataclasses.replace(plan, out=Path(args.out), world=Path(args.world) if args.world else plan.world)
    run(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
