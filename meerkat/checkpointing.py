"""Training checkpoints: the trained weights in the `from_pretrained` format plus what an exact resume
needs (optimizer, scheduler, RNG states, data position), written atomically, the last K kept.

    runs/x/checkpoints/step_000030/   meerkat_config.json, projectors.safetensors, adapter_model.safetensors,
                                      tokenizer files, training_state.pt
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import torch

STATE_FILE = "training_state.pt"
PREFIX = "step_"


def rng_state() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: Path, step: int, model, state: dict, keep_last: int, weights: dict | None = None) -> Path:
    """Write `root/step_<step>` through a temporary folder renamed at the end; prune older ones.
    `weights` is a full state dict gathered by the caller (sharded runs), else the model's own."""
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".{PREFIX}{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
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
