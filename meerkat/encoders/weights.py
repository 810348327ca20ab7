"""Reading encoder weight files safely: safetensors, or torch pickles with `weights_only=True`."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat state dict from a file; unwraps a `state_dict` entry and DataParallel `module.` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors come in many types; all mean "not a plain weights file"
            raise ValueError(
                f"{path} could not be read as a weights-only checkpoint ({e}); "
                "re-save it as safetensors or as a plain state dict of tensors"
            ) from e
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def take_prefixed(state: dict[str, torch.Tensor], prefix: str, path: str | Path) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, prefix removed; an error naming the file when there are none."""
    taken = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not taken:
        sample = ", ".join(sorted(state)[:3])
        raise ValueError(f"{path} has no '{prefix}*' keys (it starts with: {sample}); is it the right checkpoint?")
    return taken
