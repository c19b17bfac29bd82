"""The layer contract, run over every public layer (Keras' ``run_layer_test`` is the model).

Each case below is one public layer configuration: ``grukit.GRU`` plain and with each variant option,
``grukit.GRUCell`` and ``grukit.MinGRU``. Every case must keep the same contract (docs/conventions.md):

- shapes: ``(output, h_n)`` with torch.nn.GRU's shapes, time-major and batch-first, batched, unbatched and
  empty batches; the cell maps (B, I) → (B, H);
- dtypes: float32 and float64 parameters give outputs of that dtype, and the float32 layer matches the
  float64 one with the same weights to the float32 tolerance;
- round trips: ``from_config(config)`` and ``load_state_dict(state_dict())`` rebuild an equal layer, and
  ``grukit.save``/``grukit.load`` restore the config, every tensor and the outputs;
- one training step: in training mode every parameter gets a finite, non-zero gradient, and a small SGD step
  along the (eval-mode) gradient lowers the loss;
- ``batch_first``, ``lengths`` (outputs past a sequence's end are zero; each sequence is computed as if it
  were alone) and ``step`` == the full call (for the layers that stream; the cell, stepped along a
  sequence, equals a one-layer ``grukit.GRU`` with its weights).

Only the public API is used, so the contract holds whatever the layers' internals are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

import grukit

I, H, T, B = 3, 5, 7, 4

# fp32 / fp64 tolerances of docs/conventions.md: outputs ≤ 1e-5 / 1e-10 against an oracle, chunked / step
# against full ≤ 1e-6 / 1e-12.
OUT_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
SAME_TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: Callable[..., torch.nn.Module]  # build(batch_first=False, dtype=...) -> layer
    sequence: bool = True  # a sequence layer (GRU, MinGRU); False: the cell
    streams: bool = True  # has step (unidirectional sequence layers)


def _gru(**options):
    return lambda batch_first=False, dtype=torch.float32: grukit.GRU(
        I, H, batch_first=batch_first, dtype=dtype, **options
    )


def _mingru(**options):
    return lambda batch_first=False, dtype=torch.float32: grukit.MinGRU(
        I, H, batch_first=batch_first, dtype=dtype, **options
    )


def _cell(**options):
    return lambda batch_first=False, dtype=torch.float32: grukit.GRUCell(
        I, H, dtype=dtype, **options
    )


CASES = [
    Case("gru", _gru()),
    Case("gru-2-layers-bidirectional", _gru(num_layers=2, bidirectional=True), streams=False),
    Case("gru-reset-before", _gru(reset_after=False, num_layers=2)),
    Case("gru-no-bias", _gru(bias=False)),
    Case("gru-dropout-between-layers", _gru(num_layers=2, dropout=0.3)),
    Case("gru-layer-norm", _gru(layer_norm=True, num_layers=2)),
    Case("gru-layer-norm-reset-before", _gru(layer_norm=True, reset_after=False)),
    Case("gru-recurrent-dropout", _gru(recurrent_dropout=0.25, num_layers=2)),
    Case("gru-zoneout", _gru(zoneout=0.2)),
    Case("gru-dropconnect", _gru(dropconnect=0.3)),
    Case(
        "gru-all-variants-bidirectional",
        _gru(
            layer_norm=True, recurrent_dropout=0.2, zoneout=0.1, dropconnect=0.2, bidirectional=True
        ),
        streams=False,
    ),
    Case("mingru", _mingru(num_layers=2)),
    Case("mingru-bidirectional", _mingru(bidirectional=True), streams=False),
    Case("grucell", _cell(), sequence=False, streams=False),
    Case("grucell-reset-before", _cell(reset_after=False), sequence=False, streams=False),
]
SEQUENCE = [c for c in CASES if c.sequence]
STREAMING = [c for c in CASES if c.streams]
ids = [c.name for c in CASES]


def _layer(case: Case, dtype=torch.float32, batch_first=False, seed=0) -> torch.nn.Module:
    """The case's layer with random non-zero parameters (biases and gains included: zeros hide layouts)."""
    torch.manual_seed(seed)
    layer = case.build(batch_first=batch_first, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * 0.5)
    return layer


def _x(dtype, batch_first=False, batch=B, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, batch, I, generator=g, dtype=torch.float64).to(dtype)
    return x.transpose(0, 1).contiguous() if batch_first else x


def _dirs(layer) -> int:
    return 2 if getattr(layer, "bidirectional", False) else 1


def _run(layer, x, h=None, **kw):
    """(output, h_n) of a sequence layer, or (h', h') of the cell."""
    if isinstance(layer, grukit.GRUCell):
        h_new = layer(x, h)
        return h_new, h_new
    out = layer(x, h, **kw)
    return out[0], out[1]


def _loss(layer, case: Case, dtype=torch.float64):
    if case.sequence:
        out, h_n = _run(layer, _x(dtype))
        return (out**2).mean() + (h_n**2).mean()
    g = torch.Generator().manual_seed(2)
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64).to(dtype)
    return (layer(_x(dtype)[0], h0) ** 2).mean()


# ----------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_shapes_and_dtypes(case, dtype):
    layer = _layer(case, dtype).eval()
    assert all(p.dtype == dtype for p in layer.parameters())
    if not case.sequence:
        x = _x(dtype)[0]  # (B, I)
        h = layer(x)
        assert h.shape == (B, H) and h.dtype == dtype
        assert layer(x[0]).shape == (H,)  # unbatched
        assert layer(x[:0]).shape == (0, H)  # an empty batch follows torch
        return
    L, D = layer.num_layers, _dirs(layer)
    out, h_n = _run(layer, _x(dtype))
    assert out.shape == (T, B, D * H) and h_n.shape == (L * D, B, H)
    assert out.dtype == h_n.dtype == dtype
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    out1, h1 = _run(layer, _x(dtype)[:, 0])  # unbatched (T, I)
    assert out1.shape == (T, D * H) and h1.shape == (L * D, H)
    torch.testing.assert_close(out1, out[:, 0], atol=SAME_TOL[dtype], rtol=0)
    out0, h0 = _run(layer, _x(dtype, batch=0))  # an empty batch follows torch
    assert out0.shape == (T, 0, D * H) and h0.shape == (L * D, 0, H)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_float32_matches_float64(case):
    """The same weights in float32 and float64: the float32 outputs are within the float32 tolerance."""
    l64 = _layer(case, torch.float64).eval()
    l32 = _layer(case, torch.float32).eval()
    l32.load_state_dict({k: v.float() for k, v in l64.state_dict().items()})
    x = _x(torch.float64) if case.sequence else _x(torch.float64)[0]
    o64, h64 = _run(l64, x)
    o32, h32 = _run(l32, x.float())
    assert (o32.double() - o64).abs().max() <= OUT_TOL[torch.float32]
    assert (h32.double() - h64).abs().max() <= OUT_TOL[torch.float32]


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_config_and_state_dict_round_trip(case):
    layer = _layer(case, torch.float64).eval()
    config = layer.config
    assert dataclasses.is_dataclass(config)
    rebuilt = type(layer).from_config(config)
    assert rebuilt.config == config
    assert (
        type(layer).from_config(dataclasses.asdict(config)).config == config
    )  # as stored in a file
    assert rebuilt.state_dict().keys() == layer.state_dict().keys()
    rebuilt.load_state_dict(layer.state_dict())
    rebuilt.eval()
    x = _x(torch.float64) if case.sequence else _x(torch.float64)[0]
    for a, b in zip(_run(layer, x), _run(rebuilt, x)):
        torch.testing.assert_close(a, b, atol=SAME_TOL[torch.float64], rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_save_load_round_trip(case, dtype, tmp_path):
    layer = _layer(case, dtype).train()
    path = grukit.save(layer, tmp_path / "layer.safetensors")
    loaded = grukit.load(path)
    assert type(loaded) is type(layer) and loaded.config == layer.config
    assert not loaded.training  # load returns eval mode
    want, got = layer.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    layer.eval()
    x = _x(dtype) if case.sequence else _x(dtype)[0]
    for a, b in zip(_run(layer, x), _run(loaded, x)):
        torch.testing.assert_close(a, b, atol=SAME_TOL[dtype], rtol=0)


# --------------------------------------------------------------------------------------- training step
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_one_training_step(case):
    layer = _layer(case, torch.float64)
    # Training mode (dropout, zoneout, DropConnect active): every parameter gets a finite, non-zero gradient.
    layer.train()
    torch.manual_seed(3)
    _loss(layer, case).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{case.name}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{case.name}: {name} has a non-finite gradient"
        assert p.grad.abs().max() > 0, f"{case.name}: {name} has an all-zero gradient"
    # Eval mode is deterministic: a small step along minus the gradient lowers the loss.
    layer.zero_grad()
    layer.eval()
    before = _loss(layer, case)
    before.backward()
    with torch.no_grad():
        for p in layer.parameters():
            p -= 1e-3 * p.grad
    after = _loss(layer, case)
    assert after < before, f"{case.name}: loss {before.item()} → {after.item()} after one step"


# ------------------------------------------------------------------------------------- sequence options
@pytest.mark.parametrize("case", SEQUENCE, ids=[c.name for c in SEQUENCE])
def test_batch_first(case):
    seq = _layer(case, torch.float64).eval()
    bf = _layer(case, torch.float64, batch_first=True).eval()
    bf.load_state_dict(seq.state_dict())
    assert bf.batch_first and not seq.batch_first
    out, h_n = _run(seq, _x(torch.float64))
    out_bf, h_bf = _run(bf, _x(torch.float64, batch_first=True))
    assert out_bf.shape == (B, T, _dirs(seq) * H)
    torch.testing.assert_close(out_bf.transpose(0, 1), out, atol=SAME_TOL[torch.float64], rtol=0)
    torch.testing.assert_close(
        h_bf, h_n, atol=SAME_TOL[torch.float64], rtol=0
    )  # h_n is never batch-first


@pytest.mark.parametrize("case", SEQUENCE, ids=[c.name for c in SEQUENCE])
def test_lengths(case):
    layer = _layer(case, torch.float64).eval()
    x = _x(torch.float64)
    lengths = torch.tensor([T, 2, 5, 1])  # any order
    out, h_n = _run(layer, x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, h_alone = _run(layer, x[:n, b : b + 1])  # the sequence on its own, unpadded
        torch.testing.assert_close(out[:n, b], alone[:, 0], atol=SAME_TOL[torch.float64], rtol=0)
        torch.testing.assert_close(h_n[:, b], h_alone[:, 0], atol=SAME_TOL[torch.float64], rtol=0)
        assert (out[n:, b] == 0).all(), f"{case.name}: outputs past length {n} are not zero"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", STREAMING, ids=[c.name for c in STREAMING])
def test_step_equals_full(case, dtype):
    layer = _layer(case, dtype).eval()
    x = _x(dtype)
    g = torch.Generator().manual_seed(4)
    h0 = torch.randn(layer.num_layers, B, H, generator=g, dtype=torch.float64).to(dtype)
    out, h_n = _run(layer, x, h0)
    h, ys = h0, []
    for t in range(T):
        y_t, h = layer.step(x[t], h)
        assert y_t.shape == (B, H) and h.shape == h_n.shape
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys), out, atol=SAME_TOL[dtype], rtol=0)
    torch.testing.assert_close(h, h_n, atol=SAME_TOL[dtype], rtol=0)
    y0, h1 = layer.step(x[0, 0])  # unbatched step, zero state
    assert y0.shape == (H,) and h1.shape == (layer.num_layers, H)


@pytest.mark.parametrize("case", [c for c in SEQUENCE if not c.streams], ids=lambda c: c.name)
def test_step_refuses_bidirectional(case):
    layer = _layer(case).eval()
    with pytest.raises(ValueError, match="unidirectional|bidirectional"):
        layer.step(_x(torch.float32)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [c for c in CASES if not c.sequence], ids=lambda c: c.name)
def test_cell_stepped_equals_a_one_layer_gru(case, dtype):
    """The cell is the GRU's step: stepped along a sequence it equals grukit.GRU with the same weights."""
    cell = _layer(case, dtype)
    gru = grukit.GRU(I, H, reset_after=cell.config.reset_after, dtype=dtype).eval()
    gru.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = _x(dtype)
    g = torch.Generator().manual_seed(4)
    h = h0 = torch.randn(B, H, generator=g, dtype=torch.float64).to(dtype)
    outs = []
    for t in range(T):
        h = cell(x[t], h)
        outs.append(h)
    out, h_n = gru(x, h0[None])
    torch.testing.assert_close(torch.stack(outs), out, atol=SAME_TOL[dtype], rtol=0)
    torch.testing.assert_close(h, h_n[0], atol=SAME_TOL[dtype], rtol=0)
