"""Compile time and step time: eager, the whole decoder compiled, and `compile_decoder`'s regions, in one run.

    python bench/compile_time.py                          # CPU: tiny preset, 2 and 16 decoder layers
    python bench/compile_time.py --shapes 7b --layers 4,32 --batch 4 --seq 1024   # GPU

Each variant trains the Meerkat step (bench/train_step.py's batch) in a process of its own with an empty
inductor cache, so the first step pays the whole cold compile. "whole decoder" is `torch.compile` of the
LLM's decoder module, the obvious way; "regions" is `MeerkatModel.compile_decoder` (attention, MLP and
norm compiled once each and shared by every layer). Printed: the first step's seconds (compiling), the
median of the following steps, and the largest loss difference from the eager run over those steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_step  # noqa: E402

VARIANTS = ("eager", "whole decoder", "regions")


def measure(variant: str, shapes: str, layers: int, batch: int, seq: int, steps: int, checkpointing: bool) -> dict:
    """One variant's first-step seconds, later steps' median and losses (run in this process)."""
    from meerkat import MeerkatModel

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    torch.manual_seed(0)
    with device:
        model = MeerkatModel.build(train_step.config(shapes, layers, dtype)).to(device)
    if checkpointing:
        model.llm.gradient_checkpointing_enable()
        model.llm.enable_input_require_grads()
    if variant == "whole decoder":
        model.llm.get_decoder().compile(dynamic=True)
    elif variant == "regions":
        model.compile_decoder()
    items = train_step.meerkat_items(model, [seq] * batch, 0.25)
    inputs = {k: v.to(device) for k, v in model.processor.collate(items).items()}
    step = train_step.meerkat_step_fn(model, inputs)
    times, losses = [], []
    for _ in range(steps + 1):
        start = time.perf_counter()
        losses.append(step().item())  # .item() waits for the GPU
        times.append(time.perf_counter() - start)
    return {"first": times[0], "step": statistics.median(times[1:]), "losses": losses}


def in_fresh_process(variant: str, layers: int, args) -> dict:
    """`measure` in a child process with an empty inductor cache: dynamo's and inductor's caches would
    otherwise let a later variant reuse an earlier one's compiled code."""
    with tempfile.TemporaryDirectory() as cache:
        command = [sys.executable, __file__, "--child", variant, "--shapes", args.shapes, "--layers", str(layers),
                   "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps)]
        command += ["--checkpointing"] if args.checkpointing else []
        done = subprocess.run(command, capture_output=True, text=True,
                              env=os.environ | {"TORCHINDUCTOR_CACHE_DIR": cache})
    if done.returncode != 0:
        raise RuntimeError(f"{variant} at {layers} layers failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--shapes", choices=["tiny", "7b"], default="tiny")
    parser.add_argument("--layers", default="2,16", help="decoder depths to time, comma-separated")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="steps timed after the first")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on in every variant")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.shapes, int(args.layers), args.batch, args.seq, args.steps,
                                 args.checkpointing)))
        return
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{device}; {args.shapes} shapes, batch {args.batch} x {args.seq} tokens"
          f"{', gradient checkpointing' if args.checkpointing else ''}; median of {args.steps} steps after the first")
    print(f"{'':<16}{'layers':>7}{'first step s':>14}{'step ms':>10}{'vs eager':>10}{'max |loss diff|':>17}")
    for layers in [int(n) for n in args.layers.split(",")]:
        eager = None
        for variant in VARIANTS:
            result = in_fresh_process(variant, layers, args)
            eager = eager or result
            diff = max(abs(a - b) for a, b in zip(result["losses"], eager["losses"], strict=True))
            print(f"{variant:<16}{layers:>7}{result['first']:>14.1f}{result['step'] * 1e3:>10.1f}"
                  f"{eager['step'] / result['step']:>9.2f}x{diff:>17.1e}")


if __name__ == "__main__":
    main()
