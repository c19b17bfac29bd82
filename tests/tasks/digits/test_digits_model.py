"""DigitRecognizer against torch.nn.GRU (the oracle) with the same weights: padded batches with lengths,
both poolings, bidirectional last states, the step API, and the save/load round trip."""

import pytest
import torch

import grukit
from grukit.tasks.digits.model import DigitRecognizer

F_IN = 12  # n_mels=6 with deltas


def _model(**kw):
    torch.manual_seed(0)
    args = dict(hidden_size=8, num_layers=2, n_mels=6, deltas=True, dropout=0.0)
    args.update(kw)
    if args.get("normalization") == "running":
        args.setdefault("feature_mean", [0.5] * F_IN)
        args.setdefault("feature_var", [2.0] * F_IN)
    m = DigitRecognizer(**args).eval()
    with torch.no_grad():  # non-zero biases everywhere so layout mistakes show
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _oracle(m: DigitRecognizer, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Logits computed row by row on the unpadded frames with torch.nn.GRU + the model's head."""
    c = m.config
    ref = torch.nn.GRU(
        F_IN, c.hidden_size, c.num_layers, batch_first=True, bidirectional=c.bidirectional
    )
    ref.load_state_dict(m.gru.state_dict())
    ref.eval()
    rows = []
    for b in range(x.shape[0]):
        out, h_n = ref(x[b : b + 1, : int(lengths[b])])
        if c.pooling == "mean":
            feat = out[0].mean(0)
        else:
            feat = torch.cat([h_n[-2, 0], h_n[-1, 0]]) if c.bidirectional else h_n[-1, 0]
        rows.append(m.head(feat))
    return torch.stack(rows)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_forward_matches_torch_gru_with_lengths(bidirectional, pooling):
    m = _model(bidirectional=bidirectional, pooling=pooling)
    x = torch.randn(4, 15, F_IN)
    lengths = torch.tensor([15, 9, 3, 12])
    with torch.no_grad():
        got = m(x, lengths)
        x_dirty = x.clone()
        x_dirty[1, 9:] = 100.0  # what lies past a row's length must not matter
        got_dirty = m(x_dirty, lengths)
        want = _oracle(m, x, lengths)
    assert got.shape == (4, 10)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_dirty, got, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_step_gives_running_prediction_equal_to_offline_prefix(pooling):
    m = _model(bidirectional=False, normalization="running", pooling=pooling)
    x = torch.randn(2, 10, F_IN)
    state = None
    with torch.no_grad():
        for t in range(10):
            logits, state = m.step(x[:, t], state)
            want = _oracle(m, x[:, : t + 1], torch.tensor([t + 1, t + 1]))
            torch.testing.assert_close(logits, want, atol=1e-5, rtol=0)
    assert m.streamable and state.h.shape == (2, 2, 8)


def test_save_load_round_trip(tmp_path):
    m = _model(bidirectional=False, normalization="running", pooling="mean")
    path = grukit.save(m, tmp_path / "d.safetensors", task="digits")
    back = grukit.load(path)
    assert isinstance(back, DigitRecognizer) and back.config == m.config
    x = torch.randn(3, 7, F_IN)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x), atol=0, rtol=0)


def test_bad_configs_and_inputs_are_refused():
    m = _model(bidirectional=True)
    assert not m.streamable
    with pytest.raises(ValueError, match="unidirectional"):
        m.step(torch.randn(1, F_IN))
    with pytest.raises(ValueError, match=r"shape \(B, T, 12\)"):
        m(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="feature_mean of length 12"):
        DigitRecognizer(n_mels=6, normalization="running")
    with pytest.raises(ValueError, match="normalization must be one of"):
        DigitRecognizer(normalization="global")
    with pytest.raises(ValueError, match="pooling must be one of"):
        DigitRecognizer(pooling="max")
