"""Pairwise cosine similarity between token sets, shared by AVOpT's cost and AVACE's attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, N, D), (B, M, D) → (B, N, M), in float32 even under bf16/fp16 autocast: from a bf16 OT cost the
    Sinkhorn marginals never reach their tolerance (every step runs all iterations), and bf16 would round
    AVACE's similarities before its /temperature."""
    with torch.autocast(a.device.type, enabled=False):
        return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).transpose(1, 2)
