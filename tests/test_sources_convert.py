"""Every source converts its real-format fixture end to end, through the CLI's code path, with
media made on the fly (videos go through ffmpeg extraction), and the output passes `validate`."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from instruct_data.convert import convert
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
