"""GPU check of the core model: CUDA matches CPU, real-shape encoders run, OT runs batched on the
device, and (with --qlora) a 4-bit QLoRA LLM builds and trains a step. Prints one line per check.

    python bench/gpu_smoke.py            # needs a CUDA GPU
    python bench/gpu_smoke.py --qlora    # also needs bitsandbytes (pip install -e ".[qlora]")
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from transformers import LlamaConfig, LlamaForCausalLM

from meerkat import MeerkatModel, get_preset
from meerkat.losses.ot import cosine_cost, transport_plan
from meerkat.tokenizer import _train_sentencepiece

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


TURNS = [
    {"role": "user", "content": "<image>\n<audio>\nWhich object makes this sound? Give its box."},
    {"role": "assistant", "content": "The red square at [0.25, 0.30, 0.60, 0.75]."},
]


def _batch(model: MeerkatModel, n: int = 4, device: str = "cpu") -> dict:
    items = []
    for seed in range(n):
        image, audio = make_pair(seed)
        items.append(model.processor.encode(TURNS, image=image, audio=audio, box=BOX))
    return {k: v.to(device) if v is not None else None for k, v in model.processor.collate(items).items()}


def _timed(fn, repeats: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def check_cuda_matches_cpu() -> None:
    model = MeerkatModel.build(get_preset("tiny")).eval()
    batch = _batch(model)
    with torch.no_grad():
        cpu = model(**batch)
        model.cuda()
        gpu = model(**{k: v.cuda() if v is not None else None for k, v in batch.items()})
    for name in ("loss", "lm_loss", "ot_loss", "ac_loss"):
        a, b = getattr(cpu, name).item(), getattr(gpu, name).item()
        print(f"tiny {name:8s} cpu {a:.5f} cuda {b:.5f} rel.diff {abs(a - b) / max(abs(a), 1e-9):.1e}")
        assert abs(a - b) <= 1e-3 * max(abs(a), 1e-3), name


def check_real_shape_encoders() -> None:
    cfg = get_preset("tiny")
    cfg.vision.model_name, cfg.vision.model_cfg, cfg.vision.feature_layer = "ViT-B-16-quickgelu", None, -2
    cfg.audio.htsat = get_preset("meerkat-7b").audio.htsat
    cfg.audio.num_tokens = 32
    model = MeerkatModel.build(cfg).cuda().train()
    batch = _batch(model, n=8, device="cuda")
    print(f"ViT-B/16 tokens {tuple(model.vision(batch['pixel_values']).shape)}, "
          f"HTSAT-base tokens {tuple(model.audio(batch['audio_values']).shape)}")

    def step():
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()

    print(f"real-shape encoders + tiny LLM, batch 8, fwd+bwd {_timed(step) * 1e3:.1f} ms")
    out = model(**batch)
    print(f"  losses: lm {out.lm_loss.item():.4f} ot {out.ot_loss.item():.4f} ac {out.ac_loss.item():.4f}")


def check_ot_on_device() -> None:
    g = torch.Generator().manual_seed(0)
    image, audio = torch.randn(8, 196, 4096, generator=g), torch.randn(8, 32, 4096, generator=g)
    cost = cosine_cost(image, audio)
    plan_cpu = transport_plan(cost)
    cost_gpu = cost.cuda()
    plan_gpu = transport_plan(cost_gpu)
    assert plan_gpu.device.type == "cuda"
    diff = (plan_gpu.cpu() - plan_cpu).abs().max().item()
    seconds = _timed(lambda: transport_plan(cost_gpu))
    print(f"OT plan B=8, 196x32 on cuda: {seconds * 1e3:.2f} ms, max |cuda - cpu| {diff:.1e}")


def check_qlora() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hf = dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=8, vocab_size=512, max_position_embeddings=1024)
        LlamaForCausalLM(LlamaConfig(**hf)).save_pretrained(tmp)
        open(f"{tmp}/tokenizer.model", "wb").write(_train_sentencepiece(512))
        cfg = get_preset("tiny")
        cfg.llm.path, cfg.llm.hf_config, cfg.llm.load_in_4bit, cfg.llm.dtype = tmp, None, True, "bfloat16"
        model = MeerkatModel.build(cfg)
    kinds = {type(m).__name__ for m in model.llm.modules()}
    assert "Linear4bit" in kinds, kinds
    model.cuda().train()
    batch = _batch(model, device="cuda")
    out = model(**batch)
    out.loss.backward()
    lora_grads = [p.grad.abs().sum().item() for n, p in model.named_parameters() if "lora_B" in n]
    print(f"QLoRA 4-bit LLM: loss {out.loss.item():.4f} (lm {out.lm_loss.item():.4f}), "
          f"{len(lora_grads)} LoRA B grads, all non-zero: {all(g > 0 for g in lora_grads)}, "
          f"peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    assert np.isfinite(out.loss.item()) and lora_grads and all(g > 0 for g in lora_grads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--qlora", action="store_true")
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    check_cuda_matches_cpu()
    check_ot_on_device()
    check_real_shape_encoders()
    if args.qlora:
        check_qlora()
    print("gpu smoke: all checks passed")


if __name__ == "__main__":
    main()
