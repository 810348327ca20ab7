"""Frozen towers in bfloat16 vs float32: how far their tokens move, and the time of each, in one run.

    python bench/tower_dtype.py                  # ViT-B/16 and HTSAT-base shapes, random init, batch 2
    python bench/tower_dtype.py --shapes tiny    # the tiny preset's towers (seconds)

Both towers are built once (random init from the config's seed, no download) and copied to bfloat16, as
`vision.dtype` / `audio.dtype` = "bfloat16" builds them; the same random pixels and audio go through both.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meerkat import get_preset  # noqa: E402
from meerkat.model import build_encoders  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--shapes", choices=["tiny", "7b"], default="7b")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = get_preset("tiny" if args.shapes == "tiny" else "meerkat-7b")
    cfg.vision.weights = cfg.audio.checkpoint = None
    cfg.vision.dtype = cfg.audio.dtype = "float32"
    cfg.random_init = True
    generator = torch.Generator().manual_seed(0)
    size = cfg.vision.model_cfg["vision_cfg"]["image_size"] if cfg.vision.model_cfg else 224
    inputs = (torch.randn(args.batch, 3, size, size, generator=generator),
              0.1 * torch.randn(args.batch, cfg.audio.clip_samples, generator=generator))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}; {args.shapes} towers, random init, batch {args.batch}")
    print(f"{'':<20}{'float32 ms':>12}{'bfloat16 ms':>13}{'speed-up':>10}{'rel. error':>12}{'min cosine':>12}")
    for tower, x in zip(build_encoders(cfg), inputs):
        tower, x = tower.to(device), x.to(device)
        half = copy.deepcopy(tower).to(torch.bfloat16)
        (reference, t_full), (tokens, t_half) = (_timed(t, x, device) for t in (tower, half))
        tokens = tokens.float()
        error = ((tokens - reference).norm() / reference.norm()).item()
        cosine = torch.nn.functional.cosine_similarity(tokens.flatten(0, 1), reference.flatten(0, 1), dim=-1).min().item()
        print(f"{type(tower).__name__:<20}{t_full * 1e3:>12.1f}{t_half * 1e3:>13.1f}{t_full / t_half:>9.2f}x"
              f"{error:>12.4f}{cosine:>12.5f}")


def _timed(tower, x, device) -> tuple[torch.Tensor, float]:
    """Output and the faster of two calls (the first also warms up)."""
    times = []
    for _ in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = tower(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, min(times)


if __name__ == "__main__":
    main()
