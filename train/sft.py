"""Supervised fine-tuning recipe for Meerkat: setup → train → save, with every step visible here.

    accelerate launch train/sft.py                       # tiny model on the procedural world, on a CPU
    accelerate launch train/sft.py --config train/configs/tiny_synth.yaml max_steps=60
    accelerate launch train/sft.py --config train/configs/meerkat7b_stage2.yaml --resume_from latest
    accelerate launch --config_file deepspeed_configs/zero2.yaml train/sft.py --config train/configs/meerkat7b_stage2.yaml

Writes under output_dir: config.yaml (resolved), metrics.jsonl (one line per logged step),
checkpoints/step_N/ (from_pretrained format + training_state.pt), final/, loss_curve.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python train/sft.py` from a clone

from meerkat import MeerkatModel  # noqa: E402
from meerkat.checkpointing import load_state, resolve_resume, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from meerkat.data import load_instructions  # noqa: E402
from meerkat.dataset import InstructionDataset, LengthGroupedSampler, padding_collate  # noqa: E402
from meerkat.features import FeatureCache  # noqa: E402
from meerkat.prompt import IGNORE_INDEX  # noqa: E402
from meerkat.training_log import MetricsLog, plot_losses  # noqa: E402
from train.config import SFTConfig, load_config  # noqa: E402


def prepare_data(cfg: SFTConfig) -> tuple[list[str], str]:
    """The training files and media root; with none configured, the procedural world (made once)."""
    if cfg.train_data:
        if not cfg.media_root:
            raise ValueError("train_data is set but media_root is not; set the folder the media paths are relative to")
        return cfg.train_data, cfg.media_root
    synth = Path(cfg.synth_dir)
    if not (synth / "train.jsonl").is_file():
        from instruct_data.cli import main as data_cli

        data_cli(["synth", "--out", str(synth), "--n", str(cfg.synth_scenes), "--seed", str(cfg.seed)])
    return [str(synth / "train.jsonl")], str(synth)


def build_loader(cfg: SFTConfig, model: MeerkatModel, files: list[str], media_root: str, num_processes: int):
    rows = load_instructions(files)
    media_tokens = {"image": model.vision.num_tokens, "audio": model.audio.num_tokens}
    # Cheap length estimate for grouping (≈3 characters per token + media tokens): no tokenising pass.
    lengths = [sum(len(t["content"]) for t in turns) // 3 + (media_tokens["image"] if image else 0)
               + (media_tokens["audio"] if audio else 0)
               for turns, image, audio in zip(rows["conversations"], rows["image"], rows["audio"])]
    features = FeatureCache(cfg.feature_cache, model.config) if cfg.feature_cache else None
    dataset = InstructionDataset(rows, model.processor, media_root, cfg.max_length, cfg.skip_bad_samples, features)
    sampler = LengthGroupedSampler(lengths, cfg.batch_size, cfg.seed, num_shards=num_processes)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=padding_collate(model.processor))
    return loader, sampler


def build_optimizer(cfg: SFTConfig, model: MeerkatModel, total_steps: int):
    """AdamW with its own learning rate for the projectors (group 0) and one for LoRA (group 1)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    projectors = [p for n, p in trainable if "projector" in n]
    others = [p for n, p in trainable if "projector" not in n]
    groups = [{"params": projectors, "lr": cfg.projector_lr}] + ([{"params": others, "lr": cfg.lr}] if others else [])
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)


def batches(loader, sampler: LengthGroupedSampler, consumed: int, per_epoch: int):
    """Endless micro-batches for this process, starting after `consumed` sampler batches (all processes)."""
    epoch, skip = divmod(consumed, per_epoch)
    while True:
        sampler.start_epoch(epoch, skip)
        yield from loader
        epoch, skip = epoch + 1, 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a YAML file in train/configs/; without it the tiny preset on the procedural world")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(args.config, overrides)
    out = Path(cfg.output_dir)

    accelerator = Accelerator(
        # cpu=True without a GPU: `accelerate launch --multi_gpu --num_processes 2` then runs 2 CPU processes
        cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
        log_with="tensorboard" if importlib.util.find_spec("tensorboard") else None, project_dir=str(out),
        # batches may lack a modality, leaving its projector unused for a step
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if accelerator.state.deepspeed_plugin is not None:  # "auto" cannot be read off a batch-sampler loader
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
    set_seed(cfg.seed)
    model = MeerkatModel.build(cfg.model_config())
    if cfg.init_from:
        model.load_trained_weights(cfg.init_from, adapter_required=False)
    if cfg.gradient_checkpointing:
        model.llm.gradient_checkpointing_enable()
        model.llm.enable_input_require_grads()
    if accelerator.is_main_process:
        prepare_data(cfg)  # may generate the procedural world: one process does it, the others wait
    accelerator.wait_for_everyone()
    files, media_root = prepare_data(cfg)
    loader, sampler = build_loader(cfg, model, files, media_root, accelerator.num_processes)
    optimizer, scheduler = build_optimizer(cfg, model, cfg.max_steps)

    step, consumed = 0, 0
    if cfg.resume_from:
        resume = resolve_resume(out / "checkpoints", cfg.resume_from)
        if accelerator.state.deepspeed_plugin is not None:
            raise ValueError("resume_from does not work under DeepSpeed yet: its optimizer state holds DeepSpeed "
                             "objects that weights-only loading refuses; start a new run with init_from=<checkpoint> "
                             "(trained weights, fresh optimizer) or resume without DeepSpeed")
        state = load_state(resume)
        model.load_trained_weights(resume)
        step, consumed = state["step"], state["consumed"]
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if cfg.resume_from:  # into the prepared optimizer and scheduler, the ones that step
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        accelerator.print(f"resumed from {resume} at step {step}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
    # one writer: the main process (a resumed run first drops log lines past its checkpoint)
    log = MetricsLog(out / "metrics.jsonl", resume_step=step if cfg.resume_from else None) if accelerator.is_main_process else None
    accelerator.init_trackers("meerkat", config={k: v for k, v in vars(cfg).items() if isinstance(v, (int, float, str, bool))})
    per_epoch = len(sampler.batches())
    stream = batches(loader, sampler, consumed, per_epoch)
    trained = accelerator.unwrap_model(model)

    def save(at: int) -> None:
        accelerator.wait_for_everyone()
        weights = accelerator.get_state_dict(model)  # every process takes part: ZeRO-3 gathers its shards here
        if accelerator.is_main_process:
            state = {"step": at, "consumed": consumed, "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "rng": rng_state()}
            save_checkpoint(out / "checkpoints", at, trained, state, cfg.keep_last, weights)
        accelerator.wait_for_everyone()

    model.train()
    progress = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_main_process, desc="train")
    skipped = cut = 0
    while step < cfg.max_steps:
        started, sums, tokens, slots = time.perf_counter(), torch.zeros(4), 0, 0
        for _ in range(cfg.grad_accum):
            batch = next(stream)
            consumed += accelerator.num_processes
            skipped += int(accelerator.gather(batch.pop("skipped")).sum())
            cut += int(accelerator.gather(batch.pop("cut")).sum())
            # LM loss = sum over the global batch's answer tokens / their count, however it is split
            answer_tokens = accelerator.gather((batch["labels"] != IGNORE_INDEX).sum()).sum()
            with accelerator.accumulate(model):
                output = model(**batch, num_items_in_batch=answer_tokens / accelerator.num_processes)
                parts = torch.stack([output.loss, output.lm_loss, output.ot_loss, output.ac_loss]).detach()
                parts = accelerator.reduce(parts, "mean")
                if not torch.isfinite(parts[0]):
                    save(step)
                    raise SystemExit(f"non-finite loss {parts.tolist()} at step {step + 1}; state saved at step {step} "
                                     f"in {out / 'checkpoints'}; lower the learning rate or check the data")
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:  # DeepSpeed clips inside its engine and returns None here
                    grad_norm = accelerator.clip_grad_norm_(trained.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            sums += parts.cpu() / cfg.grad_accum
            tokens += int(accelerator.gather(batch["attention_mask"].sum()).sum())
            slots += int(accelerator.gather(torch.tensor(batch["attention_mask"].numel(), device=accelerator.device)).sum())
        step += 1
        progress.update()
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            entry = {"step": step, **dict(zip(("loss", "lm_loss", "ot_loss", "ac_loss"), sums.tolist())),
                     "lr": scheduler.get_last_lr()[-1], "projector_lr": scheduler.get_last_lr()[0],
                     "grad_norm": float(grad_norm) if grad_norm is not None else None, "tokens_per_s": tokens / (time.perf_counter() - started),
                     "padding_share": 1 - tokens / max(slots, 1), "skipped_samples": skipped, "cut_contexts": cut}
            if accelerator.is_main_process:
                log.write(entry)
                progress.set_postfix(loss=f"{entry['loss']:.3f}")
            accelerator.log({k: v for k, v in entry.items() if k != "step"}, step=step)
        if step % cfg.save_every == 0 or step == cfg.max_steps:
            save(step)
    progress.close()
    weights = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        trained.save_pretrained(out / "final", state_dict=weights)
        plot_losses(log.read(), out / "loss_curve.png")
        accelerator.print(f"done: {step} steps; final weights in {out / 'final'}, log {out / 'metrics.jsonl'}, "
                          f"curve {out / 'loss_curve.png'}")
    accelerator.end_training()


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # configuration and data errors: the message says what to fix
        sys.exit(f"error: {e}")
