"""Every source converts its real-format fixture end to end, through the CLI's code path, with
media made on the fly (videos go through ffmpeg extraction), and the output passes `validate`."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from instruct_data.convert import convert, rejects_path
from instruct_data.sources import get_source
from instruct_data.sources.base import Record
from instruct_data.validate import validate
from instruct_data.video import ffmpeg

FIXTURES = {
    "vggss": "vggss/vggss.json",
    "flickr_soundnet": "flickr_soundnet",
    "avsbench": "avsbench",
    "audioset_strong": "audioset_strong",
    "ave": "ave",
    "llp": "llp",
    "music_avqa": "music_avqa",
    "avqa": "avqa",
    "valor": "valor",
    "audiocaps": "audiocaps",
    "clotho": "clotho",
    "vggsound": "vggsound/vggsound.csv",
}
MEDIA_REASONS = {"missing_media", "unreadable_media", "path_escape", "no_task"}


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    """A 10 s, 64×48 test-pattern video with a 440 Hz tone (the length of most source clips)."""
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    subprocess.run([ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=2:duration=10",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-shortest", "-pix_fmt", "yuv420p",
                    str(path)], check=True)
    return path


def _make_media(record: Record, root, video) -> None:
    if record.video:
        (root / record.video).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, root / record.video)
        return
    if record.image:
        (root / record.image).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (10, 120, 200)).save(root / record.image)
    if record.audio:
        (root / record.audio).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / record.audio, np.zeros(4_800, np.float32), 48_000)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_converts_and_validates(name, tmp_path, tiny_video, request):
    source = get_source(name)
    annotations = request.path.parent / "fixtures" / FIXTURES[name]
    rows = list(source.read(annotations, None))
    records = [row.value for row in rows if isinstance(row.value, Record)]
    assert records, f"{name}: the fixture yields no records"
    media = tmp_path / "media"
    for record in records:
        _make_media(record, media, tiny_video)
    out = tmp_path / f"{name}.jsonl"
    summary = convert(source, annotations, out, media_root=media, progress=False)
    assert summary.rows == len(rows)
    assert not MEDIA_REASONS & set(summary.rejected), dict(summary.rejected)
    assert sum(summary.samples.values()) >= len({r.uid for r in records})
    assert set(summary.samples) <= set(source.TASKS)
    assert validate(out, media) == []


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_a_byte_order_mark_changes_nothing(name, tmp_path, request):
    """Excel and Windows tools start UTF-8 files with a BOM; every source reads them as without it."""
    source = get_source(name)
    fixture = request.path.parent / "fixtures" / FIXTURES[name]
    folder = fixture if fixture.is_dir() else fixture.parent
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    marked = [path for path in copy.rglob("*") if path.suffix in (".csv", ".tsv", ".txt", ".json")]
    for path in marked:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    annotations = copy / fixture.relative_to(folder)
    assert marked
    assert [(row.ref, row.value) for row in source.read(annotations, None)] == \
        [(row.ref, row.value) for row in source.read(fixture, None)]


def _video(path, seconds, audio=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    sound = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"] if audio else []
    subprocess.run([ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=2:duration={seconds}",
                    *sound, "-shortest", "-pix_fmt", "yuv420p", str(path)], check=True)


def test_an_event_past_the_end_of_a_short_video_is_segment_past_end(tmp_path):
    (tmp_path / "ave").mkdir()
    (tmp_path / "ave" / "Annotations.txt").write_text("Bark&short&good&5&8\nBark&long&good&1&3\n")
    _video(tmp_path / "media" / "AVE" / "short.mp4", 4)
    _video(tmp_path / "media" / "AVE" / "long.mp4", 4)
    out = tmp_path / "ave.jsonl"
    summary = convert(get_source("ave"), tmp_path / "ave", out, media_root=tmp_path / "media", progress=False)
    assert summary.rejected == {"segment_past_end": 1}
    [reject] = map(json.loads, open(rejects_path(out)))
    assert reject["row"] == "Annotations.txt:1" and reject["detail"].startswith(
        "segments: [[5.0, 8.0]] end at 8 s, but the audio audio/short.wav lasts only 4.0")
    [sample] = map(json.loads, open(out))
    assert sample["target"]["duration"] == pytest.approx(4.0, abs=0.05)  # the clip's, not the nominal 10 s


@pytest.mark.parametrize("wav_there", [False, True])  # ffmpeg fails extracting the wav, or measuring the video for the frame
def test_a_broken_video_is_rejected_with_ffmpegs_last_lines_not_its_banner(tmp_path, wav_there):
    (tmp_path / "media" / "video").mkdir(parents=True)
    (tmp_path / "media" / "video" / "broken_000001.mp4").write_bytes(b"not a video" * 100)
    if wav_there:
        (tmp_path / "media" / "audio").mkdir()
        sf.write(tmp_path / "media" / "audio" / "broken_000001.wav", np.zeros(8_000, np.float32), 8_000)
    (tmp_path / "vggss.json").write_text('[{"file": "broken_000001", "class": "x", "bbox": [[0.1, 0.1, 0.2, 0.2]]}]')
    out = tmp_path / "vggss.jsonl"
    summary = convert(get_source("vggss"), tmp_path / "vggss.json", out, media_root=tmp_path / "media", progress=False)
    assert summary.rejected == {"unreadable_media": 1}
    [reject] = map(json.loads, open(rejects_path(out)))
    assert "Invalid data found when processing input" in reject["detail"]
    assert "configuration:" not in reject["detail"] and len(reject["detail"]) < 600
