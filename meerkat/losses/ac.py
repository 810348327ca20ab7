"""AVACE: audio→image cross-attention should fall inside the box of the sounding object.

Each audio token attends over the image patches (softmax over patches, so the map is spatial); the
maps are averaged over audio tokens and scaled so their peak is 1. The loss is
0.5 · mean heat outside the box + 0.5 · (1 − mean heat inside), with the box turned into a patch
mask by fractional coverage — 0 when all heat spreads evenly over the box and none leaks out.
"""

from __future__ import annotations

import torch

from meerkat.losses.similarity import cosine_similarity


def box_to_patch_mask(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 4) normalised [x1, y1, x2, y2] → (B, grid*grid) share of each patch the box covers, row-major."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (batch, 4), got {tuple(boxes.shape)}")
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    if not bool(((boxes >= 0) & (boxes <= 1)).all() and (x1 < x2).all() and (y1 < y2).all()):
        raise ValueError(f"boxes must be [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 (a box "
                         f"without area covers no patch), got {boxes.tolist()}")
    # In patch units, so a patch the box covers whole gets exactly 1 (in image units, 14·(1/14) ≠ 1 and
    # the rounding leftovers of a whole-image box made "outside" a ratio of noise).
    lo = torch.arange(grid, device=boxes.device, dtype=torch.float32)  # (grid,) each patch's first edge
    cover_x = (torch.minimum(x2[:, None] * grid, lo + 1) - torch.maximum(x1[:, None] * grid, lo)).clamp(0, 1)  # (B, grid)
    cover_y = (torch.minimum(y2[:, None] * grid, lo + 1) - torch.maximum(y1[:, None] * grid, lo)).clamp(0, 1)  # (B, grid)
    return (cover_y[:, :, None] * cover_x[:, None, :]).flatten(1)  # (B, grid*grid)


def audio_to_image_attention(audio_tokens: torch.Tensor, image_tokens: torch.Tensor,
                             temperature: float = 0.1) -> torch.Tensor:
    """(B, Na, D) queries over (B, Ni, D) patches → (B, Na, Ni), each row summing to 1 over patches.

    Cosine similarity with a temperature keeps the map's sharpness independent of the LLM width.
    """
    return torch.softmax(cosine_similarity(audio_tokens, image_tokens) / temperature, dim=-1)  # (B, Na, Ni)


def avace_loss(attention: torch.Tensor, mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """(B, Na, Ni) attention and (B, Ni) box coverage → the loss averaged over the batch ("mean", a
    scalar) or per sample ("none", (B,))."""
    heat = attention.mean(dim=1)  # (B, Ni)
    heat = heat / heat.amax(dim=1, keepdim=True)  # peak 1, so "mean inside" can reach 1
    inside = (heat * mask).sum(1) / mask.sum(1).clamp_min(1e-6)
    outside = (heat * (1 - mask)).sum(1) / (1 - mask).sum(1).clamp_min(1e-6)
    losses = 0.5 * outside + 0.5 * (1 - inside)  # (B,)
    return losses.mean() if reduction == "mean" else losses
