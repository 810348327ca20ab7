"""Frozen CLIP image tower (open_clip) that returns patch tokens instead of a pooled embedding."""

from __future__ import annotations

import open_clip
import torch
from PIL import Image
from torch import nn

from meerkat.config import VisionConfig
from meerkat.encoders.weights import load_matching, load_state_dict_file, take_prefixed


class CLIPVisionEncoder(nn.Module):
    """open_clip ViT → (B, N, width) tokens of one transformer block; patch grid row-major, CLS first
    when `use_cls`."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        model_cfg = cfg.model_cfg or open_clip.get_model_config(cfg.model_name)
        if model_cfg is None:
            raise ValueError(f"open_clip has no model config {cfg.model_name!r}; see open_clip.list_models()")
        # The text tower is built and dropped: open_clip exposes no public vision-only builder.
        self.visual = open_clip.CLIP(**model_cfg).visual
        self.cfg = cfg
        vision_cfg = model_cfg["vision_cfg"]
        self.image_size = vision_cfg["image_size"]
        self.grid_size = self.image_size // vision_cfg["patch_size"]
        self.width = vision_cfg["width"]
        self.num_layers = vision_cfg["layers"]
        # Squash instead of centre-crop: normalised box coordinates stay exact after resizing.
        self.transform = open_clip.image_transform(self.image_size, is_train=False, resize_mode="squash")

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2 + int(self.cfg.use_cls)

    def load_weights(self, path: str) -> None:
        """Load an open_clip CLIP state dict (full model; only `visual.*` is used)."""
        state = take_prefixed(load_state_dict_file(path), "visual.", path)
        patch = self.image_size // self.grid_size
        load_matching(self.visual, state, path, "vision.weights",
                      f"{self.cfg.model_name} (patch {patch}, width {self.width}, {self.num_layers} layers)")

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """RGB PIL images → (B, 3, H, W) normalised pixel values."""
        return torch.stack([self.transform(image) for image in images])

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, N, width)."""
        layer = self.cfg.feature_layer % self.num_layers
        # The tower computes in its own dtype, never autocast (DeepSpeed bf16 casts the tower without
        # autocasting inputs), so what it computes during training equals the feature cache's features.
        pixel_values = pixel_values.to(self.visual.conv1.weight.dtype)
        with torch.autocast(pixel_values.device.type, enabled=False):
            out = self.visual.forward_intermediates(
                pixel_values, indices=[layer], stop_early=True, intermediates_only=True,
                output_fmt="NLC", output_extra_tokens=self.cfg.use_cls,
            )
        tokens = out["image_intermediates"][0]  # (B, grid*grid, width)
        if self.cfg.use_cls:
            tokens = torch.cat([out["image_intermediates_prefix"][0], tokens], dim=1)  # (B, 1+grid*grid, width)
        return tokens
