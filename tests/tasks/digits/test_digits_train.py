"""Digits training pieces: augmentation (tempo interpolation, mel shift), length-bucketed batches, padding."""

import torch

from grukit.tasks.digits.train import BucketSampler, collate, warp


def test_mel_shift_moves_channels_with_edges_repeated():
    x = torch.arange(5 * 8, dtype=torch.float32).reshape(5, 8)  # n_mels=4 with deltas
    seen = set()
    for _ in range(40):
        y = warp(x, 0.0, 2, n_mels=4, deltas=True)
        k = next(
            k
            for k in range(-2, 3)
            if torch.equal(
                y,
                torch.cat(
                    [
                        x[:, :4][:, (torch.arange(4) - k).clamp(0, 3)],
                        x[:, 4:][:, (torch.arange(4) - k).clamp(0, 3)],
                    ],
                    1,
                ),
            )
        )
        seen.add(k)
    assert seen == {-2, -1, 0, 1, 2}


def test_tempo_change_interpolates_between_frames():
    x = torch.randn(50, 6)
    for _ in range(20):
        y = warp(x, 0.2, 0, n_mels=6, deltas=False)
        assert 40 <= y.shape[0] <= 60 and y.shape[1] == 6
        torch.testing.assert_close(y[0], x[0])
        torch.testing.assert_close(y[-1], x[-1])
        # a linear ramp stays the same ramp at the new frame rate
        ramp = torch.linspace(0, 1, 50)[:, None].repeat(1, 6)
        r = warp(ramp, 0.2, 0, n_mels=6, deltas=False)
        torch.testing.assert_close(r[:, 0], torch.linspace(0, 1, r.shape[0]), atol=1e-6, rtol=0)


def test_bucket_sampler_covers_every_item_once_in_similar_lengths():
    lengths = torch.randint(5, 200, (103,)).tolist()
    batches = list(BucketSampler(lengths, 8, shuffle=True, pool=4))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(103)) and all(len(b) <= 8 for b in batches)
    fixed = list(BucketSampler(lengths, 8, shuffle=False))
    order = [lengths[i] for b in fixed for i in b]
    assert order == sorted(lengths)


def test_collate_pads_and_keeps_lengths():
    x, lengths, y = collate([(torch.ones(3, 2), 4), (torch.ones(5, 2), 7)])
    assert x.shape == (2, 5, 2) and lengths.tolist() == [3, 5] and y.tolist() == [4, 7]
    assert x[0, 3:].abs().sum() == 0


def test_split_on_pauses_finds_loud_and_quiet_parts_where_they_were_placed():
    import numpy as np

    from grukit.tasks.digits.predict import split_on_pauses

    sr, rng = 8000, np.random.default_rng(0)
    y = 1e-4 * rng.standard_normal(3 * sr)
    placed = [
        (2000, 5000, 0.5),
        (9000, 11000, 0.02),
        (15000, 19000, 0.2),
    ]  # a loud, a quiet, a middle part
    t = np.arange(3 * sr) / sr
    for s, e, amp in placed:
        y[s:e] += amp * np.sin(2 * np.pi * 500 * t[s:e])
    parts = split_on_pauses(y.astype(np.float32), sr)
    assert len(parts) == 3
    for (s, e), (s0, e0, _) in zip(parts, placed):
        # each part covers its tone, widened by at most the 30 ms pad plus one 32 ms analysis frame
        assert s0 - 240 - 256 <= s <= s0 and e0 <= e <= e0 + 240 + 256


def _tones_in_white_noise(noise: float, pieces: list[tuple[float, float, float]], seed: int = 0):
    """White Gaussian noise of std ``noise`` with sines added: ``(seconds, amplitude, Hz)`` per piece,
    amplitude 0 for a pause; → (samples, [(start, end) of each piece])."""
    import numpy as np

    sr, rng = 8000, np.random.default_rng(seed)
    out, spans, pos = [], [], 0
    for seconds, amp, hz in pieces:
        n = int(seconds * sr)
        t = np.arange(n) / sr
        out.append(noise * rng.standard_normal(n) if amp == 0 else amp * np.sin(2 * np.pi * hz * t))
        spans.append((pos, pos + n))
        pos += n
    return np.concatenate(out).astype(np.float32), spans


def test_split_on_pauses_splits_two_tones_at_a_white_noise_pause_of_std_3e_3():
    from grukit.tasks.digits.predict import split_on_pauses

    y, spans = _tones_in_white_noise(
        3e-3, [(0.3, 0, 0), (0.3, 0.1, 440), (0.25, 0, 0), (0.3, 0.05, 700), (0.3, 0, 0)]
    )
    parts = split_on_pauses(y, 8000)
    assert len(parts) == 2, parts
    for (s, e), (s0, e0) in zip(parts, [spans[1], spans[3]]):
        # the tone and at most one 32 ms frame of the noise on either side
        assert s0 - 256 <= s <= s0 and e0 <= e <= e0 + 256, (parts, spans)


def test_split_on_pauses_keeps_a_quiet_coloured_ending_as_loud_as_the_pause_noise():
    """A loud tone ending in a faint 300 Hz tail with the same RMS (3e-3) as the white noise of the pauses:
    level cannot separate the tail from the pauses, spectral flatness can, so the part ends with the
    tail, not with the loud tone."""
    import numpy as np

    from grukit.tasks.digits.predict import split_on_pauses

    tail_amp = 3e-3 * np.sqrt(2)  # a sine's RMS is amplitude / sqrt(2)
    y, spans = _tones_in_white_noise(
        3e-3,
        [(0.3, 0, 0), (0.25, 0.1, 440), (0.15, tail_amp, 300), (0.3, 0, 0)],
    )
    parts = split_on_pauses(y, 8000)
    assert len(parts) == 1, parts
    (s, e), tail_end = parts[0], spans[2][1]
    assert spans[1][0] - 256 <= s <= spans[1][0], (parts, spans)
    assert tail_end - 64 <= e <= tail_end + 256, (parts, spans)


def test_resume_gives_the_same_weights(tmp_path):
    """One epoch, then --resume to two, ends where an uninterrupted two-epoch run ends (augmentation and
    shuffling on)."""
    from grukit.tasks.digits import data as D
    from grukit.tasks.digits.model import DigitsConfig
    from grukit.tasks.digits.train import prepare, train_model

    from ._digits_util import fsdd_dir

    parts = D.official_split(D.list_recordings(fsdd_dir()))
    parts = {"train": parts["train"][::100], "val": parts["val"][::30]}
    spec = D.FeatureSpec(n_mels=16)
    raw = {k: D.load_raw_features(v, spec) for k, v in parts.items()}
    labels = {k: [r.digit for r in v] for k, v in parts.items()}
    prep, cfg = prepare(
        raw,
        labels,
        DigitsConfig(hidden_size=8, num_layers=1, n_mels=16, dropout=0.0, normalization="running"),
    )
    kw = dict(
        seed=3,
        batch_size=8,
        mask_bands=2,
        mask_frames=2,
        stretch=0.2,
        shift=1,
        progress=False,
        plot=False,
    )
    full = train_model(prep, cfg, epochs=2, output_dir=tmp_path / "full", **kw)
    part = train_model(
        prep, cfg, epochs=1, output_dir=tmp_path / "part", **kw
    ).module.model.state_dict()
    part = {k: v.clone() for k, v in part.items()}
    resumed = train_model(prep, cfg, epochs=2, resume=tmp_path / "part", **kw)
    a, b = full.module.model.state_dict(), resumed.module.model.state_dict()
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 1e-6 * a[k].abs().max(), k
    assert (
        part["head.weight"] - a["head.weight"]
    ).abs().max() > 1e-4  # the second epoch did change weights


def test_split_on_pauses_keeps_two_tones_apart_when_the_pauses_are_coloured_hum():
    """Pauses of 100 Hz hum (coloured, like a microphone's own background) give the flatness test nothing
    to go on; the two parts must still be found by level, not grown over the hum into one."""
    import numpy as np

    from grukit.tasks.digits.predict import split_on_pauses

    sr = 8000
    t = np.arange(int(1.45 * sr)) / sr
    y = 2e-3 * np.sin(2 * np.pi * 100 * t)  # hum everywhere
    placed = [(int(0.3 * sr), int(0.6 * sr)), (int(0.85 * sr), int(1.15 * sr))]
    for s, e in placed:
        y[s:e] += 0.1 * np.sin(2 * np.pi * 440 * t[s:e])
    parts = split_on_pauses(y.astype(np.float32), sr)
    assert len(parts) == 2, parts
    for (s, e), (s0, e0) in zip(parts, placed):
        assert s0 - 256 <= s <= s0 and e0 <= e <= e0 + 256, parts
