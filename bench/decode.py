"""Decoding speed: plain `transformers` `generate` on the bare LLM vs Meerkat's chat path (media
spliced in, same LLM), at batch 1 and batched, in one run.

    python bench/decode.py [--new_tokens 64] [--batch 8]

On this CPU it uses the tiny preset; the 7B-shape GPU figures (goal: ≥ 170 tokens/s at batch 1,
≥ 2,000 batched on an H100) are not measured yet.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from meerkat import MeerkatModel, get_preset
from meerkat.chat import Meerkat


def timed(fn) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    n = args.new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        MeerkatModel.build(get_preset("tiny")).save_pretrained(tmp)
        meerkat = Meerkat.from_pretrained(tmp, device="cuda" if torch.cuda.is_available() else "cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8))
    audio = (np.random.default_rng(1).standard_normal(48_000).astype(np.float32) * 0.1, 48_000)
    request = {"prompt": "Which object is making this sound? Give its box.", "image": image, "audio": audio}
    prompt_len = len(meerkat.model.processor.encode([{"role": "user", "content": "<image>\n<audio>\n" + request["prompt"]}],
                                                    add_generation_prompt=True, image=image, audio=audio)["input_ids"])
    llm, device = meerkat.model.llm, meerkat.device
    print(f"device {device}; tiny preset; prompt {prompt_len} tokens (media included); {n} new tokens")
    print(f"{'':<34}{'batch':>6}{'tokens/s':>12}")
    for batch in (1, args.batch):
        ids = torch.randint(3, 500, (batch, prompt_len), device=device)
        plain = timed(lambda: llm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                           min_new_tokens=n, do_sample=False, pad_token_id=0))
        ours = timed(lambda: meerkat.generate_batch([request] * batch, max_new_tokens=n, min_new_tokens=n))
        print(f"{'plain transformers generate':<34}{batch:>6}{batch * n / plain:>12,.0f}")
        print(f"{'meerkat (media encode + generate)':<34}{batch:>6}{batch * n / ours:>12,.0f}   ratio {plain / ours:.2f}")


if __name__ == "__main__":
    main()
