"""`make demo` (for now): build the tiny Meerkat, run one forward + backward on a generated
image/audio pair, and print the total, LM, OT and AC losses.

    python -m meerkat.demo
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from meerkat import MeerkatModel, get_preset
from meerkat.grounding import format_box

BOX = [0.25, 0.30, 0.60, 0.75]


def make_pair(seed: int = 0) -> tuple[Image.Image, tuple[np.ndarray, int]]:
    """A noisy background with a red square at BOX, and 4 s of a 660 Hz tone from 1 s to 3 s."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, size=(240, 320, 3), dtype=np.uint8)
    x1, y1, x2, y2 = (np.array(BOX) * [320, 240, 320, 240]).astype(int)
    pixels[y1:y2, x1:x2] = (220, 40, 40)
    rate = 48_000
    t = np.arange(4 * rate) / rate
    audio = np.where((t >= 1) & (t < 3), 0.4 * np.sin(2 * np.pi * 660 * t), 0.0).astype(np.float32)
    return Image.fromarray(pixels), (audio, rate)


def main() -> None:
    start = time.perf_counter()
    model = MeerkatModel.build(get_preset("tiny"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"built the tiny Meerkat: {total:,} parameters, {trainable:,} trainable "
          f"({time.perf_counter() - start:.1f} s)")
    image, audio = make_pair()
    conversation = [
        {"role": "user", "content": "<image>\n<audio>\nWhich object makes this sound? Give its box."},
        {"role": "assistant", "content": f"The red square at {format_box(BOX)}."},
    ]
    batch = model.processor.collate([model.processor.encode(conversation, image=image, audio=audio, box=BOX)])
    model.train()
    start = time.perf_counter()
    out = model(**batch)
    out.loss.backward()
    elapsed = time.perf_counter() - start
    grad = sum(p.grad.norm() ** 2 for p in model.parameters() if p.grad is not None) ** 0.5
    print(f"one forward + backward on a {batch['input_ids'].shape[1]}-token sample: {elapsed:.2f} s")
    print(f"  total loss {out.loss.item():.4f}")
    print(f"  LM loss    {out.lm_loss.item():.4f}")
    print(f"  OT loss    {out.ot_loss.item():.4f}  (AVOpT, weight {model.config.loss.ot_weight})")
    print(f"  AC loss    {out.ac_loss.item():.4f}  (AVACE, weight {model.config.loss.ac_weight})")
    print(f"  gradient norm over trainable weights {grad.item():.4f}")


if __name__ == "__main__":
    main()
