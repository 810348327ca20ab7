"""Load images and audio from disk or memory into the one form the encoders expect.

Images become RGB `PIL.Image.Image`; audio becomes float32 mono 1-D numpy at the target rate.
Anything unreadable raises `MediaError` naming the file, so a bad dataset row is found at load
time rather than as a shape error deep in the model.

    >>> wave = load_audio((np.zeros(16_000, dtype=np.int16), 16_000))
    >>> fit_to_clip(wave, 48_000 * 10).shape
    (480000,)
"""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from PIL import Image

_ARRAY = "array input"
_ON_LONG = ("reject", "chunk")


class MediaError(ValueError):
    """An image or audio input that cannot be decoded or is not valid media."""


def resolve_media_path(root: str | Path, relative: str) -> Path:
    """Join a dataset-relative path to its media root, refusing paths that escape the root."""
    if Path(relative).is_absolute():
        raise MediaError(f"media path {relative!r} is absolute; dataset paths must be relative to the root {root}")
    resolved_root = Path(root).resolve()
    # resolve() follows `..` and symlinks, so both ways out of the root are caught.
    path = (resolved_root / relative).resolve()
    if not path.is_relative_to(resolved_root):
        raise MediaError(
            f"media path {relative!r} resolves to {path}, outside the root {resolved_root}; "
            "keep dataset media inside its root"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no media file at {Path(root) / relative}")
    return path


def load_image(source: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """An RGB image from a path, a PIL image, or a (H, W), (H, W, 3) or (H, W, 4) array
    (uint8, or float in [0, 1])."""
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    if isinstance(source, np.ndarray):
        return _to_rgb(_image_from_array(source))
    if not isinstance(source, (str, Path)):
        raise TypeError(f"load_image takes a path, a PIL image or a numpy array, not {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with Image.open(path) as image:
            # Decode every pixel now: PIL is lazy, so a truncated file would otherwise fail later, far from here.
            image.load()
            return _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as e:
        raise MediaError(f"cannot decode image {path}: {e}; re-save the file or drop it from the dataset") from e


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16"):
        # PIL clips 16-bit values to 255 when converting, turning most pixels white; keep the top 8 bits instead.
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Composite on white: converting straight to RGB turns transparent pixels black (or whatever
        # colour they hide), which changes what the vision encoder sees.
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _image_from_array(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or array.size == 0:
        raise MediaError(f"{_ARRAY} has shape {array.shape}; pass a non-empty (H, W), (H, W, 3) or (H, W, 4) array")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all((array >= 0) & (array <= 1)):
            raise MediaError(f"{_ARRAY} is float with values outside [0, 1] (or NaN); scale it to [0, 1] or pass uint8")
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise MediaError(f"{_ARRAY} has dtype {array.dtype}; pass uint8 or float in [0, 1]")
    return Image.fromarray(array)


def load_audio(source: str | Path | tuple[np.ndarray, int], sample_rate: int = 48_000) -> np.ndarray:
    """Float32 mono (T,) audio at `sample_rate` from a path or an `(array, sr)` tuple.

    Channels are averaged. Integer arrays are PCM and scaled to [-1, 1]. Silence is valid and
    comes back as zeros; empty audio, NaN/inf samples or sr <= 0 raise MediaError.
    """
    if isinstance(source, tuple):
        if len(source) != 2:
            raise MediaError(f"audio tuple has {len(source)} items; pass (array, sample_rate)")
        array, sr = source
        name = _ARRAY
        channels_first = _channels_first(_pcm_to_float(np.asarray(array)))
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"no audio file at {path}")
        channels_first, sr = _read_audio_file(path)
    else:
        raise TypeError(f"audio must be a path or an (array, sample_rate) tuple, not {type(source).__name__}")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise MediaError(f"{name} has sample rate {sr!r}; pass a positive integer rate in Hz")
    wave = channels_first.mean(axis=0, dtype=np.float32)
    if wave.size == 0:
        raise MediaError(f"{name} contains no samples; drop it from the dataset")
    if not np.all(np.isfinite(wave)):
        raise MediaError(f"{name} contains NaN or infinite samples; fix or drop it")
    if sr != sample_rate:
        # the resampler rounds its length up (10 s at 44.1 kHz gives one sample over 10 s at 48 kHz)
        length = round(wave.size * sample_rate / sr)
        wave = librosa.util.fix_length(librosa.resample(wave, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq"),
                                       size=length)
    return wave.astype(np.float32, copy=False)


def _read_audio_file(path: Path) -> tuple[np.ndarray, int]:
    """(C, T) float32 samples and their rate; soundfile first, librosa for what libsndfile cannot read."""
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)  # (T, C); dtype scales any PCM width
        return data.T, sr
    except sf.LibsndfileError:
        pass
    try:
        data, sr = librosa.load(path, sr=None, mono=False)  # (T,) or (C, T)
    # librosa's fallback (audioread) raises backend-specific types (DecodeError, EOFError, ...);
    # every one of them means the same thing here, and it is re-raised, not swallowed.
    except Exception as e:
        raise MediaError(f"cannot decode audio {path}: {e!r}; convert it to wav or flac, or drop it") from e
    return np.atleast_2d(data), int(sr)


def _pcm_to_float(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.signedinteger):
        return (array / -float(np.iinfo(array.dtype).min)).astype(np.float32)
    if np.issubdtype(array.dtype, np.unsignedinteger):
        # Unsigned PCM is offset-binary: silence sits at mid-range, e.g. 128 for uint8.
        mid = (int(np.iinfo(array.dtype).max) + 1) / 2
        return ((array - mid) / mid).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32, copy=False)
    raise MediaError(f"{_ARRAY} has dtype {array.dtype}; pass float or integer PCM samples")


def _channels_first(array: np.ndarray) -> np.ndarray:
    """(C, T) from a (T,) array, or from a 2-D array taking the smaller axis as channels, since
    soundfile gives (T, C) and librosa gives (C, T) and a clip always has more samples than channels."""
    if array.ndim == 1:
        return array[np.newaxis]
    if array.ndim == 2:
        return array if array.shape[0] <= array.shape[1] else array.T
    raise MediaError(f"{_ARRAY} has shape {array.shape}; pass (T,), (T, C) or (C, T) audio")


def fit_to_clip(wave: np.ndarray, clip_samples: int, on_long: str = "reject", sample_rate: int = 48_000) -> np.ndarray:
    """Fit (T,) audio to the encoder's clip: (clip_samples,) zero-padded at the end, or for longer
    audio with `on_long="chunk"`, (K, clip_samples) consecutive chunks with the last one padded.

    Long audio is never cut silently: `on_long="reject"` raises MediaError. `sample_rate` only
    serves to state lengths in seconds in that message.
    """
    if on_long not in _ON_LONG:
        raise ValueError(f"on_long={on_long!r} is not one of {_ON_LONG}")
    if wave.ndim != 1 or clip_samples <= 0:
        raise ValueError(f"need 1-D audio and clip_samples > 0, got shape {wave.shape} and {clip_samples}")
    wave = wave.astype(np.float32, copy=False)
    length = wave.shape[0]
    if length > clip_samples and on_long == "reject":
        raise MediaError(
            f"audio is {length / sample_rate:.2f} s, longer than the {clip_samples / sample_rate:.2f} s clip; "
            "trim it, or split it into clips with on_long='chunk' (a model's config.audio.on_long)"
        )
    chunks = max(1, math.ceil(length / clip_samples))
    padded = np.pad(wave, (0, chunks * clip_samples - length))
    return padded if length <= clip_samples else padded.reshape(chunks, clip_samples)  # (K, clip_samples)
