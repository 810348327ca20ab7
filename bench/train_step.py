"""Training-step speed: plain transformers + peft (LLM only) vs the full Meerkat step, in one run.

    python bench/train_step.py                                   # CPU smoke: tiny preset shapes
    python bench/train_step.py --shapes 7b --batch 4 --seq 1024  # GPU: Llama-2-7B, ViT-B/16, HTSAT-base shapes

Both sides are random-init (no download) and train the same LoRA (q, v, r 8, the reference setting)
on the same batch × seq tokens: (a) a `LlamaForCausalLM` + peft step on text ids, (b) the Meerkat step
(frozen towers on random pixels and audio, projectors, the same LLM with its image and audio tokens
spliced in, LM loss on the answer share of each row, OT and AC losses). With `--uneven` the samples
have seq/4 … seq tokens, padded for (a) and (b), and (c) times the Meerkat step on them packed
(`packing: true`). Printed: tokens/s of real tokens, useful MFU (4·N FLOPs per token, N = LLM
parameters, against the GPU's dense bf16 peak), peak memory, padding, the OT+AC share of the Meerkat
step (timed with those losses off), the padding share of length-grouped batches of `--data` (when
given), padded and packed, and the ratios to (a). `--profile N` adds where the time goes: one profiled
step of (a) and of (b), the N operators (b) spends most time in, each side's time beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpus import peak_flops, useful_mfu  # noqa: E402
from meerkat import MeerkatModel, get_preset  # noqa: E402
from meerkat.config import AudioConfig, LLMConfig, LoraSettings, MeerkatConfig, VisionConfig  # noqa: E402
from meerkat.dataset import real_tokens  # noqa: E402
from meerkat.model import nf4_load_kwargs  # noqa: E402
from meerkat.prompt import IGNORE_INDEX  # noqa: E402

LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
LORA = LoraSettings(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"])


def config(shapes: str, layers: int | None, dtype: str) -> MeerkatConfig:
    """The tiny preset, or the production shapes random-init; `layers` shrinks the LLM (smoke tests)."""
    if shapes == "tiny":
        cfg = get_preset("tiny")
    else:
        cfg = MeerkatConfig(vision=VisionConfig(model_name="ViT-B-16-quickgelu"), audio=AudioConfig(),
                            llm=LLMConfig(hf_config=dict(LLAMA2_7B)), random_init=True)
    cfg.llm.dtype, cfg.llm.lora = dtype, LORA
    cfg.vision.dtype = cfg.audio.dtype = dtype  # frozen towers in the LLM's dtype, as the meerkat-7b preset
    if layers:
        cfg.llm.hf_config["num_hidden_layers"] = layers
    return cfg


def sample_lengths(batch: int, seq: int, uneven: bool) -> list[int]:
    """`batch` rows of `seq` tokens, or with `uneven` lengths spread evenly over [seq / 4, seq]."""
    if not uneven:
        return [seq] * batch
    return [round(seq / 4 + (seq - seq / 4) * k / max(batch - 1, 1)) for k in range(batch)]


def meerkat_items(model: MeerkatModel, lengths: list[int], answer_share: float) -> list[dict]:
    """`encode`-style samples of [image tokens, audio tokens, text], loss on the last `answer_share` of
    each (at most its text), one box each; collate or pack them like the recipe does."""
    ni, na = model.vision.num_tokens, model.audio.num_tokens
    if min(lengths) - ni - na < 2:
        raise ValueError(f"a row of {min(lengths)} tokens leaves no room for text after {ni} image and {na} audio tokens")
    generator = torch.Generator().manual_seed(0)
    size = model.vision.cfg.model_cfg["vision_cfg"]["image_size"] if model.vision.cfg.model_cfg else 224
    items = []
    for n in lengths:
        ids = torch.randint(3, model.tokenizer.vocab_size, (n,), generator=generator)
        ids[:ni], ids[ni:ni + na] = model.image_token_id, model.audio_token_id
        labels = ids.clone()
        labels[: n - min(int(answer_share * n), n - ni - na - 1)] = IGNORE_INDEX  # answers are text
        items.append({"input_ids": ids, "labels": labels, "box": torch.tensor([0.2, 0.2, 0.6, 0.7]),
                      "pixel_values": torch.randn(3, size, size, generator=generator),
                      "audio_values": 0.1 * torch.randn(1, model.config.audio.clip_samples, generator=generator)})
    return items


def save_random_llm(cfg: MeerkatConfig, folder: str, device) -> None:
    """A random-init LLM of `cfg`'s shapes (and a tokenizer) saved where `llm.path` can load it: QLoRA
    quantises the weights it loads, so the 4-bit runs start from files, as with real Llama-2 weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from meerkat.tokenizer import _train_sentencepiece

    torch.manual_seed(0)
    with device:
        llm = LlamaForCausalLM(LlamaConfig(**cfg.llm.hf_config)).to(getattr(torch, cfg.llm.dtype))
    llm.save_pretrained(folder)
    Path(folder, "tokenizer.model").write_bytes(_train_sentencepiece(cfg.llm.tokenizer_vocab_size))
    cfg.llm.path, cfg.llm.load_in_4bit = folder, True  # the path wins over hf_config, still read for shapes
    del llm
    release(device)


def plain_llm(cfg: MeerkatConfig, device):
    """transformers LlamaForCausalLM (SDPA) + peft LoRA: random init on the device, or loaded in 4-bit
    from `llm.path` with peft's k-bit preparation (the usual QLoRA recipe)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    dtype = getattr(torch, cfg.llm.dtype)
    torch.manual_seed(0)
    if cfg.llm.load_in_4bit:
        llm = AutoModelForCausalLM.from_pretrained(cfg.llm.path, dtype=dtype, attn_implementation="sdpa",
                                                   **nf4_load_kwargs(dtype))
        llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=False)
    else:
        with device:  # random init straight on the device
            llm = LlamaForCausalLM(LlamaConfig(**cfg.llm.hf_config, attn_implementation="sdpa")).to(dtype)
    # train(): `from_pretrained` returns eval mode, where checkpointing does nothing (HF's Trainer calls it too)
    return get_peft_model(llm, LoraConfig(r=LORA.r, lora_alpha=LORA.alpha, lora_dropout=0.0,
                                          target_modules=LORA.target_modules)).to(device).train()


def plain_step_fn(cfg: MeerkatConfig, lengths: list[int], device, checkpointing: bool = False):
    """(a): transformers + peft on right-padded rows of `lengths`, LM loss over every real token (the
    usual HF recipe)."""
    llm = plain_llm(cfg, device)
    if checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        llm.enable_input_require_grads()
    ids = torch.randint(3, cfg.llm.hf_config["vocab_size"], (len(lengths), max(lengths)), device=device)
    mask = (torch.arange(max(lengths), device=device) < torch.tensor(lengths, device=device)[:, None]).long()
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    optimizer = torch.optim.AdamW([p for p in llm.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss = llm(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step, llm


def meerkat_step_fn(model: MeerkatModel, inputs: dict):
    """(b): the recipe's step on the model's own forward (towers, projectors, LoRA LLM, OT, AC); a step
    returns its loss."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> torch.Tensor:
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def timed(step, device, warmup: int, steps: int) -> float:
    """Median seconds per step after `warmup` steps (compilation and CUDA-graph capture happen there)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def op_times(step, device) -> dict[str, float]:
    """Milliseconds of one step per operator (its own kernels on a GPU, its own CPU time on a CPU)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    return {e.key: (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3
            for e in prof.key_averages() if e.device_type == DeviceType.CPU}  # operators, not their kernels


def print_op_times(plain: dict[str, float], ours: dict[str, float], rows: int, device) -> None:
    where = "GPU" if device.type == "cuda" else "CPU"
    print(f"where the time goes: {where} ms per operator in one profiled step, the {rows} that (b) spends most in")
    print(f"{'operator':<60}{'(a)':>10}{'(b)':>10}{'(b)-(a)':>10}")
    ranked = sorted(ours, key=ours.get, reverse=True)
    for name in ranked[:rows]:
        a, b = plain.get(name, 0.0), ours[name]
        print(f"{name[:58]:<60}{a:>10.1f}{b:>10.1f}{b - a:>+10.1f}")
    rest_a = sum(v for k, v in plain.items() if k not in ranked[:rows])
    rest_b = sum(ours[k] for k in ranked[rows:])
    print(f"{'all other operators':<60}{rest_a:>10.1f}{rest_b:>10.1f}{rest_b - rest_a:>+10.1f}")
    total_a, total_b = sum(plain.values()), sum(ours.values())
    print(f"{'total':<60}{total_a:>10.1f}{total_b:>10.1f}{total_b - total_a:>+10.1f}")


def release(device) -> None:
    """Free a model's memory before the next is built, so each peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_memory(device) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    value = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return f"{value:.1f} GiB"


def _padding(batch: dict) -> float:
    return 1 - real_tokens(batch).sum().item() / batch["input_ids"].numel()


def padding_share(model: MeerkatModel, data: str, media_root: str, batch: int) -> tuple[float, float]:
    """Padded share of tokens when the training sampler groups `data`'s samples into batches of `batch`:
    one sample per row, and packed into rows of up to the context length (`packing: true`)."""
    from meerkat.data import load_instructions
    from meerkat.dataset import InstructionDataset, LengthGroupedSampler
    from meerkat.processor import pack_rows

    rows = load_instructions(data)
    context = model.llm.config.max_position_embeddings
    dataset = InstructionDataset(rows, model.processor, media_root, max_length=context)
    lengths = [len(dataset[i].item["input_ids"]) for i in range(len(dataset))]
    real = padded = packed = 0
    for indices in LengthGroupedSampler(lengths, batch, seed=0):
        sizes = [lengths[i] for i in indices]
        real += sum(sizes)
        padded += max(sizes) * len(sizes)
        layout = pack_rows(sizes, context)
        packed += len(layout) * max(sum(sizes[i] for i in row) for row in layout)
    return 1 - real / padded, 1 - real / packed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--shapes", choices=["tiny", "7b"], default="tiny")
    parser.add_argument("--layers", type=int, help="LLM layers (default: the shapes' own)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--uneven", action="store_true", help="samples of seq/4 … seq tokens (not full rows); "
                        "adds (c), the Meerkat step on the same samples packed into rows of seq tokens")
    parser.add_argument("--answer_share", type=float, default=0.25, help="share of each row the LM loss covers")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", default=None, help="default bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--data", help="instruction JSONL whose padding share to report")
    parser.add_argument("--media_root")
    parser.add_argument("--compile", action="store_true",
                        help="also (d): the Meerkat step with the LLM decoder torch.compiled, as `compile: true` trains")
    parser.add_argument("--qlora", action="store_true", help="both LLMs in 4-bit NF4 (bitsandbytes)")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on both sides")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile one step of (a) and (b) and print the N operators (b) spends most time in")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    cfg = config(args.shapes, args.layers, dtype)
    lengths = sample_lengths(args.batch, args.seq, args.uneven)
    tokens = sum(lengths)  # real tokens: every tokens/s below counts these only
    n_params = llm_parameters(cfg)
    with tempfile.TemporaryDirectory() as folder:
        if args.qlora:
            save_random_llm(cfg, folder, device)
        run(args, cfg, lengths, tokens, n_params, device, dtype)


def llm_parameters(cfg: MeerkatConfig) -> int:
    """N of the useful-FLOPs count: the LLM's parameters, counted on the meta device (4-bit weights
    pack two per byte, so the loaded model's count would halve)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in LlamaForCausalLM(LlamaConfig(**cfg.llm.hf_config)).parameters())


def run(args, cfg: MeerkatConfig, lengths: list[int], tokens: int, n_params: int, device, dtype: str) -> None:
    plain, llm = plain_step_fn(cfg, lengths, device, args.checkpointing)
    peak_memory(device)  # from here on: the step's peak, not the fp32 initialisation's
    t_plain = timed(plain, device, args.warmup, args.steps)
    mem_plain = peak_memory(device)
    ops_plain = op_times(plain, device) if args.profile else {}
    del plain, llm
    release(device)

    # random init straight on the device (.to: tensors made from numpy arrays ignore the context); a 4-bit
    # LLM is placed by its loader
    with device if not cfg.llm.load_in_4bit else contextlib.nullcontext():
        model = MeerkatModel.build(cfg).to(device)
    if args.checkpointing:
        # every layer, as train/sft.py with gradient_checkpointing=true (by the old name: the GPU machine has 5.17)
        model.llm.gradient_checkpointing_enable()
    peak_memory(device)
    items = meerkat_items(model, lengths, args.answer_share)
    inputs = {k: v.to(device) for k, v in model.processor.collate(items).items()}
    ours = meerkat_step_fn(model, inputs)
    t_ours = timed(ours, device, args.warmup, args.steps)
    mem_ours = peak_memory(device)
    ops_ours = op_times(ours, device) if args.profile else {}
    weights = (model.config.loss.ot_weight, model.config.loss.ac_weight)
    model.config.loss.ot_weight = model.config.loss.ac_weight = 0.0
    t_no_aux = timed(ours, device, 1, args.steps)
    model.config.loss.ot_weight, model.config.loss.ac_weight = weights
    rows = {"(b) Meerkat step (towers, OT, AC)": (t_ours, mem_ours, _padding(inputs))}
    if args.uneven:
        packed = {k: v.to(device) for k, v in model.processor.pack(items, args.seq).items()}
        peak_memory(device)
        t_packed = timed(meerkat_step_fn(model, packed), device, args.warmup, args.steps)
        rows["(c) Meerkat step, packed"] = (t_packed, peak_memory(device), _padding(packed))
    if args.compile:  # last: it changes the model in place
        model.compile_decoder()
        peak_memory(device)
        t_compiled = timed(ours, device, args.warmup, args.steps)  # the warm-up steps compile
        rows["(d) Meerkat step, compiled decoder"] = (t_compiled, peak_memory(device), _padding(inputs))

    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peak = peak_flops(name) if dtype == "bfloat16" else None

    def mfu(seconds: float) -> str:
        return f"{useful_mfu(n_params, tokens / seconds, peak):.1%}" if peak else "n/a"

    shape = f"{args.batch} samples of {min(lengths)}–{args.seq} tokens" if args.uneven else f"batch {args.batch} x {args.seq} tokens"
    settings = "".join([", 4-bit NF4 (QLoRA)" if args.qlora else "", ", gradient checkpointing" if args.checkpointing else ""])
    print(f"{name}; {args.shapes} shapes, LLM {n_params / 1e6:,.1f} M parameters, {dtype}{settings}; "
          f"{shape}; LoRA q,v r {LORA.r}; median of {args.steps} steps")
    print(f"{'':<36}{'tokens/s':>12}{'useful MFU':>12}{'peak memory':>14}{'padding':>10}")
    print(f"{'(a) transformers + peft, LLM only':<36}{tokens / t_plain:>12,.0f}{mfu(t_plain):>12}{mem_plain:>14}"
          f"{1 - tokens / (len(lengths) * max(lengths)):>10.1%}")
    for label, (seconds, memory, padding) in rows.items():
        print(f"{label:<36}{tokens / seconds:>12,.0f}{mfu(seconds):>12}{memory:>14}{padding:>10.1%}")
    print(f"ratio (b)/(a) tokens/s: {t_plain / t_ours:.2f}" + (f"; (c)/(a): {t_plain / t_packed:.2f}" if args.uneven else "")
          + (f"; (d)/(a): {t_plain / t_compiled:.2f}" if args.compile else ""))
    print(f"OT + AC share of the Meerkat step: {1 - t_no_aux / t_ours:.1%} ({(t_ours - t_no_aux) * 1e3:.1f} ms of "
          f"{t_ours * 1e3:.1f} ms; the difference of two medians, so noise can make it negative)")
    if args.profile:
        print_op_times(ops_plain, ops_ours, args.profile, device)
    if args.data:
        padded, packed = padding_share(model, args.data, args.media_root, args.batch)
        print(f"padding share of length-grouped batches of {args.data}: {padded:.1%} one sample per row, "
              f"{packed:.1%} packed")


if __name__ == "__main__":
    main()
