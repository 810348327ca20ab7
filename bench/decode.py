"""Decoding speed: plain `transformers` `generate` on the bare LLM vs Meerkat's chat path (media encoded
and spliced in, same LLM, `meerkat.decoding.StaticDecoder`), at batch 1 and batched, in one run.

    python bench/decode.py                                      # CPU: tiny preset
    python bench/decode.py --shapes 7b --batches 1,32           # GPU: Llama-2-7B, ViT-B/16, HTSAT-base shapes

Random-init weights (no download), LoRA merged (inference runs the plain LLM). Every row decodes exactly
`--new_tokens` tokens (end-of-sequence suppressed). Meerkat's figure includes encoding each request's
image and audio; plain `generate` gets token ids of the same prompt length. On a GPU the table also gives
`transformers`' own compiled static-cache `generate` at batch 1, the decoder without `tune_gemv` (cuBLAS
matrix-vector products), and how close batch-1 decoding comes to the memory-bandwidth limit (every
weight read once per token).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpus import bandwidth, bandwidth_limit  # noqa: E402
from bench.train_step import config, timed  # noqa: E402
from meerkat import MeerkatModel  # noqa: E402
from meerkat.chat import Meerkat  # noqa: E402
from meerkat.decoding import StaticDecoder  # noqa: E402
from meerkat.processor import OWN_SYSTEM  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--shapes", choices=["tiny", "7b"], default="tiny")
    parser.add_argument("--layers", type=int, help="LLM layers (default: the shapes' own)")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--no_hf_static", action="store_true", help="skip transformers' compiled static-cache generate")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    cfg = config(args.shapes, args.layers, str(dtype).removeprefix("torch."))
    cfg.llm.lora = None  # inference runs with the adapter merged into the LLM
    with device:  # random init straight on the device (.to: tensors made from numpy arrays ignore the context)
        model = MeerkatModel.build(cfg).to(device=device, dtype=dtype)
    fast, n = Meerkat(model, static_cache=True), args.new_tokens
    llm = model.llm
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8))
    audio = (np.random.default_rng(1).standard_normal(48_000 * 10).astype(np.float32) * 0.1, 48_000)
    request = {"prompt": "Which object is making this sound? Give its box.", "image": image, "audio": audio}
    turn = {"role": "user", "content": "<image>\n<audio>\n" + request["prompt"]}
    prompt_len = len(model.processor.encode([turn], add_generation_prompt=True, image=image, audio=audio)["input_ids"])
    params = sum(p.numel() for p in llm.parameters())
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}; {args.shapes} shapes, LLM {params / 1e6:,.1f} M parameters, {str(dtype).removeprefix('torch.')}; "
          f"prompt {prompt_len} tokens (media included); {n} new tokens; median of {args.repeats}")
    print(f"{'':<52}{'batch':>6}{'tokens/s':>12}{'vs plain':>10}")

    def row(label: str, batch: int, seconds: float, plain: float | None) -> None:
        ratio = f"{plain / seconds:>10.2f}" if plain else f"{'':>10}"
        print(f"{label:<52}{batch:>6}{batch * n / seconds:>12,.1f}{ratio}")

    fixed = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False, "pad_token_id": 0}
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = torch.randint(3, 500, (batch, prompt_len), device=device)
        plain = timed(lambda: llm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **fixed),
                      device, 1, args.repeats)
        row("plain transformers generate", batch, plain, None)
        if batch == 1 and device.type == "cuda" and not args.no_hf_static:
            hf_static = timed(lambda: llm.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                   cache_implementation="static", **fixed), device, 3, args.repeats)
            row("transformers generate, static cache (compiled)", batch, hf_static, plain)
        ours = timed(lambda: fast.generate_batch([request] * batch, max_new_tokens=n, min_new_tokens=n),
                     device, 3 if device.type == "cuda" else 1, args.repeats)
        row("meerkat StaticDecoder (media encode + decode)", batch, ours, plain)
        # the same decoder on prompts already embedded: what a Conversation's later turns cost
        generation = fast._generation_kwargs(max_new_tokens=n, min_new_tokens=n)  # what the chat path passes
        inputs = fast._inputs([[turn]] * batch, fast._encode_many([image] * batch, [audio] * batch), OWN_SYSTEM, n)
        decode_only = timed(lambda: fast._decoder.generate(**inputs, **generation), device, 1, args.repeats)
        row("meerkat StaticDecoder, decode only (media encoded)", batch, decode_only, plain)
        if batch == 1 and device.type == "cuda":  # before the next compile, which a time limit may cut
            limit = bandwidth(name)
            bound = bandwidth_limit(params, torch.finfo(dtype).bits // 8, limit) if limit else None
            print(f"{'':<4}batch-1 bandwidth limit " + (
                f"{bound:,.0f} tokens/s (weights read once per token); meerkat reaches {n / ours / bound:.0%} of it "
                f"with media encoding, {n / decode_only / bound:.0%} decoding only" if bound else
                f"n/a: no memory bandwidth known for {name!r} (bench/gpus.py)"))
            # what tuning the matrix-vector products buys, same run
            cublas = StaticDecoder(llm, tune_gemv=False)
            untuned = timed(lambda: cublas.generate(**inputs, **generation), device, 3, args.repeats)
            row("  the same, cuBLAS matrix-vector products (no tune_gemv)", batch, untuned, plain)


if __name__ == "__main__":
    main()
