"""One loader for every path: formats, rates, channels, bad files; checked against librosa.load."""

import struct

import librosa
import numpy as np
import pytest
import soundfile

from birdlab.features.audio import AudioError, SkipReport, find_audio_files, iter_audio, load_audio
from edge_runtime.audio import decode_pcm

RATE_HZ = 32000


def _signal(rng, *, rate_hz: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    n = int(rate_hz * seconds)
    t = np.arange(n) / rate_hz
    mono = 0.4 * np.sin(2 * np.pi * 1500 * t) + 0.05 * rng.standard_normal(n)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "PCM_32"),
        ("WAV", "FLOAT"),
        ("WAV", "DOUBLE"),
        ("WAVEX", "PCM_16"),
        ("WAVEX", "PCM_24"),
        ("WAVEX", "FLOAT"),
    ],
)
def test_wav_parser_decodes_exactly_what_soundfile_decodes(tmp_path, rng, fmt, subtype):
    path = tmp_path / "x.wav"
    soundfile.write(path, _signal(rng, rate_hz=RATE_HZ, channels=2), RATE_HZ, format=fmt, subtype=subtype)
    expected = soundfile.read(path, dtype="float32", always_2d=True)[0].mean(axis=1)
    np.testing.assert_array_equal(load_audio(path, sample_rate_hz=RATE_HZ), expected)


@pytest.mark.parametrize(("suffix", "fmt", "subtype"), [(".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS"),
                                                        (".mp3", "MP3", "MPEG_LAYER_III")])
@pytest.mark.parametrize("rate_hz", [22000, 32000, 44100, 48000])
def test_compressed_formats_and_rates_equal_librosa_load(tmp_path, rng, suffix, fmt, subtype, rate_hz):
    if fmt == "MP3" and rate_hz == 22000:
        rate_hz = 22050  # MPEG audio has a fixed set of rates; 22050 is the nearest
    path = tmp_path / f"x{suffix}"
    soundfile.write(path, _signal(rng, rate_hz=rate_hz, channels=2), rate_hz, format=fmt, subtype=subtype)
    ours = load_audio(path, sample_rate_hz=RATE_HZ)
    theirs, _ = librosa.load(path, sr=RATE_HZ)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("rate_hz", [8000, 22000, 44100, 48000])
def test_wav_resampling_equals_librosa_load(tmp_path, rng, rate_hz):
    path = tmp_path / "x.wav"
    soundfile.write(path, _signal(rng, rate_hz=rate_hz, seconds=0.37), rate_hz, subtype="PCM_16")
    ours = load_audio(path, sample_rate_hz=RATE_HZ)
    theirs, _ = librosa.load(path, sr=RATE_HZ)
    assert ours.shape == theirs.shape == (int(np.ceil(int(rate_hz * 0.37) * RATE_HZ / rate_hz)),)
    np.testing.assert_array_equal(ours, theirs)


def test_stereo_is_the_mean_of_channels(tmp_path):
    path = tmp_path / "s.wav"
    left = np.full(100, 0.5, dtype=np.float32)
    soundfile.write(path, np.stack([left, -0.25 * np.ones(100, np.float32)], axis=1), RATE_HZ, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, sample_rate_hz=RATE_HZ), np.full(100, 0.125, np.float32))


def test_bad_files_name_the_file_and_the_reason(tmp_path, rng):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(b"OggS" + bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    truncated = tmp_path / "truncated.wav"
    soundfile.write(truncated, _signal(rng, rate_hz=RATE_HZ), RATE_HZ, subtype="PCM_16")
    truncated.write_bytes(truncated.read_bytes()[:3000])
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are field notes, not audio")
    nan = tmp_path / "nan.wav"
    samples = _signal(rng, rate_hz=RATE_HZ)
    samples[10] = np.nan
    soundfile.write(nan, samples, RATE_HZ, subtype="FLOAT")
    header_only = tmp_path / "header_only.wav"
    soundfile.write(header_only, np.zeros(0, np.float32), RATE_HZ, subtype="PCM_16")

    cases = {empty: "empty file", corrupt: "cannot decode", truncated: "truncated", not_audio: "not a RIFF/WAVE",
             nan: "NaN", header_only: "no samples", tmp_path / "missing.wav": "no such file"}
    for path, reason in cases.items():
        with pytest.raises(AudioError, match=reason) as info:
            load_audio(path, sample_rate_hz=RATE_HZ)
        assert info.value.path == str(path)


def test_a_batch_skips_bad_files_and_reports_them(tmp_path, rng):
    good = tmp_path / "a_good.wav"
    soundfile.write(good, _signal(rng, rate_hz=RATE_HZ), RATE_HZ)
    (tmp_path / "b_bad.wav").write_bytes(b"RIFF")
    (tmp_path / "readme.txt").write_text("not audio, not listed")
    report = SkipReport()
    files = find_audio_files([tmp_path])
    assert [f.name for f in files] == ["a_good.wav", "b_bad.wav"]
    loaded = list(iter_audio(files, sample_rate_hz=RATE_HZ, report=report))
    assert [p.name for p, _ in loaded] == ["a_good.wav"]
    assert report.loaded == 1 and len(report.skipped) == 1
    assert "b_bad.wav" in report.summary() and "1 skipped" in report.summary()


def test_raw_pcm_decoding():
    raw = struct.pack("<4h", 16384, -16384, 32767, -32768)
    np.testing.assert_array_equal(decode_pcm(raw, sample_format="S16_LE"),
                                  np.array([0.5, -0.5, 32767 / 32768, -1.0], np.float32))
    stereo = decode_pcm(raw + b"\x01", sample_format="S16_LE", channels=2)
    np.testing.assert_array_equal(stereo, np.array([0.0, (32767 / 32768 - 1.0) / 2], np.float32))
