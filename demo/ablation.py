"""`make ablation`: what the auxiliary losses do — the demo's stages trained with both, without OT, without
AC and without either, each evaluated on the same test split (variants whose first stage comes out the
same share its run).

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
from train.config import load_config

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
    first, finished = plan.stages[0][0], []  # (the first stage's resolved config, the run that trained it)
    reports = {}
    for name, overrides in VARIANTS.items():
        variant = dataclasses.replace(plan, out=plan.out / name, overrides=plan.overrides + overrides)
        settings = first_stage_config(variant)
        shared = next((run for done, run in finished if done == settings), None)
        checkpoint = train(variant, timings, reuse={first: shared} if shared else None)
        if shared is None:
            finished.append((settings, variant.out / first))
        reports[name] = evaluate(variant, checkpoint, timings)
    table = comparison(reports)
    (plan.out / "comparison.md").write_text(table + "\n")
    print(f"\n## Ablation ({(time.perf_counter() - start) / 60:.1f} min)\n\n{table}\n\nwritten: {plan.out / 'comparison.md'}")
    return table


def first_stage_config(plan: Plan) -> dict:
    """The first stage's settings once its overrides apply, the model's resolved from its preset:
    variants whose overrides leave them alone (OT is off in stage 1 anyway) share its run."""
    name, config = plan.stages[0]
    resolved = load_config(str(ROOT / config), [*plan.stage_overrides.get(name, []), *plan.overrides])
    return dict(dataclasses.asdict(resolved), model=resolved.model_config().to_dict())


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
