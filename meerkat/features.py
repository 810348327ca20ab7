"""Precomputed frozen-encoder outputs, stored once as safetensors shards and read back in training
instead of decoding and encoding media every epoch.

    features/index.json            {"encoders": <vision+audio config, weight files by sha256>, "image": {path: shard}, ...}
    features/image-00000.safetensors   one tensor per image path: (tokens, width)
    features/audio-00000.safetensors   one tensor per audio path: (clips, tokens, width)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from meerkat.config import MeerkatConfig
from meerkat.encoders.weights import file_digest

INDEX = "index.json"


def encoder_fingerprint(cfg: MeerkatConfig) -> dict:
    """What the cached features depend on: a cache made with other towers must not be used. Weight
    files count by content, not path: a tower retrained into the same file invalidates the cache, and
    the same file named by another path (relative, absolute, a moved checkout) does not."""
    vision, audio = asdict(cfg.vision), asdict(cfg.audio)
    vision["weights"], audio["checkpoint"] = file_digest(cfg.vision.weights), file_digest(cfg.audio.checkpoint)
    return {"vision": vision, "audio": audio, "seed": cfg.seed}


def made_with(index: dict, cfg: MeerkatConfig) -> bool:
    """Whether a cache's index was written for `cfg`'s towers (compared as the JSON it was stored as)."""
    return index["encoders"] == json.loads(json.dumps(encoder_fingerprint(cfg)))


class FeatureWriter:
    """Collects per-path tensors and writes a shard every `shard_size` entries, the index at `close`."""

    def __init__(self, root: Path, cfg: MeerkatConfig, shard_size: int = 512):
        self.root, self.shard_size = Path(root), shard_size
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = {"encoders": encoder_fingerprint(cfg), "image": {}, "audio": {}}
        self.pending: dict[str, dict[str, torch.Tensor]] = {"image": {}, "audio": {}}
        self.shards = {"image": 0, "audio": 0}

    def add(self, kind: str, path: str, tensor: torch.Tensor) -> None:
        self.pending[kind][path] = tensor.detach().cpu().contiguous()
        if len(self.pending[kind]) >= self.shard_size:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        if not self.pending[kind]:
            return
        name = f"{kind}-{self.shards[kind]:05d}.safetensors"
        save_file(self.pending[kind], str(self.root / name))
        self.index[kind].update({path: name for path in self.pending[kind]})
        self.pending[kind], self.shards[kind] = {}, self.shards[kind] + 1

    def close(self) -> None:
        for kind in ("image", "audio"):
            self._flush(kind)
        tmp = self.root / f".{INDEX}.tmp"
        tmp.write_text(json.dumps(self.index))
        tmp.replace(self.root / INDEX)  # the index appears only when every shard is written


class FeatureCache:
    """Read side: `cache.get("image", "frames/x.jpg")` → the stored tensor; shards opened lazily."""

    def __init__(self, root: str | Path, cfg: MeerkatConfig):
        self.root = Path(root)
        if not (self.root / INDEX).is_file():
            raise FileNotFoundError(f"no feature cache at {self.root} ({INDEX} missing); run train/extract_features.py")
        self.index = json.loads((self.root / INDEX).read_text())
        if not made_with(self.index, cfg):
            raise ValueError(f"the feature cache at {self.root} was made with other encoder settings than this "
                             "model's vision/audio config; extract it again")
        self._open: dict[str, object] = {}

    def get(self, kind: str, path: str) -> torch.Tensor:
        shard = self.index[kind].get(path)
        if shard is None:
            raise KeyError(f"{kind} {path!r} is not in the feature cache at {self.root}; extract it again for this data")
        if shard not in self._open:
            try:
                self._open[shard] = safe_open(str(self.root / shard), framework="pt")
            except SafetensorError as e:  # its message names no file
                raise ValueError(f"feature shard {self.root / shard} is truncated or not a safetensors file ({e}); "
                                 "extract the features again") from e
        return self._open[shard].get_tensor(path)
