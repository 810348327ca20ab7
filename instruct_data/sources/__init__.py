"""The supported sources, one module each, imported on demand (`get_source`)."""

from __future__ import annotations

import importlib
from types import ModuleType

SOURCE_NAMES = (
    "vggss", "flickr_soundnet", "avsbench", "audioset_strong", "ave", "llp",
    "music_avqa", "avqa", "valor", "audiocaps", "clotho", "vggsound", "synth",
)


def get_source(name: str) -> ModuleType:
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown source {name!r}; supported: {', '.join(SOURCE_NAMES)} (see `sources`)")
    return importlib.import_module(f"instruct_data.sources.{name}")
