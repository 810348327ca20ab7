"""Reading weight files safely: safetensors, or torch pickles with `weights_only=True`; and, for a LAION-CLAP
`.pt` that only a full unpickler reads, a one-off conversion to run on a file you trust:

    python -m meerkat.encoders.weights convert-clap music_audioset_epoch_15_esc_90.14.pt clap_audio.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

# What training scripts pickle beside the tensors (laion-clap's: numpy scalars such as metrics), allowed by
# name to the weights-only unpickler; any other object is still refused. A numpy scalar pickles as a call
# of numpy's `scalar` function with its dtype, whose class is restored too.
NUMPY_SCALAR_TYPES = [np.dtype, np.float64(0).__reduce__()[0], *{type(np.dtype(c)) for c in "?bhilqBHILQefdgFDG"}]


def file_digest(path: str | Path | None) -> str | None:
    """A weights file by content ("sha256:…"): what feature caches and checkpoints record of their base
    weights, so that a file retrained in place counts as other weights and a moved one does not."""
    if path is None:
        return None
    with open(path, "rb") as file:
        return "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a cut-off or foreign file is a ValueError naming it (safetensors'
    own error does not)."""
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise ValueError(f"{path} is truncated or not a safetensors file ({e}); copy or download it again") from e


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat state dict from a file; unwraps a `state_dict` entry and DataParallel `module.` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    state = load_safetensors(path) if path.suffix == ".safetensors" else _load_weights_only(path)
    state = _tensors(state)
    if not state:
        raise ValueError(f"{path} holds no state dict of tensors")
    return state


def _load_weights_only(path: Path) -> object:
    """What a torch pickle holds, read by the weights-only unpickler with numpy scalars allowed."""
    try:
        with torch.serialization.safe_globals(NUMPY_SCALAR_TYPES):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # how torch reports what the weights-only unpickler refuses
        reason = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0].split(". ")[0]
        out = path.with_name(f"{path.stem}_audio.safetensors")
        raise ValueError(
            f"{path} could not be read as a weights-only checkpoint ({reason}): it holds objects other than tensors "
            "and numpy scalars, or was written with pickle protocol 4. If you trust the file and it is a LAION-CLAP "
            f"checkpoint, convert it once, python -m meerkat.encoders.weights convert-clap {path} {out}, and point "
            "audio.checkpoint at the result; re-save other files as safetensors") from e
    except Exception as e:  # a cut-off zip, an empty file, another format: each raises its own type
        reason = str(e).split(". ")[0] or f"{type(e).__name__} after {path.stat().st_size} bytes"
        raise ValueError(f"{path} is truncated or not a checkpoint ({reason}); download it again") from e


def _tensors(state: object) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, out of a `state_dict` entry and without DataParallel `module.` prefixes."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        return {}
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def take_prefixed(state: dict[str, torch.Tensor], prefix: str, path: str | Path) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, prefix removed; an error naming the file when there are none."""
    taken = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not taken:
        sample = ", ".join(sorted(state)[:3])
        raise ValueError(f"{path} has no '{prefix}*' keys (it starts with: {sample}); is it the right checkpoint?")
    return taken


def load_matching(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, key: str,
                  architecture: str, hint: str = "") -> None:
    """Load `state` into `module`; keys or shapes that differ are a ValueError naming the file, its config
    key and the architecture the config builds, with the first differences (torch's error names neither)."""
    expected = module.state_dict()
    problems = [f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
                if k in state and state[k].shape != v.shape]
    problems += [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    if problems:
        more = f" and {len(problems) - 4} more" if len(problems) > 4 else ""
        raise ValueError(f"{key}: {path} does not fit the {architecture} this config builds ("
                         + "; ".join(problems[:4]) + more + f"){hint}")
    module.load_state_dict(state)


def convert_clap(source: str | Path, target: str | Path) -> int:
    """Write the `audio_branch.*` tensors of a LAION-CLAP checkpoint to safetensors; returns how many.
    Unpickles in full (`weights_only=False`), which runs whatever code the file holds: a file you trust only."""
    state = _tensors(torch.load(source, map_location="cpu", weights_only=False))
    audio = {k: v.clone(memory_format=torch.contiguous_format) for k, v in state.items() if k.startswith("audio_branch.")}
    if not audio:
        raise ValueError(f"{source} has no audio_branch.* tensors; is it a LAION-CLAP checkpoint?")
    save_file(audio, str(target))
    return len(audio)


def main(argv: list[str] | None = None) -> int:
    """`python -m meerkat.encoders.weights convert-clap IN.pt OUT.safetensors`."""
    parser = argparse.ArgumentParser(prog="python -m meerkat.encoders.weights",
                                     description="Convert a weights file that meerkat's weights-only reader refuses.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert-clap", help="a LAION-CLAP .pt → its audio branch as safetensors (for audio.checkpoint)",
        description="Write the audio_branch.* tensors of a LAION-CLAP .pt to a safetensors file for audio.checkpoint. "
                    "It reads the .pt with torch.load(weights_only=False), which runs any code pickled in it: "
                    "convert only a file you trust (e.g. downloaded from huggingface.co/lukewys/laion_clap).")
    convert.add_argument("source", help="the LAION-CLAP .pt")
    convert.add_argument("target", help="the .safetensors to write")
    args = parser.parse_args(argv)
    count = convert_clap(args.source, args.target)
    print(f"wrote {count} audio_branch tensors to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
