import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from meerkat.media import MediaError, fit_to_clip, load_audio, load_image, resolve_media_path

WHITE = (255, 255, 255)
RED = (255, 0, 0)


def _sine(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


# Images


@pytest.mark.parametrize(
    ("image", "pixel"),
    [
        (Image.new("L", (4, 3), 100), (100, 100, 100)),
        (Image.new("1", (4, 3), 1), WHITE),
        (Image.new("CMYK", (4, 3), (0, 255, 255, 0)), RED),
        (Image.new("RGBA", (4, 3), (0, 0, 0, 0)), WHITE),
        (Image.new("LA", (4, 3), (0, 0)), WHITE),
    ],
    ids=["L", "1", "CMYK", "RGBA", "LA"],
)
def test_every_mode_becomes_rgb(image, pixel):
    rgb = load_image(image)
    assert (rgb.mode, rgb.size) == ("RGB", (4, 3))
    assert rgb.getpixel((0, 0)) == pixel


def test_rgba_is_composited_on_white_not_black(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 255), (0, 0, 0, 0), (0, 0, 0, 128)])
    image.save(tmp_path / "a.png")
    rgb = load_image(tmp_path / "a.png")
    assert rgb.getpixel((0, 0)) == RED
    assert rgb.getpixel((1, 0)) == WHITE
    assert rgb.getpixel((2, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putdata([0, 1])
    image.save(tmp_path / "p.png", transparency=0)
    rgb = load_image(str(tmp_path / "p.png"))
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [WHITE, RED]


def test_16_bit_greyscale_keeps_its_range_instead_of_clipping_to_white(tmp_path):
    Image.fromarray(np.array([[65535, 32768, 0]], dtype=np.uint16)).save(tmp_path / "depth.png")
    rgb = load_image(tmp_path / "depth.png")
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [WHITE, (128, 128, 128), (0, 0, 0)]


def test_uint8_array_is_used_as_is():
    array = np.zeros((2, 3, 3), dtype=np.uint8)
    array[1, 2] = (10, 20, 30)
    rgb = load_image(array)
    assert rgb.size == (3, 2)
    assert rgb.getpixel((2, 1)) == (10, 20, 30)


def test_float_array_in_unit_range_is_scaled_to_255():
    assert load_image(np.full((2, 2), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    rgba = np.zeros((2, 2, 4), dtype=np.float32)
    assert load_image(rgba).getpixel((0, 0)) == WHITE


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 2, 2), dtype=np.uint8), "shape"),
        (np.full((2, 2), 1.5), "outside [0, 1]"),
        (np.zeros((2, 2), dtype=np.int64), "dtype int64"),
    ],
)
def test_invalid_array_is_rejected(array, message):
    with pytest.raises(MediaError, match="array input") as error:
        load_image(array)
    assert message in str(error.value)


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="noise.png") as error:
        load_image(path)
    assert str(path) in str(error.value)


def test_truncated_png_fails_at_load_time(tmp_path):
    path = tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MediaError) as error:
        load_image(path)
    assert str(path) in str(error.value)


def test_missing_image_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        load_image(tmp_path / "gone.jpg")


# Audio


def test_16khz_int16_wav_is_resampled_to_48khz_keeping_its_pitch(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _sine(440, 1.0, 16_000), 16_000, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 3 * 16_000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 48_000 / len(wave) == pytest.approx(440, abs=1)


def test_stereo_file_becomes_the_mean_of_its_channels(tmp_path):
    left, right = _sine(440, 0.1, 48_000, 0.6), np.full(4_800, 0.2, dtype=np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 48_000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), (left + right) / 2, atol=1e-6)


def test_array_channels_are_the_smaller_axis_in_either_layout():
    left, right = _sine(440, 0.1, 48_000), np.zeros(4_800, dtype=np.float32)
    time_first = load_audio((np.stack([left, right], axis=1), 48_000))
    channels_first = load_audio((np.stack([left, right]), 48_000))
    np.testing.assert_allclose(time_first, left / 2)
    np.testing.assert_allclose(channels_first, left / 2)


@pytest.mark.parametrize(("suffix", "subtype"), [("wav", "PCM_U8"), ("wav", "PCM_24"), ("flac", "PCM_16")])
def test_pcm_files_of_any_width_are_read_as_floats(tmp_path, suffix, subtype):
    path = tmp_path / f"a.{suffix}"
    sine = _sine(440, 0.1, 48_000)
    sf.write(path, sine, 48_000, subtype=subtype)
    assert np.max(np.abs(load_audio(path) - sine)) <= 1 / 128


def test_integer_arrays_are_scaled_to_unit_range():
    np.testing.assert_allclose(
        load_audio((np.array([-32768, 0, 16384], dtype=np.int16), 48_000)), [-1.0, 0.0, 0.5]
    )
    # uint8 is offset-binary: 128 is silence.
    np.testing.assert_allclose(load_audio((np.array([0, 128, 255], dtype=np.uint8), 48_000)), [-1.0, 0.0, 127 / 128])


def test_silent_audio_is_valid_and_stays_zero(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    wave = load_audio(tmp_path / "quiet.wav")
    assert len(wave) == 48_000
    assert not wave.any()


def test_audio_file_without_samples_is_rejected(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 48_000)
    with pytest.raises(MediaError, match="no samples") as error:
        load_audio(path)
    assert str(path) in str(error.value)


@pytest.mark.filterwarnings("ignore")  # librosa warns as it falls back from soundfile to audioread
@pytest.mark.parametrize("content", [b"", b"not audio at all" * 100], ids=["zero-bytes", "garbage"])
def test_undecodable_audio_file_names_the_path(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(MediaError, match="cannot decode audio") as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_missing_audio_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        load_audio(tmp_path / "gone.wav")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ((np.array([0.1, np.nan, 0.2], dtype=np.float32), 48_000), "NaN"),
        ((np.array([0.1, np.inf]), 48_000), "infinite"),
        ((np.zeros(0, dtype=np.float32), 48_000), "no samples"),
        ((np.zeros(10, dtype=np.float32), 0), "sample rate 0"),
    ],
)
def test_invalid_array_audio_is_rejected(source, message):
    with pytest.raises(MediaError, match="array input") as error:
        load_audio(source)
    assert message in str(error.value)


def test_array_tuple_is_resampled_to_the_requested_rate():
    wave = load_audio((_sine(440, 1.0, 48_000), 48_000), sample_rate=16_000)
    assert wave.dtype == np.float32
    assert abs(len(wave) - 16_000) <= 1


# Clips


def test_short_audio_is_zero_padded_at_the_end():
    clip = fit_to_clip(np.array([0.1, 0.2, 0.3]), 5)
    assert clip.dtype == np.float32
    np.testing.assert_allclose(clip, [0.1, 0.2, 0.3, 0.0, 0.0])


def test_audio_of_exactly_one_clip_is_unchanged():
    wave = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    clip = fit_to_clip(wave, 4, on_long="chunk")
    assert clip.shape == (4,)
    np.testing.assert_array_equal(clip, wave)


def test_long_audio_is_rejected_with_its_length_in_seconds():
    with pytest.raises(MediaError) as error:
        fit_to_clip(np.zeros(10, dtype=np.float32), 4, sample_rate=4)
    assert "2.50 s" in str(error.value)
    assert "on_long='chunk'" in str(error.value)


def test_long_audio_is_chunked_with_the_last_chunk_padded():
    wave = np.arange(1, 11, dtype=np.float32)
    chunks = fit_to_clip(wave, 4, on_long="chunk")
    assert chunks.shape == (3, 4)
    np.testing.assert_array_equal(chunks.reshape(-1)[:10], wave)
    np.testing.assert_array_equal(chunks[-1, 2:], [0.0, 0.0])


def test_audio_of_whole_clips_is_chunked_without_padding():
    chunks = fit_to_clip(np.arange(8, dtype=np.float32), 4, on_long="chunk")
    np.testing.assert_array_equal(chunks, [[0, 1, 2, 3], [4, 5, 6, 7]])


def test_unknown_on_long_lists_the_options():
    with pytest.raises(ValueError, match="'reject', 'chunk'"):
        fit_to_clip(np.zeros(3, dtype=np.float32), 4, on_long="truncate")


# Dataset paths


@pytest.fixture
def media_root(tmp_path):
    root = tmp_path / "root"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "a.wav").write_bytes(b"")
    (tmp_path / "secret.wav").write_bytes(b"")
    return root


def test_relative_path_is_joined_to_its_root(media_root):
    assert resolve_media_path(media_root, "clips/a.wav") == (media_root / "clips" / "a.wav").resolve()
    assert resolve_media_path(str(media_root), "clips/../clips/a.wav") == (media_root / "clips" / "a.wav").resolve()


def test_dotdot_path_outside_the_root_is_refused(media_root):
    with pytest.raises(MediaError, match=r"'\.\./secret\.wav'") as error:
        resolve_media_path(media_root, "../secret.wav")
    assert str(media_root.resolve()) in str(error.value)


def test_symlink_out_of_the_root_is_refused(media_root):
    (media_root / "clips" / "link.wav").symlink_to(media_root.parent / "secret.wav")
    with pytest.raises(MediaError, match="outside the root"):
        resolve_media_path(media_root, "clips/link.wav")


def test_absolute_path_is_refused(media_root):
    with pytest.raises(MediaError, match="absolute"):
        resolve_media_path(media_root, str(media_root / "clips" / "a.wav"))


def test_missing_file_inside_the_root_is_file_not_found(media_root):
    with pytest.raises(FileNotFoundError) as error:
        resolve_media_path(media_root, "clips/b.wav")
    assert str(media_root / "clips" / "b.wav") in str(error.value)


@pytest.mark.parametrize("rate", [44_100, 22_050, 11_025])
def test_ten_seconds_at_any_rate_fill_the_clip_exactly(rate):
    """The resampler rounds its output up a sample; 10 s of a 44.1 kHz file is still one 10 s clip."""
    wave = load_audio((np.zeros(rate * 10, dtype=np.float32), rate))
    assert wave.shape == (480_000,)
    assert fit_to_clip(wave, 480_000).shape == (480_000,)


@pytest.mark.parametrize("source", [[np.zeros(10), 48_000], np.zeros(10), 3])
def test_audio_that_is_not_a_path_or_pair_is_a_clear_error(source):
    with pytest.raises(TypeError, match="audio must be a path or an \\(array, sample_rate\\) tuple"):
        load_audio(source)
