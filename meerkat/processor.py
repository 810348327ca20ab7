"""From a conversation with its image, audio and box to the tensors `MeerkatModel.forward` takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from meerkat.config import AudioConfig
from meerkat.grounding import format_box
from meerkat.media import fit_to_clip, load_audio, load_image
from meerkat.prompt import DEFAULT_SYSTEM, IGNORE_INDEX, encode_chat
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN

OWN_SYSTEM = object()  # `system=` default: the processor's own system prompt


@dataclass
class MeerkatProcessor:
    tokenizer: PreTrainedTokenizerBase
    image_transform: Callable
    num_image_tokens: int
    num_audio_tokens: int
    audio: AudioConfig
    system: str | None = DEFAULT_SYSTEM  # the model's system prompt (None: the prompt has no <<SYS>> block)

    def encode(self, conversations: list[dict], image: Any = None, audio: Any = None, box: Any = None,
               add_generation_prompt: bool = False, system: str | None | object = OWN_SYSTEM,
               image_features: torch.Tensor | None = None, audio_features: torch.Tensor | None = None,
               ) -> dict[str, torch.Tensor]:
        """One sample: image is a path / PIL image / array, audio a path / (array, sample_rate),
        box a normalised [x1, y1, x2, y2] used by the AVACE loss. `image_features` (tokens, width) and
        `audio_features` (clips, tokens, width) from a feature cache stand in for image and audio.
        `system` replaces the processor's own system prompt (None: none)."""
        text = " ".join(turn.get("content") or "" for turn in conversations)
        _check_placeholder(text, IMAGE_TOKEN, image if image_features is None else image_features)
        _check_placeholder(text, AUDIO_TOKEN, audio if audio_features is None else audio_features)
        item: dict[str, torch.Tensor] = {}
        num_clips = 1
        if image_features is not None:
            item["image_features"] = image_features  # (tokens, width)
        elif image is not None:
            item["pixel_values"] = self.image_transform(load_image(image))  # (3, H, W)
        if audio_features is not None:
            item["audio_features"] = audio_features  # (clips, tokens, width)
            num_clips = audio_features.shape[0]
        elif audio is not None:
            item["audio_values"] = self.load_clips(audio)  # (clips, T)
            num_clips = item["audio_values"].shape[0]
        if box is not None:
            format_box(box)  # raises a ValueError naming the box when it is not normalised
            item["box"] = torch.tensor(box, dtype=torch.float32)
        encoded = encode_chat(self.tokenizer, conversations, num_image_tokens=self.num_image_tokens,
                              num_audio_tokens=self.num_audio_tokens * num_clips,
                              add_generation_prompt=add_generation_prompt,
                              system=self.system if system is OWN_SYSTEM else system)
        item["input_ids"] = torch.tensor(encoded.input_ids)
        item["labels"] = torch.tensor(encoded.labels)
        return item

    def collate(self, items: list[dict[str, torch.Tensor]], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad a list of `encode` outputs into a batch; media are stacked in sample order."""
        length = max(len(item["input_ids"]) for item in items)
        pad_id = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.full((len(items), length), pad_id),
            "attention_mask": torch.zeros(len(items), length, dtype=torch.long),
            "labels": torch.full((len(items), length), IGNORE_INDEX),
            "boxes": torch.zeros(len(items), 4),
            "box_mask": torch.zeros(len(items), dtype=torch.bool),
        }
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            span = slice(0, n) if padding_side == "right" else slice(length - n, length)
            batch["input_ids"][row, span] = item["input_ids"]
            batch["attention_mask"][row, span] = 1
            batch["labels"][row, span] = item["labels"]
            if "box" in item:
                batch["boxes"][row] = item["box"]
                batch["box_mask"][row] = True
        for key, join in (("pixel_values", torch.stack), ("audio_values", torch.cat),
                          ("image_features", torch.stack), ("audio_features", torch.cat)):
            present = [item[key] for item in items if key in item]
            if present:  # (N_images, 3, H, W), (N_clips, T), (N_images, tokens, width), (N_clips, tokens, width)
                batch[key] = join(present)
        return batch

    def load_clips(self, audio: Any) -> torch.Tensor:
        """A path or (array, rate) → (clips, clip_samples) float32 at the encoder's rate."""
        wave = fit_to_clip(load_audio(audio, self.audio.sample_rate), self.audio.clip_samples,
                           on_long=self.audio.on_long, sample_rate=self.audio.sample_rate)
        return torch.from_numpy(wave).reshape(-1, self.audio.clip_samples)


def _check_placeholder(text: str, token: str, media: Any) -> None:
    count = text.count(token)
    if media is not None and count != 1:
        raise ValueError(f"the conversation must hold exactly one {token} placeholder for the given media, found {count}")
    if media is None and count:
        raise ValueError(f"the conversation holds {count} {token} placeholder(s) but no {token[1:-1]} was given")
