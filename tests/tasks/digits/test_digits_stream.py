"""Streaming recognition: frame-by-frame features and step-API logits equal the offline computation of the
same unidirectional model on the whole file, whatever the chunk sizes; simulated real time waits as long as
the audio lasts; bidirectional models are refused."""

import functools

import numpy as np
import pytest
import torch

from grukit.errors import UserInputError
from grukit.tasks.digits import data as D
from grukit.tasks.digits.model import DigitRecognizer
from grukit.tasks.digits.predict import features_for
from grukit.tasks.digits.stream import StreamingRecognizer, simulate

from ._digits_util import fsdd_file

FILES = ["3_theo_2.wav", "8_yweweler_0.wav", "0_george_4.wav"]


@functools.cache
def _stats():
    spec = D.FeatureSpec(n_mels=16)
    return D.feature_stats([D.raw_features(D.load_audio(fsdd_file(f), spec), spec) for f in FILES])


def _stream_model(pooling):
    torch.manual_seed(1)
    mean, var = _stats()
    return DigitRecognizer(
        hidden_size=12,
        num_layers=2,
        bidirectional=False,
        dropout=0.0,
        n_mels=16,
        normalization="running",
        feature_mean=mean,
        feature_var=var,
        prior_frames=5,
        pooling=pooling,
    ).eval()


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("name", FILES)
def test_stream_equals_offline(name, pooling):
    m = _stream_model(pooling)
    y = D.load_audio(fsdd_file(name), m.feature_spec)
    offline = torch.from_numpy(features_for(m, y))
    with torch.no_grad():
        want = m(offline[None])[0]
    rng = np.random.default_rng(0)
    rec = StreamingRecognizer(m)
    i, running = 0, []
    while i < len(y):  # ragged chunks, including ones shorter than a hop and empty ones
        n = int(rng.choice([0, 1, 37, 80, 255, 700]))
        rec.push(y[i : i + n])
        i += n
        if rec.update() is not None:
            running.append(rec.update().frames)
    final = rec.finish()
    assert rec.frames == offline.shape[0] == 1 + (len(y) - 256) // 80
    assert running == sorted(running) and running[-1] == rec.frames
    torch.testing.assert_close(rec.logits, want, atol=1e-5, rtol=0)
    assert final.label == str(int(want.argmax()))
    np.testing.assert_allclose(final.probs, torch.softmax(want, -1).numpy(), atol=1e-5)


def test_simulated_real_time_waits_for_the_audio():
    m = _stream_model("last")
    y = D.load_audio(fsdd_file(FILES[0]), m.feature_spec)
    now, waits = [0.0], []

    def sleep(s):  # a fake clock that only moves when the player waits
        waits.append(s)
        now[0] += s

    out = list(simulate(m, y, chunk_s=0.05, speed=2.0, sleep=sleep, clock=lambda: now[0]))
    n_chunks = -(-len(y) // 400)
    assert out[-1][1] and not any(final for _, final in out[:-1]) and len(out) == n_chunks + 1
    # each chunk is released when its last sample would have arrived at twice real time
    assert len(waits) == n_chunks
    np.testing.assert_allclose(waits[:-1], 400 / 8000 / 2.0)
    np.testing.assert_allclose(sum(waits), len(y) / 8000 / 2.0)
    assert len(list(simulate(m, y, chunk_s=0.05, sleep=None))) == len(out)


def test_streaming_refuses_bidirectional_silence_and_short_audio():
    with pytest.raises(UserInputError, match="unidirectional"):
        StreamingRecognizer(DigitRecognizer(n_mels=16).eval())
    m = _stream_model("last")
    rec = StreamingRecognizer(m)
    rec.push(np.zeros(100, dtype=np.float32))
    assert rec.update() is None
    with pytest.raises(UserInputError, match="too short"):
        rec.finish()
    rec.push(np.zeros(1000, dtype=np.float32))
    with pytest.raises(UserInputError, match="silent"):
        rec.finish()
    with pytest.raises(UserInputError, match="chunk"):
        next(simulate(m, np.ones(1000, dtype=np.float32), chunk_s=0))
