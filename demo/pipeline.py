"""`make demo`: the whole toolkit on a laptop CPU, no downloads — world → train (3 stages) → evaluate → chat.

    python -m demo.pipeline                 # what `make demo` runs
    python -m demo.pipeline --quick         # a shortened run (CI): fewer scenes and steps

Each step is the command a user would type (printed before it runs), so the demo doubles as a
walk-through: `python -m instruct_data synth`, `train/extract_features.py` (the frozen towers run
once), `accelerate launch train/sft.py` once per stage (`STAGES`), `python -m eval.run`, then one
grounded answer through the chat API with its box drawn to a PNG. At the end it checks the report
against the bars the demo must clear and prints where every output is.

On a CPU the steps run with one thread per process and training uses two processes: small matrix
products are several times faster on one thread than split over two, so two single-thread processes
beat one two-thread process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from meerkat.features import made_with
from train.config import load_config

ROOT = Path(__file__).resolve().parent.parent


# The training stages in order, each starting from the one before: (name, config). Stage 1 trains the
# projectors and the small LLM on the whole mixture with AC on, so the fused audio tokens learn where the
# sound is; the look-up stage trains on the questions that need that place (ARIG boxes, AVQA "where");
# stage 2 goes back to the whole mixture with OT and AC on.
STAGES = (("stage1", "train/configs/small_stage1.yaml"), ("lookup", "train/configs/small_lookup.yaml"),
          ("stage2", "train/configs/small_stage2.yaml"))


@dataclass
class Plan:
    """What one demo run trains and where it writes. `overrides` go to every training stage, after (so
    over) the stage's own `stage_overrides[name]` (`model.loss.ot_weight=0` for an ablation)."""

    out: Path = Path("runs/demo")
    world: Path = Path("data/demo_world")
    scenes: int = 2000
    stages: tuple[tuple[str, str], ...] = STAGES
    overrides: list[str] = field(default_factory=list)
    stage_overrides: dict[str, list[str]] = field(default_factory=dict)
    eval_limit: int | None = None
    tasks: str = "arig,igatl,avfc,avqa,avc"

    @property
    def report(self) -> Path:
        return self.out / "report"

    @property
    def features(self) -> Path:
        return self.world.with_name(self.world.name + "_features")

    @property
    def vision_weights(self) -> Path:
        return self.world.with_name(self.world.name + "_encoders") / "vision.safetensors"

    @property
    def towers(self) -> list[str]:
        """The override that makes every step use the image tower pretrained on this world."""
        return [f"model.vision.weights={self.vision_weights}"]


QUICK = dict(scenes=300, eval_limit=40,
             stage_overrides={"stage1": ["max_steps=100"], "lookup": ["max_steps=150"], "stage2": ["max_steps=150"]})


# (task, metric, what it must reach, test) — test(value, metrics entry) → bool. The baselines are the
# report's own, computed on the same test samples.
BARS = (
    ("arig", "ciou", "≥ 0.5", lambda v, e: v >= 0.5),
    ("arig", "ciou", "≥ 2 × best baseline", lambda v, e: v > 0 and v >= 2 * _best(e, "ciou")),
    ("igatl", "f1_segments", "≥ 0.6", lambda v, e: v >= 0.6),
    ("igatl", "f1_segments", "≥ best baseline + 0.2", lambda v, e: v >= _best(e, "f1_segments") + 0.2),
    ("avfc", "accuracy", "≥ 0.85", lambda v, e: v >= 0.85),
    ("avqa", "accuracy", "≥ 0.80", lambda v, e: v >= 0.80),
    ("avqa", "accuracy", "≥ majority + 0.25", lambda v, e: v >= _best(e, "accuracy") + 0.25),
    ("avc", "cider", "≥ 2 × constant caption", lambda v, e: v > 0 and v >= 2 * _best(e, "cider")),
)


def _best(entry: dict, metric: str) -> float:
    return max(b[metric] for b in entry["baselines"].values())


def check_bars(results: dict) -> list[dict]:
    """One row per bar: the model's value, the best baseline's, the requirement and whether it is met."""
    rows = []
    for task, metric, requirement, test in BARS:
        entry = results["tasks"].get(task)
        if entry is None:
            continue
        value = entry["metrics"][metric]
        rows.append({"task": task, "metric": metric, "value": value, "best_baseline": _best(entry, metric),
                     "requirement": requirement, "passed": bool(test(value, entry))})
    return rows


def bars_table(rows: list[dict]) -> str:
    lines = ["| task | metric | model | best baseline | bar | met |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['task'].upper()} | {r['metric']} | {r['value']:.3f} | {r['best_baseline']:.3f} | {r['requirement']} "
              f"| {'yes' if r['passed'] else 'NO'} |" for r in rows]
    return "\n".join(lines)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run(command: list[str], timings: dict, name: str, threads: int = 1) -> None:
    setting = {} if _cuda() else {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    env = dict(os.environ, HF_HUB_OFFLINE="1", **setting)
    print(f"\n$ {''.join(f'{k}={v} ' for k, v in setting.items())}{shlex.join(command)}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _launch(config: str, overrides: list[str]) -> list[str]:
    # Several CPU processes need --multi_gpu with accelerate 1.15 (`--cpu --num_processes 2` starts one).
    processes = ["--num_processes", "1"] if _cuda() else ["--multi_gpu", "--num_processes", "2"]
    return [sys.executable, "-m", "accelerate.commands.launch", *processes, "train/sft.py", "--config", config, *overrides]


def make_world(plan: Plan, timings: dict) -> None:
    if (plan.world / "test.jsonl").is_file():
        print(f"\nworld: reusing {plan.world} (delete it to generate a new one)")
        return
    # an older world's tower would not match; retraining it drops the features too (pretrain_towers)
    shutil.rmtree(plan.vision_weights.parent, ignore_errors=True)
    _run([sys.executable, "-m", "instruct_data", "synth", "--out", str(plan.world), "--n", str(plan.scenes)],
         timings, "world")


def pretrain_towers(plan: Plan, timings: dict) -> None:
    """The small preset's image tower, pretrained on the world's train split (see demo/encoders.py)."""
    if plan.vision_weights.is_file():
        print(f"\nimage tower: reusing {plan.vision_weights}")
        return
    shutil.rmtree(plan.features, ignore_errors=True)  # made with other towers
    # one process with batches of 32 images: unlike the small LLM steps, it gains from every core
    _run([sys.executable, "-m", "demo.encoders", "--world", str(plan.world), "--out", str(plan.vision_weights.parent)],
         timings, "image tower", threads=os.cpu_count() or 1)


def extract_features(plan: Plan, timings: dict) -> None:
    """The frozen towers' outputs for every training image and clip, once (every stage reads them);
    a cache made with other tower settings or weights is made again rather than refused by training."""
    overrides = [f"synth_dir={plan.world}", *plan.towers]
    index = plan.features / "index.json"
    if index.is_file():
        first = load_config(str(ROOT / plan.stages[0][1]), overrides).model_config()
        if made_with(json.loads(index.read_text()), first):
            print(f"\nfeatures: reusing {plan.features}")
            return
        print(f"\nfeatures: {plan.features} was made with other towers; extracting them again")
        shutil.rmtree(plan.features)
    _run([sys.executable, "train/extract_features.py", "--config", plan.stages[0][1], "--out", str(plan.features),
          "--batch_size", "32", *overrides], timings, "features")


def prepare(plan: Plan, timings: dict) -> None:
    """What every training run of a world reads: the world, its pretrained image tower, the towers' features."""
    make_world(plan, timings)
    pretrain_towers(plan, timings)
    extract_features(plan, timings)


def train(plan: Plan, timings: dict, reuse: dict[str, Path] | None = None) -> Path:
    """Every stage, each from the last one's checkpoint; returns the final checkpoint. `reuse` maps a
    stage's name to a finished run of it (the ablation shares its first stage)."""
    data = [f"synth_dir={plan.world}", f"feature_cache={plan.features}", *plan.towers]
    previous = None
    for name, config in plan.stages:
        if reuse and name in reuse:
            previous = reuse[name]
            continue
        start = [f"init_from={previous / 'final'}"] if previous else []
        shutil.rmtree(plan.out / name, ignore_errors=True)  # a new run: the recipe refuses an earlier run's checkpoints
        _run(_launch(config, [*data, f"output_dir={plan.out / name}", *start, *plan.stage_overrides.get(name, []),
                              *plan.overrides]), timings, f"train {name}")
        previous = plan.out / name
    return previous / "final"


def evaluate(plan: Plan, checkpoint: Path, timings: dict) -> dict:
    report = plan.report
    command = [sys.executable, "-m", "eval.run", "--checkpoint", str(checkpoint), "--data", str(plan.world / "test.jsonl"),
               "--media-root", str(plan.world), "--out", str(report), "--tasks", plan.tasks]
    if plan.eval_limit:
        command += ["--limit", str(plan.eval_limit)]
    if (report / "predictions.jsonl").exists():
        (report / "predictions.jsonl").unlink()  # a new model: its answers, not the last run's
    _run(command, timings, "evaluate")
    return json.loads((report / "metrics.json").read_text())


def chat_example(plan: Plan, checkpoint: Path) -> Path:
    """One ARIG question from the test split through the Python API; the answer's box drawn to a PNG."""
    from meerkat.chat import Meerkat
    from meerkat.media import resolve_media_path
    from meerkat.viz import draw_boxes

    samples = (json.loads(line) for line in (plan.world / "test.jsonl").read_text().splitlines())
    sample = next(s for s in samples if s["task"] == "arig")
    image = resolve_media_path(plan.world, sample["image"])
    audio = resolve_media_path(plan.world, sample["audio"])
    meerkat = Meerkat.from_pretrained(checkpoint, device="cpu")
    reply = meerkat.chat("Which object in the image is making this sound? Answer with its bounding box "
                         "[x1, y1, x2, y2], normalized to the image size.", image=image, audio=audio)
    out = plan.out / "chat_example.png"
    draw_boxes(image, predicted=reply.boxes[:1], truth=sample["target"]["boxes"], out=out)
    print(f"\nchat: {sample['image']} + {sample['audio']}\n  answer: {reply.text}\n  parsed box: "
          f"{reply.boxes[0] if reply.boxes else None}  (truth {sample['target']['boxes'][0]})\n  drawn: {out}")
    return out


def run(plan: Plan) -> tuple[dict, list[dict]]:
    """The whole demo; returns the report's metrics and the bar check."""
    plan = dataclasses.replace(plan, out=ROOT / plan.out, world=ROOT / plan.world)  # absolute: steps run in ROOT
    start, timings = time.perf_counter(), {}
    prepare(plan, timings)
    checkpoint = train(plan, timings)
    results = evaluate(plan, checkpoint, timings)
    picture = chat_example(plan, checkpoint)
    bars = check_bars(results)
    (plan.report / "bars.json").write_text(json.dumps(bars, indent=2) + "\n")
    total = time.perf_counter() - start
    print("\n## Bars (test split, against the report's own baselines)\n\n" + bars_table(bars))
    print("\n## Time\n\n" + "\n".join(f"- {name}: {seconds / 60:.1f} min" for name, seconds in timings.items())
          + f"\n- total: {total / 60:.1f} min")
    print(f"""
## Outputs
- world (media + train/val/test JSONL): {plan.world}; image tower: {plan.vision_weights}; encoder features: {plan.features}
- training runs (metrics.jsonl, loss_curve.png, checkpoints): {", ".join(str(plan.out / name) for name, _ in plan.stages)}
- final checkpoint: {checkpoint}
- report (report.md, metrics.json, predictions.jsonl, plots, bars.json): {plan.report}
- chat example: {picture}""")
    return results, bars


def plan_from_args(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m demo.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a shortened run: fewer scenes, steps and test samples")
    parser.add_argument("--out", help="runs and report folder (default runs/demo, runs/demo_quick with --quick)")
    parser.add_argument("--world", help="where the procedural world is (generated when missing)")
    parser.add_argument("--stage", action="append", default=[], metavar="NAME=CONFIG",
                        help="another config for a training stage: " + ", ".join(f"{n} ({c})" for n, c in STAGES))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every training stage")
    args = parser.parse_args(argv)
    configs = dict(STAGES)
    for given in args.stage:
        name, _, config = given.partition("=")
        if name not in configs or not config:
            parser.error(f"--stage {given}: expected NAME=CONFIG with NAME one of {', '.join(configs)}")
        configs[name] = config
    plan = Plan(**QUICK, out=Path("runs/demo_quick"), world=Path("data/demo_world_quick")) if args.quick else Plan()
    given = {"out": args.out and Path(args.out), "world": args.world and Path(args.world)}
    return dataclasses.replace(plan, overrides=args.set, stages=tuple(configs.items()),
                               **{k: v for k, v in given.items() if v})


def main(argv: list[str] | None = None) -> int:
    _, bars = run(plan_from_args(argv))
    return 0 if all(b["passed"] for b in bars) else 1


if __name__ == "__main__":
    sys.exit(main())
