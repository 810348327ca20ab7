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
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python train/sft.py` from a clone

from meerkat import MeerkatModel  # noqa: E402
from meerkat.checkpointing import (checkpoints, load_optimizer_shards, load_rng_shard, load_state,  # noqa: E402
                                   resolve_resume, rng_state, save_checkpoint, save_optimizer_shard, save_rng_shard,
                                   set_rng_state, start_checkpoint)
from meerkat.data import load_instructions, select_tasks  # noqa: E402
from meerkat.dataset import InstructionDataset, LengthGroupedSampler, collate_encoded, real_tokens  # noqa: E402
from meerkat.features import FeatureCache  # noqa: E402
from meerkat.training_log import MetricsLog, plot_losses  # noqa: E402
from train.config import SFTConfig, load_config  # noqa: E402
from train.memory import GiB, StepMemory, choose_checkpointing, layers_text, step_memory  # noqa: E402


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


def build_loader(cfg: SFTConfig, model: MeerkatModel, files: list[str], media_root: str, num_processes: int,
                 say=print):
    rows = load_instructions(files)
    if cfg.train_tasks:
        total, rows = len(rows), select_tasks(rows, cfg.train_tasks)
        say(f"train_tasks {', '.join(cfg.train_tasks)}: {len(rows)} of {total} samples")
    media_tokens = {"image": model.vision.num_tokens, "audio": model.audio.num_tokens}
    # Cheap length estimate for grouping (≈3 characters per token + media tokens): no tokenising pass.
    lengths = [sum(len(t["content"]) for t in turns) // 3 + (media_tokens["image"] if image else 0)
               + (media_tokens["audio"] if audio else 0)
               for turns, image, audio in zip(rows["conversations"], rows["image"], rows["audio"])]
    features = FeatureCache(cfg.feature_cache, model.config) if cfg.feature_cache else None
    dataset = InstructionDataset(rows, model.processor, media_root, cfg.max_length, cfg.skip_bad_samples, features)
    sampler = LengthGroupedSampler(lengths, cfg.batch_size, cfg.seed, num_shards=num_processes)
    if len(rows) < cfg.batch_size * num_processes:
        raise ValueError(f"{len(rows)} training samples are fewer than one batch ({cfg.batch_size} per process × "
                         f"{num_processes} processes); lower batch_size or add data")
    collate = collate_encoded(model.processor, cfg.max_length if cfg.packing else None)
    # its own generator: each new iterator (every epoch, and a resumed run's first) draws a seed from it, which
    # from the global one would shift the RNG that dropout reads and make a resumed run differ from an uninterrupted one
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, generator=torch.Generator())
    return loader, sampler


def build_optimizer(cfg: SFTConfig, model: MeerkatModel, total_steps: int):
    """AdamW with its own learning rate for the projectors and the other modules Meerkat adds around the
    LLM (group 0) and one for LoRA or the LLM's own weights (group 1)."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    added = tuple(f"{name}." for name in model.added_modules)
    projectors = [p for n, p in trainable if n.startswith(added)]
    others = [p for n, p in trainable if not n.startswith(added)]
    groups = [{"params": projectors, "lr": cfg.projector_lr}] + ([{"params": others, "lr": cfg.lr}] if others else [])
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)


def longest_step_memory(cfg: SFTConfig, model: MeerkatModel, sampler: LengthGroupedSampler) -> StepMemory:
    """The estimated memory of a step over the longest samples (their length estimates err long)."""
    tokens = cfg.batch_size * min(cfg.max_length, max(sampler.lengths))
    # with a 4-bit LLM, peft's k-bit preparation keeps the residual stream, so every saved activation, in float32
    half = not model.config.llm.load_in_4bit and (cfg.mixed_precision != "no" or model.config.llm.dtype != "float32")
    return step_memory(model, model.llm.config, tokens, element_size=2 if half else 4)


def memory_budget(cfg: SFTConfig, device: torch.device) -> int | None:
    if cfg.memory_budget_gib is not None:
        return int(cfg.memory_budget_gib * GiB)
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None


def set_checkpointing(cfg: SFTConfig, model: MeerkatModel, sampler: LengthGroupedSampler, device: torch.device) -> str:
    """Gradient checkpointing on the decoder layers the config (or, for "auto", the memory estimate)
    names; returns the line that says which and why."""
    every, why = choose_checkpointing(cfg.gradient_checkpointing, longest_step_memory(cfg, model, sampler),
                                      memory_budget(cfg, device))
    if every:  # also makes the input embeddings require grad, so gradients reach LoRA through checkpoints
        model.llm.activation_checkpointing_enable(every_n_layers=every)
    layers = model.llm.config.num_hidden_layers
    return f"gradient checkpointing: {layers_text(every, layers) if every else 'off'} ({why})"


def batches(loader, sampler: LengthGroupedSampler, consumed: int, per_epoch: int) -> Iterator[dict]:
    """Endless micro-batches for this process, starting after `consumed` sampler batches (all processes)."""
    epoch, skip = divmod(consumed, per_epoch)
    while True:
        sampler.start_epoch(epoch, skip)
        yield from loader
        epoch, skip = epoch + 1, 0


def follow_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set the restored optimizer's rates to the schedule's at the restored step. The same rates when
    max_steps is unchanged; with a raised max_steps the saved ones are the old schedule's last (0 at its
    end), which the first resumed step would train at before the stretched schedule took over."""
    rates = [base * rate(scheduler.last_epoch) for base, rate in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, rates):
        group["lr"] = lr
    scheduler._last_lr = rates


def fill_deepspeed_auto(ds_config: dict, cfg: SFTConfig, hidden_size: int) -> None:
    """The `auto` values accelerate cannot fill itself: the micro-batch (it cannot read one off a
    batch-sampler loader), the clipping norm (it would put its own 1.0 there, and DeepSpeed clips inside
    its engine, so max_grad_norm would not apply) and the ZeRO bucket sizes (it looks for
    `model.config.hidden_size`, which a MeerkatModel's config does not have); sized from the LLM as
    accelerate would."""
    ds_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
    if ds_config.get("gradient_clipping") == "auto":
        ds_config["gradient_clipping"] = cfg.max_grad_norm
    zero = ds_config.get("zero_optimization", {})
    sizes = {"reduce_bucket_size": hidden_size * hidden_size, "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
             "stage3_param_persistence_threshold": 10 * hidden_size}
    zero.update({key: value for key, value in sizes.items() if zero.get(key) == "auto"})


# What a resumed run may change: how long it trains, what it logs and keeps, and how it computes a step.
# The rest (model, data, batch, optimizer, schedule, seed) made the saved optimizer state and data order.
RESUMABLE = {"max_steps", "log_every", "save_every", "keep_last", "resume_from", "output_dir", "skip_bad_samples",
             "gradient_checkpointing", "memory_budget_gib", "compile"}


def resume_point(cfg: SFTConfig) -> tuple[Path, dict] | None:
    """The checkpoint this run continues and its training state, or None for a new run. A new run may not
    start over another's checkpoints (it would prune them by name, and a later resume would pick theirs)."""
    root = Path(cfg.output_dir) / "checkpoints"
    if not cfg.resume_from:
        if found := checkpoints(root):
            raise ValueError(f"{cfg.output_dir} holds the checkpoints of an earlier run (up to {found[-1].name}); "
                             "continue it with --resume_from latest, or choose another output_dir")
        return None
    path = resolve_resume(root, cfg.resume_from)
    state = load_state(path)
    saved, now = state.get("config"), asdict(cfg)  # checkpoints written before configs were stored have none
    changed = [f"{key} {saved[key]!r} -> {now[key]!r}" for key in now
               if saved is not None and key not in RESUMABLE and key in saved and saved[key] != now[key]]
    if changed:
        raise ValueError(f"{path} was trained with other settings: {'; '.join(changed)}. A resumed run continues that "
                         "run's optimizer, schedule and data order: pass its settings, or start a new run from its "
                         f"weights with init_from={path}")
    return path, state


@dataclass
class Run:
    """What setup hands to the loop: the prepared components and where the run stands."""

    accelerator: Accelerator
    model: torch.nn.Module  # as prepared (DDP/DeepSpeed wrapped)
    trained: MeerkatModel  # the same model unwrapped, for saving and counting loss items
    optimizer: torch.optim.Optimizer
    scheduler: object
    stream: Iterator[dict]
    log: MetricsLog | None  # main process only
    step: int = 0
    consumed: int = 0  # sampler batches used by all processes: the data position a resume restarts from
    skipped: int = 0
    cut: int = 0


def setup(cfg: SFTConfig, resumed: tuple[Path, dict] | None = None) -> Run:
    deepspeed_on_cpu = os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true" and not torch.cuda.is_available()
    accelerator = Accelerator(
        # cpu=True without a GPU: `accelerate launch --multi_gpu --num_processes 2` then runs 2 CPU processes;
        # DeepSpeed runs on CPUs too (its CPU accelerator, gloo), which is how the tests check ZeRO resume
        cpu=not torch.cuda.is_available() and not deepspeed_on_cpu, mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        log_with="tensorboard" if importlib.util.find_spec("tensorboard") else None, project_dir=cfg.output_dir,
        # batches may lack a modality, leaving its projector unused for a step
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
        + ([InitProcessGroupKwargs(backend="gloo")] if deepspeed_on_cpu else []),
        # the schedule counts optimizer steps: accelerate's own stepping advances it once per process
        step_scheduler_with_optimizer=False,
    )
    set_seed(cfg.seed)
    model = MeerkatModel.build(cfg.model_config())
    if accelerator.state.deepspeed_plugin is not None:
        fill_deepspeed_auto(accelerator.state.deepspeed_plugin.deepspeed_config, cfg, model.llm.config.hidden_size)
    if cfg.init_from:
        model.load_trained_weights(cfg.init_from, adapter_required=False)
    if accelerator.is_main_process:
        prepare_data(cfg)  # may generate the procedural world: one process does it, the others wait
    accelerator.wait_for_everyone()
    loader, sampler = build_loader(cfg, model, *prepare_data(cfg), accelerator.num_processes, accelerator.print)
    accelerator.print(set_checkpointing(cfg, model, sampler, accelerator.device))
    if cfg.compile:
        model.compile_decoder()
    optimizer, scheduler = build_optimizer(cfg, model, cfg.max_steps)

    resume, state = resumed or (None, None)
    if resume is not None:
        model.load_trained_weights(resume)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if state is not None:  # into the prepared optimizer and scheduler, the ones that step
        if accelerator.state.deepspeed_plugin is not None:  # ZeRO: this process's partition, fp32 master weights included
            model.optimizer.load_state_dict(load_optimizer_shards(resume, accelerator.num_processes), load_from_fp32_weights=True)
            offload = accelerator.state.deepspeed_plugin.deepspeed_config["zero_optimization"].get("offload_optimizer", {})
            if offload.get("device", "none") != "none":
                accelerator.print("warning: with the optimizer offloaded (DeepSpeedCPUAdam) a resumed run is not exact: "
                                  "measured, its losses equal the uninterrupted run's for 2 steps, then drift (by 0.01-0.02 "
                                  "on the tiny preset); ZeRO-2 and ZeRO-3 without offload resume exactly")
        elif state["optimizer"] is None:
            raise ValueError(f"{resume} was saved under DeepSpeed ZeRO (its optimizer is split into optimizer_rank*.pt): "
                             "resume it with the same DeepSpeed config and process count, or start a new run with "
                             f"init_from={resume} (trained weights, fresh optimizer)")
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        follow_schedule(scheduler.scheduler)
        set_rng_state(load_rng_shard(resume, accelerator.process_index, state))
        accelerator.print(f"resumed from {resume} at step {state['step']}")
    step, consumed, skipped, cut = (state["step"], state["consumed"], state["skipped"], state["cut"]) if state else (0, 0, 0, 0)
    out = Path(cfg.output_dir)
    log = None
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
        # a resumed run first drops log lines past its checkpoint
        log = MetricsLog(out / "metrics.jsonl", resume_step=step if state else None)
    accelerator.init_trackers("meerkat", config={k: v for k, v in vars(cfg).items() if isinstance(v, (int, float, str, bool))})
    stream = batches(loader, sampler, consumed, len(sampler.batches()))
    return Run(accelerator, model, accelerator.unwrap_model(model), optimizer, scheduler, stream, log,
               step, consumed, skipped, cut)


def train_step(cfg: SFTConfig, run: Run) -> dict:
    """One optimizer step over `grad_accum` micro-batches; returns the step's log entry."""
    accelerator, model = run.accelerator, run.model
    started, sums, tokens, slots, grad_norm = time.perf_counter(), torch.zeros(4), 0, 0, None
    micro_batches = []
    for _ in range(cfg.grad_accum):
        batch = next(run.stream)
        run.consumed += accelerator.num_processes
        run.skipped += int(accelerator.gather(batch.pop("skipped")).sum())
        run.cut += int(accelerator.gather(batch.pop("cut")).sum())
        if "input_ids" not in batch:
            raise ValueError(f"every sample of a batch was skipped as bad (step {run.step + 1}); "
                             "check the data with `python -m instruct_data validate`")
        micro_batches.append(batch)
    # LM loss = sum over the step's samples (every micro-batch of every process) / their answer tokens
    # (or samples), however they are split; OT and AC likewise over the paired and boxed samples. The
    # divisors are scaled by processes × grad_accum, which DDP's gradient mean and accelerate's
    # loss / grad_accum divide back out.
    items = sum(accelerator.gather(run.trained.loss_items(b["labels"], b.get("sample_index"))).sum() for b in micro_batches)
    aux = sum(accelerator.gather(run.trained.aux_items(b["input_ids"], b.get("box_mask"), b.get("sample_index"))[None]).sum(0)
              for b in micro_batches)
    shares = accelerator.num_processes * cfg.grad_accum
    for batch in micro_batches:
        with accelerator.accumulate(model):
            output = model(**batch, num_items_in_batch=items / shares, num_aux_items=aux.clamp(min=1) / shares)
            parts = accelerator.reduce(torch.stack([output.loss, output.lm_loss, output.ot_loss, output.ac_loss]).detach(), "mean")
            if not torch.isfinite(parts[0]):
                save(cfg, run)
                raise SystemExit(f"non-finite loss {parts.tolist()} at step {run.step + 1}; state saved at step "
                                 f"{run.step} in {cfg.output_dir}/checkpoints; check the data, or train on from those "
                                 f"weights with a lower learning rate (a new run, init_from=that checkpoint)")
            accelerator.backward(output.loss)
            if accelerator.sync_gradients:  # DeepSpeed clips inside its engine (at max_grad_norm) and returns its norm
                grad_norm = accelerator.clip_grad_norm_(run.trained.parameters(), cfg.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad()
        sums += parts.cpu() / cfg.grad_accum  # each part is grad_accum × its share of the step loss
        real = real_tokens(batch)
        tokens += int(accelerator.gather(real.sum()).sum())
        slots += int(accelerator.gather(torch.tensor(real.numel(), device=accelerator.device)).sum())
    lrs = run.scheduler.get_last_lr()  # what this step trained with, before the schedule moves on
    run.scheduler.step()
    run.step += 1
    return {"step": run.step, **dict(zip(("loss", "lm_loss", "ot_loss", "ac_loss"), sums.tolist())),
            "lr": lrs[1] if len(lrs) > 1 else None,  # LoRA's (or the LLM's); none when only the projectors train
            "projector_lr": lrs[0], "grad_norm": None if grad_norm is None else float(grad_norm),
            "tokens_per_s": tokens / (time.perf_counter() - started), "padding_share": 1 - tokens / max(slots, 1),
            "skipped_samples": run.skipped, "cut_contexts": run.cut}


def save(cfg: SFTConfig, run: Run) -> None:
    """A checkpoint at the current step; every process must call it (ZeRO-3 gathers shards here, each
    process writes its own RNG states and, under ZeRO, its own optimizer partition)."""
    accelerator, root = run.accelerator, Path(cfg.output_dir) / "checkpoints"
    sharded = accelerator.state.deepspeed_plugin is not None
    accelerator.wait_for_everyone()
    weights = accelerator.get_state_dict(run.model)
    if accelerator.is_main_process:
        start_checkpoint(root, run.step)
    accelerator.wait_for_everyone()
    save_rng_shard(root, run.step, accelerator.process_index)
    if sharded:
        save_optimizer_shard(root, run.step, accelerator.process_index, run.optimizer.state_dict())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"step": run.step, "consumed": run.consumed, "skipped": run.skipped, "cut": run.cut,
                 "optimizer": None if sharded else run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                 "rng": rng_state(), "config": asdict(cfg)}
        save_checkpoint(root, run.step, run.trained, state, cfg.keep_last, weights, started=True)
    accelerator.wait_for_everyone()


def finish(cfg: SFTConfig, run: Run) -> None:
    weights = run.accelerator.get_state_dict(run.model)
    if run.accelerator.is_main_process:
        out = Path(cfg.output_dir)
        run.trained.save_pretrained(out / "final", state_dict=weights)
        plot_losses(run.log.read(), out / "loss_curve.png")
        run.accelerator.print(f"done: {run.step} steps; final weights in {out / 'final'}, log {out / 'metrics.jsonl'}, "
                              f"curve {out / 'loss_curve.png'}")
    run.accelerator.end_training()


def main(argv: list[str] | None = None) -> None:
    keys = ", ".join(f"{f.name} ({f.default!r})" if f.default is not MISSING else f.name for f in fields(SFTConfig))
    epilog = textwrap.fill(f"Overrides follow the options as key=value, --key value, or --key alone (true); model "
                           f"fields nest (model.loss.ot_weight=0). Keys (defaults): {keys}", width=100)
    parser = argparse.ArgumentParser(description=__doc__, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a YAML file in train/configs/; without it the tiny preset on the procedural world")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(args.config, overrides)
    resumed = resume_point(cfg)
    if resumed and resumed[1]["step"] >= cfg.max_steps:
        if os.environ.get("RANK", "0") == "0":
            print(f"{resumed[0]} is at step {resumed[1]['step']} and max_steps is {cfg.max_steps}: nothing to train "
                  "(raise max_steps to train on)")
        return
    run = setup(cfg, resumed)
    run.model.train()
    main_process = run.accelerator.is_main_process
    for _ in tqdm(range(run.step, cfg.max_steps), initial=run.step, total=cfg.max_steps, desc="train", disable=not main_process):
        entry = train_step(cfg, run)
        if run.step % cfg.log_every == 0 or run.step == cfg.max_steps:
            if main_process:
                run.log.write(entry)
            run.accelerator.log({k: v for k, v in entry.items() if k != "step" and v is not None}, step=run.step)
        if run.step % cfg.save_every == 0 or run.step == cfg.max_steps:
            save(cfg, run)
    finish(cfg, run)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # configuration and data errors: the message says what to fix
        sys.exit(f"error: {e}")
