"""Audio looks at the image before the LLM reads it: AVACE's audio→image cross-attention as part of the model.

The AC loss teaches each projected audio token where its source is in the image (cosine attention over
the patches, losses/ac.py). On its own that map only shapes the projectors: the LLM must learn the same
look-up again, across the prompt, before an answer can use it. With fusion (`projector.fusion`), every
audio token the LLM reads also carries what it attends to: the attended patches (features and position
codes, through a learned map) and the attention map itself (where, and how large). Off by default: on
the demo it helps ARIG trained alone but not the mixed demo (README, "Design choices").
"""

from __future__ import annotations

import torch
from torch import nn

from meerkat.losses.ac import audio_to_image_attention


class AudioVisualFusion(nn.Module):
    """(N, Na, D) audio tokens + (N, P, D) patches of their image → (N, Na, D) audio tokens for the LLM."""

    def __init__(self, width: int, patches: int, temperature: float):
        super().__init__()
        self.temperature = temperature  # the AC loss's, so the map the loss supervises is the one used
        self.attended = nn.Linear(width, width)
        self.where = nn.Linear(patches, width)

    def forward(self, audio: torch.Tensor, patches: torch.Tensor, placed_patches: torch.Tensor) -> torch.Tensor:
        """`patches` as OT/AC compare them (no position codes) set the attention; `placed_patches` (with
        codes, as the LLM reads them) are what is carried."""
        attention = audio_to_image_attention(audio, patches, self.temperature)  # (N, Na, P), rows sum to 1
        heat = attention / attention.amax(-1, keepdim=True)  # peak 1: a soft mask of where the sound is
        dtype = self.attended.weight.dtype
        return audio + self.attended(attention.to(dtype) @ placed_patches.to(dtype)) + self.where(heat.to(dtype))
