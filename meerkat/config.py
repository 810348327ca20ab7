"""Model configuration: one dataclass per component, presets as data, JSON round trip.

    from meerkat.config import get_preset
    cfg = get_preset("tiny")          # random-init, seconds on a CPU
    cfg = get_preset("meerkat-7b")    # CLIP ViT-B/16 + CLAP HTSAT-base + Llama-2-7b-chat from local files
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


DTYPES = ("float32", "bfloat16", "float16")


def _check_dtype(value: str, where: str) -> None:
    if value not in DTYPES:
        raise ValueError(f"{where}: expected one of {', '.join(DTYPES)}, got {value!r}")


@dataclass
class VisionConfig:
    """Frozen open_clip image tower.

    `model_name` names an open_clip model config (e.g. "ViT-B-16-quickgelu"); `model_cfg`, when set,
    is an inline open_clip config dict used instead (the tiny preset). `weights` is a local open_clip
    state dict (.safetensors / .bin / .pt); None means random init from `MeerkatConfig.seed`.
    """

    model_name: str = "ViT-B-16-quickgelu"
    model_cfg: dict | None = None
    weights: str | None = None
    feature_layer: int = -2  # LLaVA's choice: the penultimate block carries more spatial detail
    use_cls: bool = False
    dtype: str = "float32"  # the frozen tower's weights and compute; "bfloat16" halves its time and memory on a GPU

    def __post_init__(self):
        _check_dtype(self.dtype, "vision.dtype")


@dataclass
class AudioConfig:
    """Frozen laion-clap HTSAT audio tower (the audio branch alone; the text branch needs the hub).

    `htsat` holds `HTSAT_Swin_Transformer` keyword arguments; `checkpoint` is a LAION-CLAP `.pt`
    whose `audio_branch.*` keys are loaded. Audio tokens are HTSAT's frame latents averaged over
    frequency and pooled to `num_tokens` time steps, so token k covers seconds
    [k, k+1) * clip_seconds / num_tokens — a grid the LLM can read time off.
    """

    htsat: dict = field(default_factory=lambda: dict(embed_dim=128, depths=[2, 2, 12, 2], num_heads=[4, 8, 16, 32]))
    checkpoint: str | None = None
    num_tokens: int = 32
    on_long: str = "reject"  # audio longer than a clip: "reject" (error) or "chunk" (several clips)
    sample_rate: int = 48_000
    clip_seconds: float = 10.0
    window_size: int = 1024
    hop_size: int = 480
    mel_bins: int = 64
    fmin: int = 50
    fmax: int = 14_000
    dtype: str = "float32"  # as VisionConfig.dtype, but not float16: loud audio overflows its log-mel filterbank

    def __post_init__(self):
        _check_dtype(self.dtype, "audio.dtype")
        if self.dtype == "float16":
            raise ValueError("audio.dtype: float16 overflows HTSAT's log-mel filterbank on loud audio (inf features); "
                             "use bfloat16 or float32")

    @property
    def clip_samples(self) -> int:
        return int(self.sample_rate * self.clip_seconds)


@dataclass
class ProjectorConfig:
    """Trainable map from encoder width to LLM width: "linear" or "mlp" (Linear-GELU-Linear).

    `standardize` scales each encoder feature to zero mean and unit variance over the data first
    (BatchNorm without affine). Random-init frozen towers (tiny, small) put most of every token in one
    direction shared by all inputs — for the tiny HTSAT 10.4 of a 10.7 norm — which a plain projector
    passes on, so the LLM sees nearly the same audio for every clip and learns to ignore it.
    """

    kind: str = "linear"
    standardize: bool = False
    # Learned codes for where each media token sits (image patch row and column, audio time step), added
    # to the tokens the LLM reads (not to those OT/AC compare). Values in a RoPE LLM carry no position, so
    # it knows where a patch is, or when an audio token sounds, only as far as the tower wrote it into the
    # token; the codes make that explicit and trainable (CLIP writes it; the small towers do less).
    positions: bool = False
    # Audio tokens attend over their image's patches (the cross-attention the AC loss supervises) and
    # carry what they find — the attended patches and the map — to the LLM (meerkat/fusion.py).
    fusion: bool = False


@dataclass
class LoraSettings:
    r: int = 32
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class LLMConfig:
    """Llama through transformers. `path` is a local HF directory (weights + tokenizer); without it the
    model is random-init from `hf_config` and the tokenizer is trained on the fly (tiny preset)."""

    path: str | None = None
    hf_config: dict | None = None
    tokenizer_vocab_size: int = 512
    dtype: str = "float32"
    load_in_4bit: bool = False
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    # Full fine-tuning: the LLM's own weights train (at `lr`) and are saved with the checkpoint. For a
    # random-init LLM (small preset), where LoRA on frozen random weights learns slowly. Not with `lora`.
    train_base: bool = False
    # Llama-2 chat's <<SYS>> block with prompt.DEFAULT_SYSTEM before the first question. Off for the small
    # preset: the fixed prefix delays a random-init LLM's learning to look things up in the image (see _small).
    system_prompt: bool = True

    def __post_init__(self):
        _check_dtype(self.dtype, "llm.dtype")


@dataclass
class LossConfig:
    """Weights and solver settings of the auxiliary losses; a weight of 0 switches a loss off."""

    ot_weight: float = 0.01
    ac_weight: float = 0.2
    ot_solver: str = "sinkhorn"  # or "proximal" (IPOT, as the official code; needs POT > 0.9.7.post1)
    ot_beta: float = 0.5  # proximal step of IPOT
    ot_reg: float = 0.02  # entropic regularisation for "sinkhorn"
    ot_iters: int = 1000  # at most; the solver stops once the marginals are within 1e-6
    ac_temperature: float = 0.1
    # How the LM loss averages: "token" (every answer token counts once: long answers dominate) or "sample"
    # (each sample's answer tokens averaged first: a "No." weighs as much as a 40-token caption).
    lm_reduction: str = "token"

    def __post_init__(self):
        if self.lm_reduction not in ("token", "sample"):
            raise ValueError(f"loss.lm_reduction: expected 'token' or 'sample', got {self.lm_reduction!r}")


@dataclass
class MeerkatConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    random_init: bool = False  # allow parts without a weights file to start random (tiny preset, benchmarks)
    seed: int = 0  # initialises every random-init part, so a checkpoint can rebuild it exactly

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MeerkatConfig:
        return dataclass_from_dict(cls, data, "config")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MeerkatConfig:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
        return dataclass_from_dict(cls, data, str(path))


def dataclass_from_dict(cls: type, data: dict, where: str) -> Any:
    """Build nested dataclasses from plain dicts (JSON, YAML, CLI overrides), rejecting unknown keys
    by name and reading numbers written as text ("1e-4", which YAML leaves a string)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        sub = _dataclass_in(hints[key])
        if sub and value is not None:
            value = dataclass_from_dict(sub, value, f"{where}.{key}")
        elif value is not None:
            value = _scalar(hints[key], value, f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    """`value` as the bool, int or float field `hint` (or its `| None`) says — numbers may come as text
    ("1e-4", which YAML leaves a string) — and a value of another type is an error naming the field, as
    is a list or mapping field given something else; one item for a list field (`train_tasks=arig`)
    is a list of one; fields of other types pass through."""
    container = typing.get_origin(hint) or hint
    if container is list and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if container is list and not isinstance(value, list):
        raise ValueError(f"{where}: expected a list ([a, b]), got {value!r}")
    if hint in (dict, dict | None) and not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    kind = next((k for k in (bool, int, float) if hint in (k, k | None)), None)
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    if kind in (int, float) and isinstance(value, str):
        try:
            value = float(value)
        except ValueError as e:
            raise ValueError(f"{where}: expected a number, got {value!r}") from e
    if kind is int and (isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value)):
        raise ValueError(f"{where}: expected a whole number, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return kind(value) if kind in (int, float) else value


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass inside `X` or `X | None`, else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None


def _tiny() -> MeerkatConfig:
    return MeerkatConfig(
        vision=VisionConfig(
            model_name="tiny-vit",
            model_cfg={
                "embed_dim": 32,
                "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
                "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
            },
            feature_layer=-1,
        ),
        audio=AudioConfig(htsat=dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]), num_tokens=16),
        llm=LLMConfig(
            hf_config=dict(
                hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=512, max_position_embeddings=1024,
            ),
            tokenizer_vocab_size=512,
            lora=LoraSettings(r=8, alpha=16, dropout=0.0),
        ),
        random_init=True,
    )


def _small() -> MeerkatConfig:
    """The demo model: tiny's frozen encoders, standardised before the projectors (else every clip looks
    alike to the LLM), and a Llama of 4 layers × 128 trained in full (random weights learn slowly through
    LoRA). The demo loads an image tower pretrained on its world into `vision.weights` (demo/encoders.py);
    without weights the towers are random, as in tiny."""
    cfg = _tiny()
    cfg.projector.standardize = True
    cfg.projector.positions = True
    cfg.llm = LLMConfig(
        hf_config=dict(
            hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=1024, max_position_embeddings=1024,
        ),
        tokenizer_vocab_size=1024,  # whole words for the prompts it reads: text ~35 % shorter than with 512
        lora=None,
        train_base=True,
        # Trained on "is there a <class>?" alone (3,232 samples, batches of 32, 500 steps), the small LLM
        # began to answer from the image (val 0.60–0.66, 2 seeds) without the 54-piece system prompt and
        # never with it (0.49–0.50, loss at chance), and each step took 1.8× longer with it.
        system_prompt=False,
    )
    return cfg


def _meerkat_7b() -> MeerkatConfig:
    return MeerkatConfig(
        vision=VisionConfig(model_name="ViT-B-16-quickgelu", weights=_env_path("MEERKAT_CLIP_WEIGHTS"), dtype="bfloat16"),
        audio=AudioConfig(checkpoint=_env_path("MEERKAT_CLAP_CHECKPOINT"), dtype="bfloat16"),
        llm=LLMConfig(path=_env_path("MEERKAT_LLAMA_DIR"), dtype="bfloat16"),
    )


def _env_path(name: str) -> str | None:
    """A path from the environment; set but empty (`MEERKAT_CLIP_WEIGHTS=`) counts as unset: as a path, ""
    would name the working folder."""
    return os.environ.get(name) or None


PRESETS = {"tiny": _tiny, "small": _small, "meerkat-7b": _meerkat_7b}


def get_preset(name: str) -> MeerkatConfig:
    """A fresh config for a named preset; the 7B file paths come from MEERKAT_* environment variables."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
