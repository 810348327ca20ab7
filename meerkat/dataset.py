"""Instruction samples → model inputs for training: media resolved under the media root, prompts fit
to the context by cutting context (never the answer), and length-grouped batches with little padding.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset as ArrowDataset
from torch.utils.data import Dataset, Sampler

from meerkat.data import decode_row
from meerkat.features import FeatureCache
from meerkat.media import MediaError, resolve_media_path
from meerkat.processor import MeerkatProcessor
from meerkat.tokenizer import AUDIO_TOKEN, IMAGE_TOKEN


class BadSampleError(ValueError):
    """A sample that cannot be turned into model inputs; the message names it."""


@dataclass
class Encoded:
    """One sample's tensors, or why it was skipped, plus whether its context was cut to fit."""

    item: dict | None
    sample_id: str
    cut: bool = False
    error: str | None = None


class InstructionDataset(Dataset):
    """Rows of `meerkat.data.load_instructions` encoded by the processor.

    A sample longer than `max_length` tokens first loses its system prompt, then its earliest
    turns; if its last question and answer alone do not fit, it is a bad sample. With
    `skip_bad_samples` bad samples come back as `Encoded(item=None, error=...)` for the collator to
    drop and count; otherwise they raise `BadSampleError` naming the sample.
    """

    def __init__(self, rows: ArrowDataset, processor: MeerkatProcessor, media_root: str | Path, max_length: int,
                 skip_bad_samples: bool = False, features: FeatureCache | None = None):
        self.rows, self.processor, self.media_root = rows, processor, Path(media_root)
        self.max_length, self.skip_bad_samples, self.features = max_length, skip_bad_samples, features

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Encoded:
        sample = decode_row(self.rows[index])
        try:
            return self._encode(sample)
        except (MediaError, FileNotFoundError, ValueError, KeyError) as e:
            message = f"{sample['location']}: sample {sample['id']}: {e}"
            if not self.skip_bad_samples:
                raise BadSampleError(message + "; fix or drop it, or pass --skip_bad_samples") from e
            return Encoded(None, sample["id"], error=message)

    def _encode(self, sample: dict) -> Encoded:
        if self.features is not None:  # cached encoder outputs instead of media files
            media = {f"{key}_features": self.features.get(key, sample[key]) for key in ("image", "audio") if sample.get(key)}
        else:
            media = {key: resolve_media_path(self.media_root, sample[key]) for key in ("image", "audio") if sample.get(key)}
        boxes = (sample.get("grounding") or {}).get("boxes") or []
        for cut, (turns, system) in enumerate(_shorter_contexts(sample["conversations"], self.processor.system)):
            item = self.processor.encode(turns, box=boxes[0] if boxes else None, system=system, **media)
            if len(item["input_ids"]) <= self.max_length:
                return Encoded(item, sample["id"], cut=cut > 0)
        raise ValueError(f"{len(item['input_ids'])} tokens even with the context cut to the last question and its "
                         f"answer; max_length is {self.max_length}")


PLACEHOLDERS = re.compile(f"(?:{re.escape(IMAGE_TOKEN)}|{re.escape(AUDIO_TOKEN)})\n?")  # with their newline, if any


def _shorter_contexts(turns: list[dict], system: str | None) -> Iterator[tuple[list[dict], str | None]]:
    """The conversation, then without the system prompt (if it has one), then without its earliest turns
    (the media placeholders move to the first kept question). The last answer is never cut."""
    yield turns, system
    if system:
        yield turns, None
    text = " ".join(t["content"] for t in turns)
    prefix = "".join(f"{token}\n" for token in (IMAGE_TOKEN, AUDIO_TOKEN) if token in text)
    for start in range(2, len(turns), 2):
        kept = [dict(t) for t in turns[start:]]
        question = PLACEHOLDERS.sub("", kept[0]["content"])
        kept[0]["content"] = prefix + question
        yield kept, None


def collate_encoded(processor: MeerkatProcessor, pack_length: int | None = None):
    """Collate `Encoded` items, one per row or, with `pack_length`, packed into rows of at most that many
    tokens (`MeerkatProcessor.pack`): bad ones are dropped and counted, cut ones counted."""

    def collate(encoded: list[Encoded]) -> dict:
        items = [e.item for e in encoded if e.item is not None]
        batch = {}
        if items:
            batch = processor.pack(items, pack_length) if pack_length else processor.collate(items)
        batch["skipped"] = torch.tensor(sum(e.item is None for e in encoded))
        batch["cut"] = torch.tensor(sum(e.cut for e in encoded))
        return batch

    return collate


def real_tokens(batch: dict) -> torch.Tensor:
    """(B, L) bool: the tokens of a padded or packed batch that belong to a sample."""
    return batch["sample_index"] >= 0 if "sample_index" in batch else batch["attention_mask"].bool()


class LengthGroupedSampler(Sampler[list[int]]):
    """Batches of similar length, in a random order that depends only on (seed, epoch).

    Indices are shuffled, cut into mega-batches of `group` global batches, each sorted by length and
    cut into global batches of `batch_size * num_shards`; the global batches are shuffled again and
    each is yielded as `num_shards` consecutive per-process batches, so that accelerate, which deals
    batch i to process i % num_shards, gives every process its part of the same global batch however
    many processes there are. `skip` batches are left out at the start of the epoch: that is how a
    resumed run continues exactly where it stopped.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, num_shards: int = 1, group: int = 50):
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.num_shards = num_shards
        self.epoch, self.skip = 0, 0

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        # Not named set_epoch: accelerate calls set_epoch(epoch) on batch samplers, which would reset skip.
        self.epoch, self.skip = epoch, skip

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.num_shards
        full = len(order) - len(order) % size  # every process gets a full batch; the remainder waits for the next epoch
        globals_ = []
        for start in range(0, full, size * self.group):
            chunk = sorted(order[start : min(start + size * self.group, full)], key=lambda i: self.lengths[i])
            globals_ += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(globals_)
        return [g[k * self.batch_size : (k + 1) * self.batch_size] for g in globals_ for k in range(self.num_shards)]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.skip :]

    def __len__(self) -> int:
        size = self.batch_size * self.num_shards
        return len(self.lengths) // size * self.num_shards - self.skip
