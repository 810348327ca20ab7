"""The recipe's configuration: one dataclass, loaded from YAML, overridden by `--key value` or
`key=value` on the command line (`model.loss.ot_weight=0`, `max_steps=100`)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from meerkat.config import MeerkatConfig, dataclass_from_dict, get_preset


@dataclass
class SFTConfig:
    # model: a preset, deep-merged with `model` overrides (any MeerkatConfig field)
    preset: str = "tiny"
    model: dict = field(default_factory=dict)
    init_from: str | None = None  # a checkpoint whose trained weights start this run (stage 1 → stage 2)
    # data: JSONL files under media_root; with none given, the procedural world is generated in synth_dir
    train_data: list[str] = field(default_factory=list)
    media_root: str | None = None
    # only these tasks' samples: "arig", or "avqa:where" for one question (or AVFC fact) type; empty: all
    train_tasks: list[str] = field(default_factory=list)
    synth_dir: str = "data/synth"
    synth_scenes: int = 400
    max_length: int = 512
    # pack each batch's samples into rows of up to max_length tokens instead of padding every row to the
    # longest; samples still attend only to themselves (see MeerkatProcessor.pack)
    packing: bool = False
    skip_bad_samples: bool = False
    feature_cache: str | None = None  # a folder from train/extract_features.py: encoder outputs instead of media
    # optimisation
    batch_size: int = 4  # per process
    grad_accum: int = 1
    max_steps: int = 30
    lr: float = 2e-4  # LoRA
    projector_lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 3
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16
    # true (every decoder layer), false, n (every n-th layer), or "auto": as few layers as make the step's
    # estimated memory (train/memory.py) fit in 90 % of the budget
    gradient_checkpointing: bool | int | str = "auto"
    memory_budget_gib: float | None = None  # what a step may use; default the GPU's free memory (on a CPU: auto is off)
    compile: bool = False  # torch.compile the LLM's decoder (MeerkatModel.compile_decoder)
    seed: int = 0
    # output
    output_dir: str = "runs/tiny"
    log_every: int = 1
    save_every: int = 10
    keep_last: int = 2  # 0 keeps every checkpoint
    resume_from: str | None = None  # "latest" or a checkpoint folder

    def __post_init__(self):
        for name, least in (("batch_size", 1), ("grad_accum", 1), ("max_steps", 0), ("max_length", 1),
                            ("log_every", 1), ("save_every", 1), ("keep_last", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"train config.{name}: must be at least {least}, got {getattr(self, name)}")
        if self.mixed_precision is False:  # YAML reads `no` as false
            self.mixed_precision = "no"
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision: expected no, bf16 or fp16, got {self.mixed_precision!r}")
        setting = self.gradient_checkpointing
        if setting not in (True, False, "auto") and not (type(setting) is int and setting > 0):
            raise ValueError(f"gradient_checkpointing: expected true, false, auto or a positive n (every n-th "
                             f"decoder layer), got {setting!r}")

    def model_config(self) -> MeerkatConfig:
        merged = _deep_merge(get_preset(self.preset).to_dict(), self.model)
        return MeerkatConfig.from_dict(merged)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _set(data: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")  # `key=value`, `model.loss.ot_weight=0`: an override, not a flag's value


def load_config(path: str | None, overrides: list[str]) -> SFTConfig:
    """YAML file (optional) then overrides: "key=value", "--key value", or "--key" alone (true); values
    parse as YAML."""
    data = yaml.safe_load(Path(path).read_text()) if path else {}
    data = data or {}
    pairs, rest = [], list(overrides)
    while rest:
        token = rest.pop(0)
        if "=" in token:
            key, _, value = token.lstrip("-").partition("=")
        elif token.startswith("--"):  # a flag followed by another option (--key, key=value), or by nothing, means true
            flag = not rest or rest[0].startswith("--") or OVERRIDE.match(rest[0])
            key, value = token[2:], "true" if flag else rest.pop(0)
        else:
            raise ValueError(f"cannot read override {token!r}; write key=value or --key value")
        pairs.append((key, value))
    for key, value in pairs:
        _set(data, key, yaml.safe_load(value))
    config = dataclass_from_dict(SFTConfig, data, "train config")
    config.model_config()  # fail now, naming the key, rather than after the data is prepared
    return config
