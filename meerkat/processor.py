"""From a conversation with its image, audio and box to the tensors `MeerkatModel.forward` takes."""

from __future__ import annotations

import heapq
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
            if not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(f"box {list(box)} has no area (x1 = x2 or y1 = y2): AVACE needs the patches it "
                                 "covers; give the object's extent or no box")
            item["box"] = torch.tensor(box, dtype=torch.float32)
        encoded = encode_chat(self.tokenizer, conversations, num_image_tokens=self.num_image_tokens,
                              num_audio_tokens=self.num_audio_tokens * num_clips,
                              add_generation_prompt=add_generation_prompt,
                              system=self.system if system is OWN_SYSTEM else system)
        item["input_ids"] = torch.tensor(encoded.input_ids)
        item["labels"] = torch.tensor(encoded.labels)
        return item

    def collate(self, items: list[dict[str, torch.Tensor]], padding_side: str = "right") -> dict[str, torch.Tensor]:
        """Pad a list of `encode` outputs into a batch, one sample per row; media are stacked in sample order."""
        return self._layout([[item] for item in items], padding_side)

    def pack(self, items: list[dict[str, torch.Tensor]], row_length: int) -> dict[str, torch.Tensor]:
        """Pack `encode` outputs into few, evenly filled rows of at most `row_length` tokens (`pack_rows`),
        so that a batch of uneven samples is not padded to its longest. Each sample keeps its own
        positions (`position_ids` restart at 0) and attends only to itself: with `position_ids` and no
        attention mask the LLM builds that block-diagonal mask itself (varlen kernels under
        flash-attention). `sample_index` (rows, length) names each token's sample, -1 for padding;
        boxes and media follow the packed order."""
        rows = [[items[i] for i in row] for row in pack_rows([len(item["input_ids"]) for item in items], row_length)]
        return self._layout(rows, "right", packed=True)

    def _layout(self, rows: list[list[dict]], padding_side: str, packed: bool = False) -> dict[str, torch.Tensor]:
        used = [sum(len(item["input_ids"]) for item in row) for row in rows]  # tokens per row
        length = max(used)
        items = [item for row in rows for item in row]
        pad_id = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.full((len(rows), length), pad_id),
            "labels": torch.full((len(rows), length), IGNORE_INDEX),
            "boxes": torch.zeros(len(items), 4),
            "box_mask": torch.zeros(len(items), dtype=torch.bool),
        }
        if packed:  # padding gets positions 0, 1, … too: a sample of its own that nothing attends to
            batch["position_ids"] = torch.zeros(len(rows), length, dtype=torch.long)
            batch["sample_index"] = torch.full((len(rows), length), -1)
        else:
            batch["attention_mask"] = torch.zeros(len(rows), length, dtype=torch.long)
        sample = 0
        for r, row in enumerate(rows):
            start = 0 if padding_side == "right" else length - used[r]
            for item in row:
                span = slice(start, start + len(item["input_ids"]))
                batch["input_ids"][r, span] = item["input_ids"]
                batch["labels"][r, span] = item["labels"]
                if packed:
                    batch["position_ids"][r, span] = torch.arange(span.stop - span.start)
                    batch["sample_index"][r, span] = sample
                else:
                    batch["attention_mask"][r, span] = 1
                if "box" in item:
                    batch["boxes"][sample] = item["box"]
                    batch["box_mask"][sample] = True
                start, sample = span.stop, sample + 1
            if packed:
                batch["position_ids"][r, used[r]:] = torch.arange(length - used[r])
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


def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` in rows of at most `capacity` tokens, laid out for the fewest padded slots
    (rows × longest row): for each row count from the fewest the total allows, fill the rows evenly —
    longest first, each into the emptiest row (LPT scheduling) — and keep the count that pads least."""
    for index, length in enumerate(lengths):
        if length > capacity:
            raise ValueError(f"sample {index} has {length} tokens, more than a packed row of {capacity}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best: list[list[int]] = []
    best_slots = None
    for count in range(max(1, -(-sum(lengths) // capacity)), len(lengths) + 1):
        rows: list[list[int]] = [[] for _ in range(count)]
        emptiest = [(0, row) for row in range(count)]  # a heap of (fill, row)
        for index in order:
            fill, row = heapq.heappop(emptiest)
            rows[row].append(index)
            heapq.heappush(emptiest, (fill + lengths[index], row))
        longest = max(fill for fill, _ in emptiest)
        if longest <= capacity and (best_slots is None or count * longest < best_slots):
            best, best_slots = rows, count * longest
        if best_slots == sum(lengths):
            break
    return best


def _check_placeholder(text: str, token: str, media: Any) -> None:
    count = text.count(token)
    if media is not None and count != 1:
        raise ValueError(f"the conversation must hold exactly one {token} placeholder for the given media, found {count}")
    if media is None and count:
        raise ValueError(f"the conversation holds {count} {token} placeholder(s) but no {token[1:-1]} was given")
