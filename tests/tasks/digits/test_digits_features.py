"""Digits features: log-mel against librosa's own melspectrogram, causal prefixes, deltas, both
normalizations against direct float64 formulas, audio reading (mix-down, resampling) and refusals."""

import numpy as np
import pytest

from grukit.errors import UserInputError
from grukit.tasks.digits import data as D

from ._digits_util import fsdd_dir, fsdd_file, write_wav

SPEC = D.FeatureSpec()


def _tone(n=4000, sr=8000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def test_log_mel_matches_librosa_melspectrogram():
    import librosa

    y = D.read_audio(fsdd_file("7_jackson_32.wav"))
    ref = librosa.feature.melspectrogram(
        y=y, sr=8000, n_fft=256, hop_length=80, center=False, power=2.0, n_mels=40
    )
    got = D.log_mel(y, SPEC)
    assert got.shape == (1 + (len(y) - 256) // 80, 40)
    np.testing.assert_allclose(got, np.log(ref.T + D.LOG_EPS), atol=1e-4)


def test_features_are_causal_prefixes():
    y = _tone(3000)
    full = D.raw_features(y, SPEC)
    for n in (256, 257, 336, 1000, 2999):
        part = D.raw_features(y[:n], SPEC)
        assert part.shape[0] == 1 + (n - 256) // 80
        np.testing.assert_allclose(part, full[: part.shape[0]], atol=1e-5)


def test_deltas_are_first_differences():
    x = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    d = D.add_deltas(x)
    assert d.shape == (7, 6)
    np.testing.assert_array_equal(d[:, :3], x)
    np.testing.assert_allclose(d[0, 3:], 0)
    np.testing.assert_allclose(d[1:, 3:], x[1:] - x[:-1], atol=1e-6)
    # a block continuing a stream uses the previous block's last frame
    np.testing.assert_allclose(D.add_deltas(x[4:], previous=x[3]), d[4:], atol=1e-6)


def test_running_normalization_matches_formula_and_any_block_split():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((30, 4)) * 3 + 5).astype(np.float32)
    mean0, var0, P = [1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 0.5, 2.0], 10.0
    want = np.zeros((30, 4))
    for t in range(30):  # the definition, written out directly
        seen = x[: t + 1].astype(np.float64)
        m = (P * np.array(mean0) + seen.sum(0)) / (P + t + 1)
        e2 = (P * (np.array(var0) + np.array(mean0) ** 2) + (seen**2).sum(0)) / (P + t + 1)
        want[t] = (seen[-1] - m) / np.sqrt(e2 - m**2 + D.NORM_EPS)
    np.testing.assert_allclose(D.running_normalize(x, mean0, var0, P), want, atol=1e-5)
    norm = D.RunningNormalizer(mean0, var0, P)
    blocks = [norm(x[a:b]) for a, b in ((0, 1), (1, 9), (9, 10), (10, 30))]
    np.testing.assert_array_equal(np.concatenate(blocks), D.running_normalize(x, mean0, var0, P))


def test_utterance_normalization():
    x = np.random.default_rng(3).standard_normal((50, 5)).astype(np.float32) * 4 + 2
    z = D.utterance_normalize(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)


def test_read_audio_mixes_down_and_resamples(tmp_path):
    import librosa

    sr = 22050
    t = np.arange(sr // 2) / sr
    left, right = 0.4 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 700 * t)
    path = tmp_path / "stereo.wav"
    import soundfile as sf

    sf.write(str(path), np.stack([left, right], 1).astype(np.float32), sr, subtype="FLOAT")
    y = D.read_audio(path, 8000)
    want = librosa.resample(((left + right) / 2).astype(np.float32), orig_sr=sr, target_sr=8000)
    assert y.dtype == np.float32 and y.shape == want.shape
    np.testing.assert_allclose(y, want, atol=1e-5)


def test_splits_follow_the_official_rule():
    recs = D.list_recordings(fsdd_dir())
    assert len(recs) == 3000
    s = D.official_split(recs)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (2400, 300, 300)
    assert all(r.index <= 4 for r in s["test"]) and all(5 <= r.index <= 9 for r in s["val"])
    assert all(r.index >= 10 for r in s["train"])
    f = D.speaker_split(recs, "theo")
    assert len(f["test"]) == 500 and {r.speaker for r in f["test"]} == {"theo"}
    assert "theo" not in {r.speaker for r in f["train"] + f["val"]}
    with pytest.raises(UserInputError, match="unknown speaker"):
        D.speaker_split(recs, "nobody")


@pytest.mark.parametrize(
    "samples, match",
    [
        (np.zeros(0), "empty"),
        (np.full(100, 0.5), "too short"),
        (np.zeros(4000), "silent"),
        (np.full(4000, np.nan), "NaN"),
    ],
)
def test_bad_audio_is_refused(samples, match):
    with pytest.raises(UserInputError, match=match):
        D.check_audio(np.asarray(samples, dtype=np.float32), SPEC)


def test_unreadable_file_is_refused(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all")
    with pytest.raises(UserInputError, match="cannot read audio file"):
        D.read_audio(bad)
    with pytest.raises(UserInputError, match="not found"):
        D.read_audio(tmp_path / "missing.wav")
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(UserInputError, match="empty"):
        D.load_audio(empty, SPEC)
