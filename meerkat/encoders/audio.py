"""Frozen CLAP HTSAT audio tower (laion-clap's audio branch alone) that returns time-aligned tokens."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from meerkat.config import AudioConfig
from meerkat.encoders.weights import load_matching, load_state_dict_file, take_prefixed

# laion-clap's HTSAT imports `timm.models.layers` (deprecated) and calls torch.meshgrid without `indexing`:
# warnings about its code, not the user's, which would open the output of every command
CLAP_WARNINGS = ("Importing from timm.models.layers is deprecated", "torch.meshgrid: in an upcoming release")

# laion-clap's HTSAT sizes (`create_htsat_model`), to name the one a config builds in errors.
HTSAT_SIZES = {(96, (2, 2, 6, 2)): "HTSAT-tiny", (128, (2, 2, 12, 2)): "HTSAT-base", (256, (2, 2, 12, 2)): "HTSAT-large"}


def import_clap_module() -> ModuleType:
    """laion-clap's `clap_module` package, imported without running `laion_clap/__init__`.

    That `__init__` imports laion-clap's training code, which fetches three text tokenizers from the
    model hub at import time (minutes of retries when offline). laion-clap itself puts `clap_module` on
    `sys.path` as a top-level package; loading that package the same way needs no hub. When the user
    has already imported `laion_clap`, its `clap_module` is reused.
    """
    if "clap_module" not in sys.modules:
        spec = importlib.util.find_spec("laion_clap")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("laion-clap is not installed; `pip install laion-clap`")
        package_dir = Path(spec.submodule_search_locations[0]) / "clap_module"
        package_spec = importlib.util.spec_from_file_location(
            "clap_module", package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        module = importlib.util.module_from_spec(package_spec)
        sys.modules["clap_module"] = module
        try:
            package_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["clap_module"]
            raise
    return sys.modules["clap_module"]


class HTSATAudioEncoder(nn.Module):
    """HTSAT on a (B, clip_samples) 48 kHz waveform → (B, num_tokens, width) time-ordered tokens."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        with warnings.catch_warnings():
            for message in CLAP_WARNINGS:
                warnings.filterwarnings("ignore", message=re.escape(message))
            clap = import_clap_module()
            htsat = importlib.import_module("clap_module.htsat")
            audio_cfg = clap.CLAPAudioCfp(
                model_type="HTSAT", model_name="meerkat", sample_rate=cfg.sample_rate, audio_length=1024,
                window_size=cfg.window_size, hop_size=cfg.hop_size, fmin=cfg.fmin, fmax=cfg.fmax,
                class_num=527, mel_bins=cfg.mel_bins, clip_samples=cfg.clip_samples,
            )
            # spec_size, patch and window sizes are fixed across laion-clap's HTSAT variants (create_htsat_model).
            self.htsat = htsat.HTSAT_Swin_Transformer(
                spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=527, window_size=8,
                config=audio_cfg, **cfg.htsat,
            )
        # torchlibrosa builds its STFT kernels from transposed arrays; DeepSpeed's broadcast views raw
        # parameter memory and fails on such strides ("must be 1 to view BFloat16 as Byte").
        for param in self.htsat.parameters():
            param.data = param.data.contiguous()
        self.cfg = cfg
        self.width = self.htsat.num_features

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    def load_weights(self, path: str) -> None:
        """Load the `audio_branch.*` weights of a LAION-CLAP checkpoint (`state_dict`, `module.` prefixes ok)."""
        state = take_prefixed(load_state_dict_file(path), "audio_branch.", path)
        htsat = self.cfg.htsat
        size = HTSAT_SIZES.get((htsat.get("embed_dim"), tuple(htsat.get("depths", ()))), "HTSAT")
        load_matching(self.htsat, state, path, "audio.checkpoint",
                      f"{size} (embed_dim {htsat.get('embed_dim')}, depths {htsat.get('depths')})",
                      "; LAION-CLAP's 630k-*.pt are HTSAT-tiny, music_*.pt HTSAT-base, and *fusion*.pt hold fusion "
                      "layers this tower does not have")

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, clip_samples) → (B, num_tokens, width)."""
        if waveform.ndim != 2 or waveform.shape[1] != self.cfg.clip_samples:
            raise ValueError(
                f"audio_values must be (batch, {self.cfg.clip_samples}) = {self.cfg.clip_seconds:g} s at "
                f"{self.cfg.sample_rate} Hz, got {tuple(waveform.shape)}; pad or chunk with meerkat.media.fit_to_clip"
            )
        waveform = waveform.to(self.htsat.patch_embed.proj.weight.dtype)  # the tower's own dtype, as for vision
        with torch.autocast(waveform.device.type, enabled=False):  # see vision.py; float16 would overflow here
            frames = self.htsat({"waveform": waveform})["fine_grained_embedding"]  # (B, 1024, width), repeated frames
        tokens = F.adaptive_avg_pool1d(frames.transpose(1, 2), self.cfg.num_tokens)  # (B, width, num_tokens)
        return tokens.transpose(1, 2)  # (B, num_tokens, width)
