"""Meerkat: frozen CLIP image tokens and CLAP audio tokens → trainable projectors → Llama with LoRA.

Read top to bottom: weight files → projector → splice → the model (forward with LM, AVOpT and AVACE
losses; save/load) → the builder that turns a `MeerkatConfig` into a model.

    from meerkat import MeerkatModel, get_preset
    model = MeerkatModel.build(get_preset("tiny"))
    batch = model.processor.collate([model.processor.encode(conversation, image=..., audio=..., box=...)])
    out = model(**batch)          # out.loss, out.lm_loss, out.ot_loss, out.ac_loss
    model.save_pretrained("ckpt") # projectors + LoRA adapter + config + tokenizer, safetensors/JSON
    model = MeerkatModel.from_pretrained("ckpt")  # base_paths={"llm.path": ...} when base weights moved
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import (LoraConfig, get_peft_model, get_peft_model_state_dict, prepare_model_for_kbit_training,
                  set_peft_model_state_dict)
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn
from transformers import (AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM,
                          PretrainedConfig, PreTrainedTokenizerBase)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from meerkat.config import MeerkatConfig
from meerkat.encoders.audio import HTSATAudioEncoder
from meerkat.encoders.vision import CLIPVisionEncoder
from meerkat.encoders.weights import file_digest, load_safetensors
from meerkat.fusion import AudioVisualFusion
from meerkat.losses.ac import audio_to_image_attention, avace_loss, box_to_patch_mask
from meerkat.losses.ot import avopt_loss
from meerkat.processor import MeerkatProcessor
from meerkat.prompt import DEFAULT_SYSTEM, IGNORE_INDEX
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN, build_tokenizer, load_tokenizer

CONFIG_FILE = "meerkat_config.json"
PROJECTOR_FILE = "projectors.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
LLM_FILE = "llm.safetensors"  # the LLM's own weights, written when `llm.train_base` fine-tunes them
BASE_FILE = "base_weights.json"  # what the base weights were (`base_fingerprint`), checked when loading

# Where each production weight file is published, for the error that lists missing ones.
PUBLISHED = {
    "vision.weights": ("MEERKAT_CLIP_WEIGHTS", "open_clip ViT-B-16 OpenAI weights (open_clip_model.safetensors), "
                       "https://huggingface.co/timm/vit_base_patch16_clip_224.openai"),
    "audio.checkpoint": ("MEERKAT_CLAP_CHECKPOINT", "LAION-CLAP HTSAT-base checkpoint, e.g. "
                         "music_audioset_epoch_15_esc_90.14.pt, https://huggingface.co/lukewys/laion_clap"),
    "llm.path": ("MEERKAT_LLAMA_DIR", "Llama-2-7b-chat-hf directory (config, safetensors, tokenizer), "
                 "https://huggingface.co/meta-llama/Llama-2-7b-chat-hf"),
}


def _base_paths(cfg: MeerkatConfig) -> dict[str, str | None]:
    """Where the config says the base weights are, by config key."""
    return {"vision.weights": cfg.vision.weights, "audio.checkpoint": cfg.audio.checkpoint, "llm.path": cfg.llm.path}


def _with_base_paths(cfg: MeerkatConfig, paths: dict[str, str | Path | None]) -> MeerkatConfig:
    """A copy of `cfg` with base weights at `paths`, keyed as `_base_paths` (None: random init)."""
    unknown = sorted(set(paths) - set(PUBLISHED))
    if unknown:
        raise ValueError(f"base_paths: unknown key(s) {unknown}; valid keys are {sorted(PUBLISHED)}")
    cfg = copy.deepcopy(cfg)
    for key, path in paths.items():
        part, field = key.split(".")
        setattr(getattr(cfg, part), field, None if path is None else str(path))
    return cfg


def check_weight_files(cfg: MeerkatConfig, parts: tuple[str, ...] = tuple(PUBLISHED), origin: Path | None = None) -> None:
    """Raise one FileNotFoundError that lists every missing or misplaced weight file and where it is
    published; `origin` is the checkpoint config the paths came from."""
    given = _base_paths(cfg)
    problems, moved = [], []
    for key, path in ((k, given[k]) for k in parts):
        env, where = PUBLISHED[key]
        if path is None and not cfg.random_init:
            problems.append(f"  {key}: not set (set it in the config or ${env}); get {where}")
        elif path == "":
            problems.append(f"  {key}: is an empty string; set it to a path (or to null for random init)")
        elif path is not None and not Path(path).exists():
            problems.append(f"  {key}: {path} does not exist; get {where}")
            moved.append(key)
        elif path is not None:
            problems += _misplaced(key, Path(path), where)
    if "llm.path" in parts and cfg.llm.path is None and cfg.llm.hf_config is None:
        problems.append("  llm: neither llm.path nor llm.hf_config is set, so there is no LLM to build")
    if problems:
        if origin is not None:
            new = ", ".join(f"'{key}': ..." for key in moved or parts)
            flags = " ".join(f"--base {key}=PATH" for key in moved or parts)
            problems.append(f"These paths come from {origin}; if the files moved, say where they are now: "
                            f"from_pretrained(..., base_paths={{{new}}}), or {flags} to meerkat.chat and eval.run")
        raise FileNotFoundError("Meerkat cannot find its base weights:\n" + "\n".join(problems))


def _misplaced(key: str, path: Path, where: str) -> list[str]:
    """The problem with an existing base path of the wrong kind: towers are files, the LLM an HF folder."""
    if key != "llm.path":
        return [f"  {key}: {path} is a folder; set it to the weights file in it: {where}"] if path.is_dir() else []
    if not path.is_dir():
        return [f"  {key}: {path} is a file; set it to the folder that holds config.json, the weights and the tokenizer"]
    if not (path / "config.json").is_file():
        return [f"  {key}: {path} has no config.json (a Hugging Face model folder has one; Meta's original "
                f"download does not); get {where}"]
    if not any((path / name).is_file() for name in ("tokenizer.model", "tokenizer.json")):
        return [f"  {key}: {path} has no tokenizer.model or tokenizer.json; get them with {where}"]
    return []


def base_fingerprint(cfg: MeerkatConfig) -> dict:
    """What the base weights are, so that a checkpoint can tell they are still those it was trained on:
    tower files by content, as the feature cache counts them; the LLM folder by its config.json and the
    names and sizes of its weight files (hashing 13 GB would take minutes); None for a random-init part,
    which the checkpoint's config (seed and settings) rebuilds."""
    llm = None
    if cfg.llm.path is not None:
        folder = Path(cfg.llm.path)
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        llm = {"config.json": file_digest(folder / "config.json"), "weights": {f.name: f.stat().st_size for f in weights}}
    return {"vision.weights": file_digest(cfg.vision.weights), "audio.checkpoint": file_digest(cfg.audio.checkpoint),
            "llm.path": llm}


def _check_same_base(checkpoint: Path, cfg: MeerkatConfig, now: dict) -> None:
    """Refuse base weights other than those `checkpoint` recorded (checkpoints from before the record pass)."""
    if not (checkpoint / BASE_FILE).is_file():
        return
    saved, now, paths = json.loads((checkpoint / BASE_FILE).read_text()), json.loads(json.dumps(now)), _base_paths(cfg)
    changed = []
    for key in (k for k in saved if saved[k] != now.get(k)):
        if saved[key] is None:
            changed.append(f"  {key}: trained on random-init weights, now given {paths[key]}")
        elif now.get(key) is None:
            changed.append(f"  {key}: trained on a weights file, now random init")
        else:
            changed.append(f"  {key}: {paths[key]} holds other weights than it was trained on")
    if changed:
        raise ValueError(f"{checkpoint} was trained on other base weights than these ({BASE_FILE} records them):\n"
                         + "\n".join(changed) + "\nPoint base_paths (--base) at the weights it was trained on")


class PositionCodes(nn.Module):
    """Learned codes for a media token's place on its grid — (row, column) of an image patch, the time
    step of an audio token — summed over the grid's axes; each axis owns its own slice of the width, so
    row 2 column 5 never looks like row 5 column 2. Sinusoids at init, so places differ from the first step.
    `leading` tokens before the grid (CLS) get no code."""

    def __init__(self, axes: tuple[int, ...], width: int, leading: int = 0):
        super().__init__()
        self.axes, self.leading = tuple(axes), leading
        bounds = torch.linspace(0, width, len(axes) + 1).long().tolist()
        self.slices = list(zip(bounds[:-1], bounds[1:]))
        self.tables = nn.ParameterList(nn.Parameter(_sinusoids(n, hi - lo)) for n, (lo, hi) in zip(axes, self.slices))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (N, leading + prod(axes), D) → same
        code = tokens.new_zeros(*self.axes, tokens.shape[-1])
        for axis, (table, (lo, hi)) in enumerate(zip(self.tables, self.slices)):
            shape = [1] * len(self.axes) + [hi - lo]
            shape[axis] = self.axes[axis]
            code[..., lo:hi] += table.to(tokens.dtype).view(shape)
        return torch.cat([tokens[:, : self.leading], tokens[:, self.leading:] + code.flatten(0, -2)], dim=1)


def _sinusoids(positions: int, width: int, scale: float = 0.1) -> torch.Tensor:
    """(positions, width) sin/cos codes at geometric frequencies (cf. "Attention Is All You Need")."""
    freqs = 1.0 / positions ** (torch.arange(0, width, 2).float() / width)
    angles = torch.arange(positions).float()[:, None] * freqs * torch.pi / 2
    return scale * torch.cat([angles.sin(), angles.cos()], dim=1)[:, :width]


class Projector(nn.Sequential):
    """Encoder width → LLM width: one Linear, or Linear-GELU-Linear ("mlp", LLaVA-1.5), optionally after
    standardising each feature (batch statistics in training, running ones — saved with the projector —
    in eval; see ProjectorConfig). With `grid`, `place` adds the tokens' position codes."""

    def __init__(self, in_dim: int, out_dim: int, kind: str, standardize: bool = False,
                 grid: tuple[int, ...] | None = None, leading: int = 0):
        if kind == "linear":
            super().__init__(nn.Linear(in_dim, out_dim))
        elif kind == "mlp":
            super().__init__(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        else:
            raise ValueError(f"unknown projector kind {kind!r}; use 'linear' or 'mlp'")
        self.layers = len(self)
        # Registered after the layers, so [0] stays the first Linear and checkpoints without them load as before.
        self.standardize = nn.BatchNorm1d(in_dim, affine=False) if standardize else None
        self.positions = PositionCodes(grid, out_dim, leading) if grid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in_dim) → (..., out_dim)
        if self.standardize is not None:
            x = self.standardize(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        for layer in list(self)[: self.layers]:
            x = layer(x)
        return x

    def place(self, tokens: torch.Tensor) -> torch.Tensor:
        """Projected (N, T, out_dim) tokens as the LLM reads them: with their position codes, if any."""
        return tokens if self.positions is None else self.positions(tokens)


def scatter_media(inputs_embeds: torch.Tensor, placeholder_mask: torch.Tensor, features: torch.Tensor,
                  name: str) -> torch.Tensor:
    """Write (N, T, D) features, in order, into the (B, L) placeholder positions of (B, L, D) embeddings."""
    expected, given = int(placeholder_mask.sum()), features.shape[0] * features.shape[1]
    if expected != given:
        raise ValueError(f"the prompts hold {expected} {name} placeholder tokens but {features.shape[0]} "
                         f"{name} input(s) × {features.shape[1]} tokens = {given} {name} features were given")
    return inputs_embeds.masked_scatter(placeholder_mask.unsqueeze(-1), features.to(inputs_embeds.dtype))


@dataclass
class MeerkatOutput:
    """The loss and its parts; `logits` are (B, L, V) without labels, and with labels only those of the
    answer positions, (answer tokens, V) in row-major order."""

    loss: torch.Tensor
    lm_loss: torch.Tensor
    ot_loss: torch.Tensor
    ac_loss: torch.Tensor
    logits: torch.Tensor


class MeerkatModel(nn.Module):
    def __init__(self, config: MeerkatConfig, vision: CLIPVisionEncoder, audio: HTSATAudioEncoder,
                 llm: nn.Module, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self.config = config
        self.vision, self.audio, self.llm, self.tokenizer = vision, audio, llm, tokenizer
        self.base_weights: dict | None = None  # `base_fingerprint`, set by `build`, saved with checkpoints
        width = llm.get_input_embeddings().embedding_dim
        projector = config.projector
        grid = projector.positions
        self.vision_projector = Projector(vision.width, width, projector.kind, projector.standardize,
                                          (vision.grid_size, vision.grid_size) if grid else None, int(vision.cfg.use_cls))
        self.audio_projector = Projector(audio.width, width, projector.kind, projector.standardize,
                                         (audio.num_tokens,) if grid else None)
        self.fusion = (AudioVisualFusion(width, vision.grid_size ** 2, config.loss.ac_temperature)
                       if projector.fusion else None)
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.audio_token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
        system = DEFAULT_SYSTEM if config.llm.system_prompt else None
        self.processor = MeerkatProcessor(tokenizer, vision.transform, vision.num_tokens, audio.num_tokens, config.audio,
                                          system)
        for encoder in (vision, audio):
            encoder.requires_grad_(False)
            encoder.eval()

    def train(self, mode: bool = True) -> MeerkatModel:
        """Frozen encoders stay in eval mode (HTSAT's SpecAugment and BatchNorm would change them)."""
        super().train(mode)
        self.vision.eval()
        self.audio.eval()
        return self

    def compile_decoder(self) -> None:
        """torch.compile the LLM's decoder layers, where a step's FLOPs are, one repeated region at a time
        (PyTorch's "regional compilation"): attention, MLP and norm each compile once and serve every
        layer, so compiling takes no longer for a deep decoder than for a shallow one, where the whole
        decoder's graph grows with its depth. The regions sit inside gradient checkpointing's wrapper,
        where a compiled layer would break its graph (bench/compile_time.py). In place (parameter names,
        so checkpoints, stay the same), dynamic shapes (batch lengths vary); the towers and OT/AC stay
        eager (POT's solver loops until it converges)."""
        for layer in self.llm.get_decoder().layers:
            for region in (layer.self_attn, layer.mlp, layer.input_layernorm, layer.post_attention_layernorm):
                region.compile(dynamic=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                audio_values: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                box_mask: torch.Tensor | None = None, num_items_in_batch: torch.Tensor | None = None,
                image_features: torch.Tensor | None = None, audio_features: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, sample_index: torch.Tensor | None = None,
                num_aux_items: torch.Tensor | None = None) -> MeerkatOutput:
        """input_ids (B, L) with expanded placeholders; pixel_values (N_images, 3, H, W) and audio_values
        (N_clips, T) in sample order; boxes (samples, 4) normalised, box_mask (samples,) marks those with one.
        `num_items_in_batch` replaces this batch's `loss_items` as what the LM loss is divided by, and
        `num_aux_items` (2,) its `aux_items` as what the OT and AC losses are (for losses that must not
        depend on how a global batch is split over processes). `image_features` (N_images,
        Ni, width) / `audio_features` (N_clips, Na, width) are cached encoder outputs that replace
        pixel_values / audio_values. A packed batch (`MeerkatProcessor.pack`) has several samples per row:
        `position_ids` restart at each and `sample_index` (B, L) names each token's sample (-1: padding);
        it has no attention_mask."""
        if sample_index is not None and attention_mask is not None:
            raise ValueError("a packed batch (sample_index) takes no attention_mask: its position_ids keep samples apart")
        if sample_index is None:  # one sample per row
            sample_index = _one_per_row(input_ids)
        inputs_embeds, is_image, is_audio, image_tokens, audio_tokens = self.embed(
            input_ids, pixel_values, audio_values, image_features, audio_features, sample_index)
        if labels is None:
            lm_loss, logits = inputs_embeds.new_zeros(()), self.llm(
                inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).logits
        else:
            lm_loss, logits = self._answer_loss(inputs_embeds, attention_mask, position_ids, labels, num_items_in_batch,
                                                sample_index)
        ot_loss, ac_loss = self._auxiliary_losses(sample_index, is_image, is_audio, image_tokens, audio_tokens, boxes,
                                                  box_mask, num_aux_items)
        weights = self.config.loss
        loss = lm_loss + weights.ot_weight * ot_loss + weights.ac_weight * ac_loss
        return MeerkatOutput(loss, lm_loss, ot_loss, ac_loss, logits)

    def _answer_loss(self, inputs_embeds, attention_mask, position_ids, labels, num_items_in_batch, sample_index):
        """Next-token loss with the vocabulary projection run on the answer positions only: the (B, L, V)
        logits are a step's largest activation, and most rows are prompt and media, which have no label.
        Same value as `transformers`' causal-LM loss for `lm_reduction="token"` (tested). No cache: with
        one, the LLM would not read packed samples out of position_ids."""
        hidden = self.llm.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                        position_ids=position_ids, use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        scored = targets != IGNORE_INDEX  # (B, L-1): position t predicts token t+1
        logits = self.llm.get_output_embeddings()(hidden[:, :-1][scored]).float()  # (answer tokens, V)
        losses = nn.functional.cross_entropy(logits, targets[scored], reduction="none")  # (answer tokens,)
        if self.config.loss.lm_reduction == "sample":
            owner = sample_index[:, 1:][scored]  # (answer tokens,) which sample each belongs to
            losses = losses / torch.bincount(owner)[owner]
        total = num_items_in_batch if num_items_in_batch is not None else self.loss_items(labels, sample_index)
        return losses.sum() / total, logits

    def loss_items(self, labels: torch.Tensor, sample_index: torch.Tensor | None = None) -> torch.Tensor:
        """What the LM loss is averaged over: answer tokens, or samples with an answer (`lm_reduction`).
        The recipe sums it over processes into `num_items_in_batch`, so the loss does not depend on how a
        global batch is split."""
        scored = labels[:, 1:] != IGNORE_INDEX
        if self.config.loss.lm_reduction == "token":
            return scored.sum()
        if sample_index is None:
            return scored.any(1).sum()
        return torch.tensor(sample_index[:, 1:][scored].unique().numel(), device=labels.device)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
              audio_values: torch.Tensor | None = None, image_features: torch.Tensor | None = None,
              audio_features: torch.Tensor | None = None, sample_index: torch.Tensor | None = None):
        """Input embeddings (B, L, D) with projected media written over the placeholders, plus the
        placeholder masks and projected tokens (without position codes or fusion) the auxiliary losses use.
        `sample_index` as in `forward` (default: one sample per row). Training and generation share it."""
        is_image = input_ids == self.image_token_id  # (B, L)
        is_audio = input_ids == self.audio_token_id  # (B, L)
        # Placeholder ids lie past the LLM vocabulary: embed them as pad, then overwrite.
        text_ids = input_ids.masked_fill(is_image | is_audio, self.tokenizer.pad_token_id)
        inputs_embeds = self.llm.get_input_embeddings()(text_ids)  # (B, L, D)
        if image_features is None and pixel_values is not None:
            image_features = self.vision(pixel_values)  # (N_images, Ni, width)
        if audio_features is None and audio_values is not None:
            audio_features = self.audio(audio_values)  # (N_clips, Na, width)
        dtype = self.vision_projector[0].weight.dtype
        image_tokens = self.vision_projector(image_features.to(dtype)) if image_features is not None else None
        audio_tokens = self.audio_projector(audio_features.to(dtype)) if audio_features is not None else None
        for mask, tokens, name in ((is_image, image_tokens, "image"), (is_audio, audio_tokens, "audio")):
            if tokens is None and mask.any():
                raise ValueError(f"the prompts hold {name} placeholders but no {name} input was given")
        placed_images = self.vision_projector.place(image_tokens) if image_tokens is not None else None
        heard = audio_tokens
        if self.fusion is not None and image_tokens is not None and audio_tokens is not None:
            heard = self._fuse(audio_tokens, image_tokens, placed_images, sample_index if sample_index is not None
                               else _one_per_row(input_ids), is_image, is_audio)
        if placed_images is not None:
            inputs_embeds = scatter_media(inputs_embeds, is_image, placed_images, "image")
        if heard is not None:
            inputs_embeds = scatter_media(inputs_embeds, is_audio, self.audio_projector.place(heard), "audio")
        return inputs_embeds, is_image, is_audio, image_tokens, audio_tokens

    def _media_counts(self, sample_index, is_image, is_audio):
        """(samples,) how many images and how many audio clips each sample holds (each expands to its
        tower's num_tokens placeholders)."""
        samples = int(sample_index.max()) + 1
        images = torch.bincount(sample_index[is_image], minlength=samples) // self.vision.num_tokens
        clips = torch.bincount(sample_index[is_audio], minlength=samples) // self.audio.num_tokens
        return images, clips

    def aux_items(self, input_ids: torch.Tensor, box_mask: torch.Tensor | None = None,
                  sample_index: torch.Tensor | None = None) -> torch.Tensor:
        """(2,) what the OT and AC losses are averaged over: samples with one image and one clip, and those
        of them with a box. The recipe sums it over processes into `num_aux_items`, like `loss_items`."""
        if sample_index is None:
            sample_index = _one_per_row(input_ids)
        images, clips = self._media_counts(sample_index, input_ids == self.image_token_id, input_ids == self.audio_token_id)
        paired = (images == 1) & (clips == 1)
        boxed = paired & box_mask if box_mask is not None else torch.zeros_like(paired)
        return torch.stack([paired.sum(), boxed.sum()])

    def _fuse(self, audio_tokens, image_tokens, placed_images, sample_index, is_image, is_audio):
        """Audio tokens after fusion with the one image of their sample (projected, and `placed_images` with
        position codes); clips of samples without exactly one image stay as they are."""
        images, clips = self._media_counts(sample_index, is_image, is_audio)
        owner = torch.repeat_interleave(torch.arange(len(clips), device=clips.device), clips)  # (clips,) their sample
        looking = images[owner] == 1
        if not looking.any():
            return audio_tokens
        image = (images.cumsum(0) - 1)[owner][looking]  # (looking clips,) index of the image each clip looks at
        leading = int(self.vision.cfg.use_cls)
        fused = audio_tokens.clone()
        fused[looking] = self.fusion(audio_tokens[looking], image_tokens[image][:, leading:],
                                     placed_images[image][:, leading:])
        return fused

    def _auxiliary_losses(self, sample_index, is_image, is_audio, image_tokens, audio_tokens, boxes, box_mask,
                          num_aux_items=None):
        """AVOpT over samples with one image and one audio clip; AVACE over those that also have a box;
        each summed and divided by `num_aux_items` when given, else averaged here. `sample_index` (B, L)
        names each token's sample; boxes and box_mask are per sample."""
        zero = self.vision_projector[0].weight.new_zeros(())
        cfg = self.config.loss
        if image_tokens is None or audio_tokens is None or (cfg.ot_weight == 0 and cfg.ac_weight == 0):
            return zero, zero
        images, clips = self._media_counts(sample_index, is_image, is_audio)
        paired = (images == 1) & (clips == 1)  # (samples,)
        if not paired.any():
            return zero, zero
        image_index = images.cumsum(0)[paired] - 1
        audio_index = clips.cumsum(0)[paired] - 1
        patches = image_tokens[image_index][:, int(self.vision.cfg.use_cls):]  # (P, grid*grid, D), CLS dropped
        sounds = audio_tokens[audio_index]  # (P, Na, D)

        def average(losses: torch.Tensor, which: int) -> torch.Tensor:
            return losses.mean() if num_aux_items is None else losses.sum() / num_aux_items[which]

        ot_loss = zero
        if cfg.ot_weight:
            ot_loss = average(avopt_loss(patches, sounds, reduction="none", solver=cfg.ot_solver, beta=cfg.ot_beta,
                                         reg=cfg.ot_reg, iters=cfg.ot_iters), 0)
        ac_loss = zero
        if cfg.ac_weight and box_mask is not None and box_mask[paired].any():
            boxed = box_mask[paired]  # (P,)
            attention = audio_to_image_attention(sounds[boxed], patches[boxed], cfg.ac_temperature)
            mask = box_to_patch_mask(boxes[paired][boxed], self.vision.grid_size)
            ac_loss = average(avace_loss(attention, mask, reduction="none"), 1)
        return ot_loss, ac_loss

    # ---- checkpoints: trainable weights only ----

    @property
    def added_modules(self) -> list[str]:
        """The modules Meerkat adds around the LLM, saved in PROJECTOR_FILE."""
        return ["vision_projector", "audio_projector"] + (["fusion"] if self.fusion is not None else [])

    def trainable_state_dict(self, state_dict: dict[str, torch.Tensor] | None = None):
        """(projector weights, LoRA adapter weights), from this model or from a full `state_dict` of
        it — which is how a DeepSpeed ZeRO-3 run hands over weights it has gathered from its shards."""
        state = self.state_dict() if state_dict is None else state_dict
        projectors = {k: v for k, v in state.items() if k.startswith(tuple(f"{name}." for name in self.added_modules))}
        llm_state = {k[len("llm."):]: v for k, v in state.items() if k.startswith("llm.")}
        adapter = get_peft_model_state_dict(self.llm, state_dict=llm_state) if self.config.llm.lora else {}
        return projectors, adapter

    def save_pretrained(self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write config (base paths made absolute, so the checkpoint loads from any folder), the record of
        the base weights, projectors, LoRA adapter and tokenizer (safetensors/JSON; no base weights)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        projectors, adapter = self.trainable_state_dict(state_dict)
        absolute = {key: os.path.abspath(p) for key, p in _base_paths(self.config).items() if p is not None}
        _with_base_paths(self.config, absolute).save(path / CONFIG_FILE)
        if self.base_weights is not None:
            (path / BASE_FILE).write_text(json.dumps(self.base_weights, indent=2) + "\n")
        save_file({k: v.detach().cpu().contiguous() for k, v in projectors.items()}, str(path / PROJECTOR_FILE))
        if adapter:
            save_file({k: v.detach().cpu().contiguous() for k, v in adapter.items()}, str(path / ADAPTER_FILE))
        if self.config.llm.train_base:
            state = self.state_dict() if state_dict is None else state_dict
            save_file({k[len("llm."):]: v.detach().cpu().contiguous() for k, v in state.items() if k.startswith("llm.")},
                      str(path / LLM_FILE))
        self.tokenizer.save_pretrained(path)

    def load_trained_weights(self, path: str | Path, adapter_required: bool = True) -> None:
        """Load a checkpoint's projectors and LoRA adapter into this (already built) model. Starting
        stage 2 from a stage-1 checkpoint (projectors only) passes `adapter_required=False`. Weights
        the config has no place for, and a tokenizer other than this model's, are errors."""
        path = Path(path)
        if load_tokenizer(path).get_vocab() != self.tokenizer.get_vocab():
            raise ValueError(f"the tokenizer saved in {path} gives other token ids than the one this config builds (a "
                             "random-init preset trains its tokenizer on the bundled corpus, which has changed since): "
                             "its weights fit its own ids only; load it as saved with MeerkatModel.from_pretrained, "
                             "or train it again")
        self._load_weights(path, adapter_required)

    def _load_weights(self, path: Path, adapter_required: bool = True) -> None:
        """`load_trained_weights` without the tokenizer check: `from_pretrained` built this model with the
        checkpoint's own tokenizer."""
        for file, setting, used in ((ADAPTER_FILE, "llm.lora is null", self.config.llm.lora),
                                    (LLM_FILE, "llm.train_base is false", self.config.llm.train_base)):
            if (path / file).is_file() and not used:
                raise ValueError(f"{path / file} holds trained weights but the config would drop them ({setting}): "
                                 "was the config edited, or the file copied from another checkpoint?")
        projectors = load_safetensors(path / PROJECTOR_FILE)
        stray = sorted(k for k in projectors if not k.startswith(tuple(f"{name}." for name in self.added_modules)))
        if stray:
            raise ValueError(f"{path / PROJECTOR_FILE} holds weights of modules this config does not build: {stray[:3]} "
                             "— was the config edited (projector.fusion?), or the file copied from another checkpoint?")
        for name in self.added_modules:
            module, prefix = getattr(self, name), f"{name}."
            _load_checked(module, {k[len(prefix):]: v for k, v in projectors.items() if k.startswith(prefix)},
                          path / PROJECTOR_FILE, prefix)
        if self.config.llm.train_base and ((path / LLM_FILE).is_file() or adapter_required):
            _load_checked(self.llm, load_safetensors(path / LLM_FILE), path / LLM_FILE)
        if self.config.llm.lora and ((path / ADAPTER_FILE).is_file() or adapter_required):
            if not (path / ADAPTER_FILE).is_file():
                raise FileNotFoundError(f"{path / ADAPTER_FILE} is missing: the config has LoRA but the checkpoint no adapter")
            adapter = load_safetensors(path / ADAPTER_FILE)
            expected = get_peft_model_state_dict(self.llm)
            _check_shapes(expected, adapter, path / ADAPTER_FILE)
            result = set_peft_model_state_dict(self.llm, adapter)
            if result.unexpected_keys:
                raise ValueError(f"{path / ADAPTER_FILE} holds keys this model does not have: {result.unexpected_keys[:5]}")

    @classmethod
    def from_pretrained(cls, path: str | Path, base_paths: dict[str, str | Path | None] | None = None) -> MeerkatModel:
        """Rebuild the base model a checkpoint's config names, with the tokenizer it saved, then load its
        trained weights. `base_paths` ({"vision.weights", "audio.checkpoint", "llm.path"}: path) says where
        base weights are now if they moved; they must be the ones the checkpoint recorded."""
        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a Meerkat checkpoint: {CONFIG_FILE} is missing")
        cfg = _with_base_paths(MeerkatConfig.load(path / CONFIG_FILE), base_paths or {})
        check_weight_files(cfg, origin=path / CONFIG_FILE)
        base = base_fingerprint(cfg)
        _check_same_base(path, cfg, base)  # before the base weights, gigabytes at 7B, are loaded
        model = cls.build(cfg, tokenizer=load_tokenizer(path), base_weights=base)
        model._load_weights(path)
        return model

    @classmethod
    def build(cls, cfg: MeerkatConfig, tokenizer: PreTrainedTokenizerBase | None = None,
              base_weights: dict | None = None) -> MeerkatModel:
        """The one builder from config to model: encoders (+ weights), tokenizer (unless given: a
        checkpoint's), LLM (+ LoRA), projectors. In training mode throughout, as a new module is:
        transformers' `from_pretrained` leaves a loaded LLM in eval mode, where gradient checkpointing
        and LoRA dropout silently do nothing. `base_weights` is `base_fingerprint(cfg)` when the caller
        has it already (hashing the tower files costs seconds at 7B)."""
        check_weight_files(cfg)
        fingerprint = base_fingerprint(cfg) if base_weights is None else base_weights
        vision, audio = build_encoders(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)  # random-init parts are a function of the config alone
            tokenizer = build_tokenizer(cfg.llm) if tokenizer is None else tokenizer
            llm = _build_llm(cfg)
            model = cls(cfg, vision, audio, llm, tokenizer)
        model.base_weights = fingerprint
        return model.train()


def _one_per_row(input_ids: torch.Tensor) -> torch.Tensor:
    """The `sample_index` of an unpacked batch: row r is sample r."""
    return torch.arange(len(input_ids), device=input_ids.device)[:, None].expand_as(input_ids)


def _check_shapes(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], path: Path, prefix: str = "") -> None:
    """A checkpoint whose config does not match its weights: name the keys (as the file has them, with
    `prefix`) and both shapes."""
    missing = sorted(set(expected) - set(given))
    wrong = [f"{prefix}{k}: file {tuple(given[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
             if k in given and given[k].shape != v.shape]
    if missing or wrong:
        raise ValueError(f"{path} does not match the model its config builds: "
                         + "; ".join(wrong[:3] + [f"missing {prefix}{k}" for k in missing[:3]])
                         + " — was the config edited, or the file copied from another checkpoint?")


def _load_checked(module: nn.Module, state: dict[str, torch.Tensor], path: Path, prefix: str = "") -> None:
    """Load `state`, whose keys the file has with `prefix`, after checking it against `module`."""
    _check_shapes(module.state_dict(), state, path, prefix)
    unexpected = sorted(set(state) - set(module.state_dict()))
    if unexpected:
        raise ValueError(f"{path} has weights this model does not have: {[prefix + k for k in unexpected[:3]]}")
    module.load_state_dict(state)


def build_encoders(cfg: MeerkatConfig) -> tuple[CLIPVisionEncoder, HTSATAudioEncoder]:
    """The frozen towers alone (with their weights), as `MeerkatModel.build` makes them: feature
    extraction needs no LLM."""
    check_weight_files(cfg, parts=("vision.weights", "audio.checkpoint"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        vision = CLIPVisionEncoder(cfg.vision)
        if cfg.vision.weights is not None:
            vision.load_weights(cfg.vision.weights)
        audio = HTSATAudioEncoder(cfg.audio)
        if cfg.audio.checkpoint is not None:
            audio.load_weights(cfg.audio.checkpoint)
    vision, audio = vision.to(getattr(torch, cfg.vision.dtype)), audio.to(getattr(torch, cfg.audio.dtype))
    return vision.requires_grad_(False).eval(), audio.requires_grad_(False).eval()


def nf4_load_kwargs(dtype: torch.dtype) -> dict:
    """`from_pretrained` arguments that load a Llama's linear layers in 4-bit NF4 (QLoRA's double-quantised
    recipe) computing in `dtype`, on the GPU, or on the CPU, where bitsandbytes runs them too (slowly:
    how the tests train QLoRA)."""
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                      bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype),
            "device_map": {"": torch.cuda.current_device() if torch.cuda.is_available() else "cpu"}}


def _local_attention(config: PretrainedConfig, where: str) -> PretrainedConfig:
    """`config`, if its attention implementation is one transformers has locally: given a hub kernel id
    ("owner/name"), transformers would download and run that repository's code."""
    chosen = config._attn_implementation
    local = ["eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()]
    for name in chosen.values() if isinstance(chosen, dict) else [chosen]:
        if name is not None and name not in local:
            raise ValueError(f"{where}: attn_implementation {name!r} is not one of transformers' local implementations "
                             f"({', '.join(local)}); Meerkat does not load attention kernels from the hub")
    return config


def _build_llm(cfg: MeerkatConfig) -> nn.Module:
    """Llama from a local HF directory (optionally 4-bit) or random-init from `hf_config`; base frozen."""
    dtype = getattr(torch, cfg.llm.dtype)
    if cfg.llm.load_in_4bit and cfg.llm.path is None:
        raise ValueError("llm.load_in_4bit needs llm.path: bitsandbytes quantises the weights it loads")
    if cfg.llm.path is not None:
        kwargs = nf4_load_kwargs(dtype) if cfg.llm.load_in_4bit else {}
        config = _local_attention(AutoConfig.from_pretrained(cfg.llm.path), str(Path(cfg.llm.path) / "config.json"))
        try:
            llm = AutoModelForCausalLM.from_pretrained(cfg.llm.path, config=config, dtype=dtype, **kwargs)
        except SafetensorError as e:  # its message names no file
            raise ValueError(f"llm.path: a weights file in {cfg.llm.path} is truncated or not a safetensors file "
                             f"({e}); download the folder again") from e
    else:
        llm = LlamaForCausalLM(_local_attention(LlamaConfig(**cfg.llm.hf_config), "llm.hf_config")).to(dtype)
    llm.requires_grad_(False)
    if cfg.llm.load_in_4bit:
        # peft's QLoRA recipe: the weights left unquantised (embeddings, norms, LM head) in float32, which
        # also makes the residual stream float32; train/sft.py turns on checkpointing and input gradients.
        llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=False)
    if cfg.llm.train_base:
        if cfg.llm.lora or cfg.llm.load_in_4bit:
            raise ValueError("llm.train_base fine-tunes the full LLM; set llm.lora to null and leave load_in_4bit off")
        llm.requires_grad_(True)
    if cfg.llm.lora:
        lora = cfg.llm.lora
        llm = get_peft_model(llm, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                             target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    return llm
