"""Pretrain the small preset's image tower on the procedural world, standing in for CLIP's pretraining.

    python -m demo.encoders --world data/demo_world --out runs/demo/encoders

Meerkat's towers are frozen *pretrained* encoders: a CLIP patch token already says what is there. A
random-init tower only passes pixels on — whether a 32-px patch holds part of an object is barely
linear in its tokens — and a small LLM trained for minutes does not learn to read objects out of them
(the demo's LLM ignored images entirely). So, before freezing it, the demo trains the tiny ViT for a
minute on the world's *train* split to say, for every patch, how much of it each object class covers
(soft labels from the annotated boxes; "background" takes the rest), then drops the head. The
weights are an open_clip state dict (`visual.*`), loaded through `vision.weights` like real CLIP
weights. Val scenes are only read to report how well the head names each patch's object (colour and
shape); test scenes are never read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from instruct_data.mixture import read_jsonl
from instruct_data.synth.world import CLASSES
from meerkat.config import get_preset
from meerkat.encoders.vision import CLIPVisionEncoder
from meerkat.media import load_image


def patch_coverage(objects: list[dict], size: tuple[int, int], grid: int) -> torch.Tensor:
    """(grid², classes + 1) share of each patch covered by each class's box (pixel boxes, x2/y2
    exclusive); the last column, background, takes what is left. Overlaps cannot occur (boxes never touch)."""
    width, height = size
    edges_x, edges_y = np.linspace(0, width, grid + 1), np.linspace(0, height, grid + 1)
    cover = np.zeros((grid, grid, len(CLASSES) + 1))
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        over_x = np.clip(np.minimum(edges_x[1:], x2) - np.maximum(edges_x[:-1], x1), 0, None) / np.diff(edges_x)
        over_y = np.clip(np.minimum(edges_y[1:], y2) - np.maximum(edges_y[:-1], y1), 0, None) / np.diff(edges_y)
        cover[:, :, CLASSES.index(obj["class"])] += np.outer(over_y, over_x)  # rows are y
    cover[:, :, -1] = 1 - cover[:, :, :-1].sum(-1)
    return torch.from_numpy(cover.reshape(grid * grid, -1)).float()


def load_split(world: Path, encoder: CLIPVisionEncoder, split: str = "train",
               limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) pixel values and (N, grid², classes + 1) targets of the world's `split` scenes."""
    scenes = [s for s in read_jsonl(world / "annotations.jsonl") if s["split"] == split][:limit]
    if not scenes:
        raise ValueError(f"{world / 'annotations.jsonl'} has no {split} scenes")
    pixels, targets = [], []
    for scene in tqdm(scenes, desc="images", unit="image"):
        pixels.append(encoder.transform(load_image(world / scene["image"])))
        targets.append(patch_coverage(scene["objects"], (scene["width"], scene["height"]), encoder.grid_size))
    return torch.stack(pixels), torch.stack(targets)


def pretrain(encoder: CLIPVisionEncoder, pixels: torch.Tensor, targets: torch.Tensor, epochs: int,
             batch_size: int = 32, lr: float = 2e-3, seed: int = 0) -> tuple[list[float], nn.Linear]:
    """Train the tower and a linear head on the layer Meerkat reads; returns the loss of each epoch and
    the head."""
    torch.manual_seed(seed)
    layer = encoder.cfg.feature_layer % encoder.num_layers
    head = nn.Linear(encoder.width, targets.shape[-1])
    params = list(encoder.visual.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(pixels) // batch_size)
    scheduler = get_cosine_schedule_with_warmup(optimizer, steps // 10, steps)
    encoder.visual.train()
    losses = []
    for _ in tqdm(range(epochs), desc="pretrain", unit="epoch"):
        total = 0.0
        for batch in torch.randperm(len(pixels)).split(batch_size):
            tokens = encoder.visual.forward_intermediates(
                pixels[batch], indices=[layer], stop_early=True, intermediates_only=True, output_fmt="NLC",
            )["image_intermediates"][0]  # (B, grid², width)
            loss = nn.functional.cross_entropy(head(tokens).flatten(0, 1), targets[batch].flatten(0, 1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(batch)
        losses.append(total / len(pixels))
    encoder.visual.eval()
    return losses, head


def patch_accuracy(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """How well per-patch class scores (N, grid², classes + 1) name the object on the patches that one
    object covers the most of: found (not called background), and of those found, colour and shape
    right. What the LLM can look up in an image is capped by these."""
    covered = targets[..., :-1].amax(-1) > 0.5
    predicted, true = scores.argmax(-1)[covered], targets.argmax(-1)[covered]
    found = predicted < len(CLASSES)
    parts = [name.split() for name in CLASSES]  # "red square" → colour, shape
    colour = [parts[int(p)][0] == parts[int(t)][0] for p, t in zip(predicted[found], true[found])]
    shape = [parts[int(p)][1] == parts[int(t)][1] for p, t in zip(predicted[found], true[found])]
    return {"patches": int(covered.sum()), "found": found.float().mean().item(),
            "colour": sum(colour) / max(len(colour), 1), "shape": sum(shape) / max(len(shape), 1)}


def head_scores(encoder: CLIPVisionEncoder, head: nn.Linear, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([head(encoder(chunk)) for chunk in pixels.split(64)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, required=True, help="a folder from `python -m instruct_data synth`")
    parser.add_argument("--out", type=Path, required=True, help="folder for vision.safetensors")
    parser.add_argument("--preset", default="small", help="whose image tower to pretrain")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--val_scenes", type=int, default=300,
                        help="val scenes on which to report how well the head names each patch's object (not trained "
                        "on); 0: none, for a world without a val split")
    args = parser.parse_args(argv)
    cfg = get_preset(args.preset)
    torch.manual_seed(cfg.seed)
    encoder = CLIPVisionEncoder(cfg.vision)
    start = time.perf_counter()
    pixels, targets = load_split(args.world, encoder)
    losses, head = pretrain(encoder, pixels, targets, args.epochs, seed=cfg.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "vision.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in encoder.visual.state_dict().items()}, str(path))
    print(f"patch-class loss per epoch: {' '.join(f'{x:.3f}' for x in losses)}; "
          f"{len(pixels)} train images, {time.perf_counter() - start:.0f} s → {path}")
    if args.val_scenes:  # and as many train scenes, to compare
        val_pixels, val_targets = load_split(args.world, encoder, "val", limit=args.val_scenes)
        n = len(val_pixels)
        for split, x, y in (("train", pixels[:n], targets[:n]), ("val", val_pixels, val_targets)):
            acc = patch_accuracy(head_scores(encoder, head, x), y)
            print(f"{split} ({n} scenes, {acc['patches']} object patches): object found {acc['found']:.1%}; "
                  f"of those, colour right {acc['colour']:.1%}, shape right {acc['shape']:.1%}")


if __name__ == "__main__":
    main()
