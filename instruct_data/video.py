"""Frame and 48 kHz mono wav extraction from source videos, with the ffmpeg binary that the
`imageio-ffmpeg` package ships (no system ffmpeg needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path


class ExtractionError(RuntimeError):
    """ffmpeg could not read a video or write its frame/audio."""


def _last_lines(text: str, n: int = 3) -> str:
    """The end of ffmpeg's output, which says what failed; before it come the banner and build flags (kilobytes)."""
    return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-n:])


def ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise ExtractionError("video sources need ffmpeg: `pip install imageio-ffmpeg` (ships a static binary)") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def duration(video: Path) -> float:
    """Length in seconds, read by decoding the container header."""
    import imageio_ffmpeg

    try:
        return float(imageio_ffmpeg.count_frames_and_secs(str(video))[1])
    except (RuntimeError, OSError) as e:
        raise ExtractionError(f"cannot read video {video}: {_last_lines(str(e))}") from e


def _run(args: list[str], video: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.part{out.suffix}")  # ffmpeg picks the format from the suffix
    result = subprocess.run([ffmpeg(), "-nostdin", "-loglevel", "error", "-y", *args, str(tmp)],
                            capture_output=True, text=True)
    if result.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise ExtractionError(f"ffmpeg failed on {video}: {_last_lines(result.stderr)}")
    tmp.replace(out)  # never leave a half-written frame or wav behind


def extract_frame(video: Path, out: Path, at: float | None = None) -> None:
    """The frame at `at` seconds (default: the middle of the video) as an image file."""
    at = duration(video) / 2 if at is None else at
    _run(["-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1", "-q:v", "2"], video, out)


def extract_audio(video: Path, out: Path, sample_rate: int = 48_000) -> None:
    """The audio track as 16-bit mono wav at `sample_rate`."""
    _run(["-i", str(video), "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le"], video, out)
