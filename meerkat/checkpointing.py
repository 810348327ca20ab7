"""Training checkpoints: the trained weights in the `from_pretrained` format plus what an exact resume
needs (optimizer, scheduler, RNG states, data position), written atomically, the last K kept.

    runs/x/checkpoints/step_000030/   meerkat_config.json, projectors.safetensors, adapter_model.safetensors,
                                      tokenizer files, training_state.pt
                                      rng_rank000.pt, …: each process's RNG states
                                      [optimizer_rank000.pt, … under DeepSpeed ZeRO: each process's partition]
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import torch

STATE_FILE = "training_state.pt"
PREFIX = "step_"
SHARD = "optimizer_rank{:03d}.pt"
RNG_SHARD = "rng_rank{:03d}.pt"


def rng_state() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def staging(root: Path, step: int) -> Path:
    """The folder a checkpoint is written into before its atomic rename; the main process creates it
    empty, then every process may add its optimizer shard."""
    return root / f".{PREFIX}{step:06d}.tmp"


def start_checkpoint(root: Path, step: int) -> Path:
    tmp = staging(root, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_optimizer_shard(root: Path, step: int, rank: int, optimizer_state: dict) -> None:
    torch.save(optimizer_state, staging(root, step) / SHARD.format(rank))


def save_rng_shard(root: Path, step: int, rank: int) -> None:
    """This process's RNG states: each process draws its own dropout masks, so each resumes from its own."""
    torch.save(rng_state(), staging(root, step) / RNG_SHARD.format(rank))


def load_rng_shard(path: Path, rank: int, state: dict) -> dict:
    """The RNG states process `rank` saved, else (checkpoints from before they were saved per process,
    or a process that did not exist) the main process's, from `state`."""
    file = path / RNG_SHARD.format(rank)
    return torch.load(file, map_location="cpu", weights_only=True) if file.is_file() else state["rng"]


def save_checkpoint(root: Path, step: int, model, state: dict, keep_last: int, weights: dict | None = None,
                    started: bool = False) -> Path:
    """Write `root/step_<step>` through its staging folder (`started`: the processes' RNG and optimizer
    shards are already in it), renamed at the end; prune older ones. `weights` is a full state dict gathered by
    the caller (sharded runs), else the model's own."""
    final = root / f"{PREFIX}{step:06d}"
    tmp = staging(root, step) if started else start_checkpoint(root, step)
    model.save_pretrained(tmp, state_dict=weights)
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old)
    return final


def checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored)."""
    return sorted(p for p in root.glob(f"{PREFIX}*") if (p / STATE_FILE).is_file())


def resolve_resume(root: Path, resume_from: str) -> Path:
    """`latest` → the newest complete checkpoint under root; otherwise the folder given."""
    if resume_from == "latest":
        found = checkpoints(root)
        if not found:
            raise FileNotFoundError(f"--resume_from latest: no checkpoint under {root}")
        return found[-1]
    path = Path(resume_from)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume_from {path}: not a training checkpoint ({STATE_FILE} missing)")
    return path


def load_state(path: Path) -> dict:
    # python's RNG state is a tuple of ints, which weights_only loading accepts
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


def load_optimizer_shards(path: Path, world_size: int) -> list[dict]:
    """Every process's ZeRO optimizer partition, in rank order, loaded weights-only: the few DeepSpeed
    types these hold (loss scaler, stage enum, fragment addresses) are allowed by name, nothing else."""
    files = [path / SHARD.format(rank) for rank in range(world_size)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        found = sorted(f.name for f in path.glob(SHARD.replace("{:03d}", "*")))
        raise FileNotFoundError(f"{path}: optimizer shards {missing} missing (found {found or 'none'}); a ZeRO "
                                f"checkpoint resumes only with the process count and DeepSpeed setting that saved it")
    with torch.serialization.safe_globals(_deepspeed_types()):
        return [torch.load(f, map_location="cpu", weights_only=True) for f in files]


def _deepspeed_types() -> list:
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
