"""int8 weights (grukit.quantize(model, "int8"), csrc/gru_int8.cpp) against a float64 reference that applies
the same rounding.

The reference (``grukit.reference.int8``, NumPy) takes the module's stored int8 weights and float32 scales (dequantized in
float64) and rounds each input vector of a matrix product as the kernel documents (an 8-bit magnitude,
amax/255 apart, and its sign, computed in float32 exactly as the kernel does), then runs the GRU step in
float64. What is left between the two is float32 arithmetic: the final ``acc · (s_x · s_w) + b`` and the gates.
For a stack, layer l + 1 is checked on the kernel's own layer-l output (the rounding of a vector is
discontinuous, so a reference fed its own float64 output could round one element the other way).
"""

import copy

import numpy as np
import pytest
import torch
from support import randomize

import grukit
from grukit.nn import Streamer
from grukit.reference import int8 as int8_ref

stream = pytest.importorskip("grukit.kernels.stream")
INT8_PATHS = [p for p, c in stream.INT8_PATHS.items() if stream._lib.grukit_step_i8_path_ok(c)]
TOL = 1e-5  # docs/conventions.md: the int8 step against the reference with the same rounding


@pytest.fixture
def int8_path():
    yield
    stream.set_path("int8-auto")


# ----------------------------------------------------------------------------- the float64 reference
def _deq(q, s):
    """q · s exactly (float64) of a module's int8 weights and float32 scales."""
    return q.detach().numpy().astype(np.float64) * s.detach().numpy().astype(np.float64)[:, None]


def module_layers(m):
    """Per layer: (W_ih, W_hh dequantized in float64, b_ih, b_hh float64 or None)."""
    if isinstance(m, grukit.GRUCell):
        names = [("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    else:
        names = m._param_names
    out = []
    for n_ih, n_hh, n_bi, n_bh in names:
        w_ih = _deq(getattr(m, n_ih), getattr(m, n_ih + "_scale"))
        w_hh = _deq(getattr(m, n_hh), getattr(m, n_hh + "_scale"))
        bs = [None if n is None else getattr(m, n).detach().double().numpy() for n in (n_bi, n_bh)]
        out.append((w_ih, w_hh, *bs))
    return out


def ref_stack_step(m, x, h, h_new, reset_after):
    """The reference of one stacked step: layer l on the kernel's layer-(l-1) output h_new[l-1]."""
    layers = module_layers(m)
    want = np.zeros(h_new.shape)
    for b in range(x.shape[0]):
        for k, lw in enumerate(layers):
            inp = x[b].numpy() if k == 0 else h_new[k - 1, b].numpy()
            want[k, b] = int8_ref.gru_cell(inp[None], h[k, b].numpy()[None], *lw, reset_after)[0]
    return want


def close(got, want, tol=TOL):
    err = np.abs(got.detach().double().numpy() - want).max()
    assert err <= tol, f"max error {err:.3g} > {tol}"


# ------------------------------------------------------------------------------------------- tests
def test_quantize_rows_bounds_and_undo():
    gru = randomize(grukit.GRU(70, 45, num_layers=2))
    with torch.no_grad():
        gru.weight_hh_l1[3].zero_()  # a zero row: scale 0, q 0
    w32 = {n: p.detach().clone() for n, p in gru.named_parameters()}
    grukit.quantize(gru, "int8")
    for n in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"):
        q, s = getattr(gru, n), getattr(gru, n + "_scale")
        assert q.dtype == torch.int8 and not q.requires_grad and s.dtype == torch.float32
        assert n + "_scale" in dict(gru.named_buffers())
        w = w32[n].double()
        amax = w.abs().amax(1)
        np.testing.assert_allclose(s.double(), amax / 127, rtol=1e-6)  # per row, symmetric
        assert int(q.abs().max()) == 127 and int(q.min()) >= -127
        nz = amax > 0
        assert (q.abs().amax(1)[nz] == 127).all()  # each non-zero row uses the full range
        err = (q.double() * s.double()[:, None] - w).abs()
        assert (err <= s.double()[:, None] * 0.5 * (1 + 1e-5) + 1e-12).all()  # round to nearest
        q_ref, s_ref = int8_ref.quantize_rows(w32[n].numpy())  # the NumPy spec: the same bits
        assert np.array_equal(q.numpy(), q_ref) and np.array_equal(s.numpy(), s_ref)
    assert float(gru.weight_hh_l1_scale[3]) == 0 and not gru.weight_hh_l1[3].any()
    assert gru.bias_hh_l0.dtype == torch.float32
    back = grukit.quantize(gru, "float32")
    assert back is gru and gru._qweights is None
    assert not [n for n, _ in gru.named_buffers()]  # the scales are gone
    for n, p in gru.named_parameters():
        assert p.dtype == torch.float32 and p.requires_grad
        assert (p.detach() - w32[n]).abs().max() <= w32[n].abs().max() / 254 + 1e-7


@pytest.mark.parametrize("path", INT8_PATHS)
@pytest.mark.parametrize("reset_after", [True, False])
def test_int8_cell_step_streamer_against_reference(path, reset_after, int8_path):
    stream.set_path(path)
    # tails: K not a multiple of 64 (70, 45), 3H rows not a multiple of 16 (135)
    gru = grukit.quantize(
        randomize(grukit.GRU(70, 45, num_layers=2, reset_after=reset_after)).eval(), "int8"
    )
    x, h0 = torch.randn(3, 70), torch.randn(2, 3, 45)
    with torch.inference_mode():
        gru.step(x, h0)  # builds the plan
        y, h_new = gru.step(x, h0)
        assert gru._step_plan.path == path
        close(h_new, ref_stack_step(gru, x, h0, h_new, reset_after))
        close(y, h_new[-1].numpy())
        s = Streamer(gru, batch_size=3)
        assert s.path == path
        s.reset(h0)
        assert torch.equal(s.step(x), h_new[-1])  # the same kernel call
    cell = grukit.quantize(
        randomize(grukit.GRUCell(130, 33, reset_after=reset_after), seed=2), "int8"
    )
    xc, hc = torch.randn(2, 130), torch.randn(2, 33)
    with torch.no_grad():
        got = cell(xc, hc)
        assert cell._step_plan.path == path
    close(got[None], ref_stack_step(cell, xc, hc[None], got[None], reset_after))


@pytest.mark.skipif(
    len(INT8_PATHS) < 2, reason="this CPU has no AVX-512-VNNI: the generic path only"
)
def test_vnni_and_generic_paths_give_the_same_bits(int8_path):
    for reset_after, bias in ((True, True), (False, True), (True, False)):
        gru = grukit.quantize(
            randomize(grukit.GRU(200, 64, num_layers=3, reset_after=reset_after, bias=bias)), "int8"
        )
        x = torch.randn(20, 2, 200) * 3
        outs = []
        for path in ("int8-vnni", "int8-generic"):
            stream.set_path(path)
            s = Streamer(gru, batch_size=2)
            assert s.path == path
            outs.append(torch.stack([s.step(x_t.contiguous()).clone() for x_t in x]))
        assert torch.equal(outs[0], outs[1])


def _rollout_errors(fmt, H=64, steps=200):
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(16, H)  # the float32 oracle: torch's own cell
    xs = torch.randn(steps, 1, 16)
    cell = grukit.GRUCell(16, H)
    cell.load_state_dict(ref.state_dict())
    grukit.quantize(cell, fmt)
    gru = grukit.GRU(16, H)
    gru.load_state_dict({k + "_l0": v for k, v in ref.state_dict().items()})
    grukit.quantize(gru, fmt)
    s = Streamer(gru)
    with torch.inference_mode():
        h32, hq, e_cell, e_stream = torch.zeros(1, H), torch.zeros(1, H), 0.0, 0.0
        for x_t in xs:
            h32 = ref(x_t, h32)
            hq = cell(x_t, hq)
            e_cell = max(e_cell, float((hq - h32).abs().max()))
            e_stream = max(e_stream, float((s.step(x_t) - h32).abs().max()))
    return e_cell, e_stream


def test_200_step_rollout_stays_close_to_float32():
    """GRUCell and Streamer with int8 weights over 200 steps against torch.nn.GRUCell in float32 (H=64,
    torch's default init): max |h - h_fp32| measured 0.0033 (bf16: 0.0011); bounded at 0.01."""
    e_cell, e_stream = _rollout_errors("int8")
    assert e_cell <= 0.01 and e_stream <= 0.01
    assert e_cell == e_stream  # the same kernel, the same rounding
    b_cell, _ = _rollout_errors("bf16")
    assert 0 < b_cell < e_cell  # int8 rounds more than bf16, and it does round


def test_sequence_forward_runs_float32_on_dequantized_weights():
    gru = grukit.quantize(randomize(grukit.GRU(6, 20, num_layers=2)).eval(), "int8")
    deq = grukit.quantize(copy.deepcopy(gru), "float32")  # q · s as float32 parameters
    x, h0 = torch.randn(7, 3, 6), torch.randn(2, 3, 20)
    with torch.inference_mode():
        out, h_n = gru(x, h0)
        want, want_h = deq(x, h0)
    assert torch.equal(out, want) and torch.equal(h_n, want_h)
    assert gru.weight_hh_l0.dtype == torch.int8  # restored after the call
    cell = grukit.quantize(randomize(grukit.GRUCell(6, 20)), "int8")
    deq = grukit.quantize(copy.deepcopy(cell), "float32")
    with torch.no_grad():  # unbatched: the general path on dequantized weights
        got = cell(x[0, 0], h0[0, 0])
        want = deq(x[0, 0], h0[0, 0])
    assert torch.equal(got, want)


def test_nan_input_gives_nan_for_its_row_only():
    cell = grukit.quantize(randomize(grukit.GRUCell(8, 16)), "int8")
    x, h = torch.randn(2, 8), torch.randn(2, 16)
    x[1, 3] = float("nan")
    with torch.no_grad():
        cell(x, h)
        out = cell(x, h)
    assert cell._step_plan is not None
    assert torch.isnan(out[1]).all() and torch.isfinite(out[0]).all()
    with torch.no_grad():
        zero = cell(torch.zeros(1, 8), torch.zeros(1, 16))  # amax = 0: the products are 0
    b = cell.bias_ih + cell.bias_hh
    r, z = torch.sigmoid(b[:16]), torch.sigmoid(b[16:32])
    n = torch.tanh(cell.bias_ih[32:] + r * cell.bias_hh[32:])
    close(zero, ((1 - z) * n).detach().double().numpy()[None])


def test_training_is_refused_and_errors_are_clear():
    gru = grukit.quantize(grukit.GRU(4, 6), "int8")
    x = torch.randn(3, 2, 4)
    gru(x)  # grad mode, nothing requires grad: inference, allowed
    with pytest.raises(
        RuntimeError, match="int8 weights.*for inference only.*an input requires grad"
    ):
        gru(x.requires_grad_())
    with pytest.raises(RuntimeError, match="grukit.quantize\\(model, 'float32'\\)"):
        gru.step(torch.randn(2, 4, requires_grad=True))
    with pytest.raises(RuntimeError, match="(?i)only tensors of floating point"):
        gru.weight_hh_l0.requires_grad_()  # torch itself: int8 tensors cannot require grad
    with pytest.raises(ValueError, match="expected torch.float32 weights to convert to torch.int8"):
        grukit.quantize(grukit.quantize(grukit.GRU(4, 6), "bf16"), "int8")
    with pytest.raises(ValueError, match="expected torch.float32 weights"):
        grukit.quantize(grukit.GRU(4, 6, dtype=torch.float64), "int8")
    bad = grukit.GRU(4, 6, num_layers=2)
    with torch.no_grad():
        bad.weight_hh_l1[0, 0] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        grukit.quantize(bad, "int8")
    assert bad.weight_ih_l0.dtype == torch.float32 and not list(bad.buffers())  # unchanged
    with pytest.raises(ValueError, match="dtype must be one of"):
        grukit.quantize(gru, "int4")
    back = grukit.quantize(gru, "float32")
    back(x.detach().requires_grad_())[0].sum().backward()
    assert back.weight_hh_l0.grad is not None


def test_state_dict_across_formats(tmp_path):
    from safetensors.torch import load_file, save_file

    model = randomize(grukit.GRU(5, 12, num_layers=2)).eval()
    q = grukit.quantize(copy.deepcopy(model), "int8")
    sd = q.state_dict()
    assert (
        sd["weight_hh_l1"].dtype == torch.int8 and sd["weight_hh_l1_scale"].dtype == torch.float32
    )
    save_file(sd, tmp_path / "m.safetensors")
    sd = load_file(tmp_path / "m.safetensors")
    x = torch.randn(4, 1, 5)
    with torch.inference_mode():
        want = q(x)[0]
        # into another int8 model: the same weights and scales
        other = grukit.quantize(grukit.GRU(5, 12, num_layers=2), "int8")
        other.load_state_dict(sd)
        assert torch.equal(other(x)[0], want)
        assert torch.equal(other.step(x[0])[0], q.step(x[0])[0])
        # into a float32 model: the dequantized weights (as bf16 weights arrive rounded)
        f32 = grukit.GRU(5, 12, num_layers=2)
        f32.load_state_dict(sd)
        assert f32.weight_hh_l1.dtype == torch.float32
        assert torch.equal(f32.weight_hh_l1, q.weight_hh_l1.float() * q.weight_hh_l1_scale[:, None])
        assert torch.equal(f32(x)[0], want)
    # a float32 state dict into an int8 model: quantized on the way in, as quantize would
    q2 = grukit.quantize(grukit.GRU(5, 12, num_layers=2), "int8")
    q2.load_state_dict(model.state_dict())
    assert torch.equal(q2.weight_ih_l0, q.weight_ih_l0)
    assert torch.equal(q2.weight_ih_l0_scale, q.weight_ih_l0_scale)
    # int8 weights without their scale cannot be read
    del sd["weight_hh_l0_scale"]
    with pytest.raises(RuntimeError, match="int8 weights without their scales weight_hh_l0_scale"):
        grukit.GRU(5, 12, num_layers=2).load_state_dict(sd)
    with pytest.raises(RuntimeError, match="int8 weights without their scales"):
        grukit.quantize(grukit.GRU(5, 12, num_layers=2), "int8").load_state_dict(sd, strict=False)


def test_cell_state_dict_across_formats():
    """GRUCell registers the same cross-format load as GRU: int8 into float32 dequantizes, float32 into
    int8 quantizes (each checked against the quantized cell's own int8 values and scales)."""
    cell = randomize(grukit.GRUCell(6, 10))
    q = grukit.quantize(copy.deepcopy(cell), "int8")
    f32 = grukit.GRUCell(6, 10)
    f32.load_state_dict(q.state_dict())
    assert f32.weight_hh.dtype == torch.float32
    assert torch.equal(f32.weight_hh, q.weight_hh.float() * q.weight_hh_scale[:, None])
    q2 = grukit.quantize(grukit.GRUCell(6, 10), "int8")
    q2.load_state_dict(cell.state_dict())
    assert torch.equal(q2.weight_ih, q.weight_ih) and torch.equal(
        q2.weight_ih_scale, q.weight_ih_scale
    )


def test_plan_sees_replaced_scales_and_copies_rebuild(int8_path):
    cell = grukit.quantize(randomize(grukit.GRUCell(8, 16)), "int8")
    x, h = torch.randn(1, 8), torch.randn(1, 16)
    with torch.no_grad():
        cell(x, h)
        plan = cell._step_plan
        a = cell(x, h)
        cell.weight_hh_scale.mul_(2)  # in place on a scale: the plan is rebuilt, the new scale read
        b = cell(x, h)
        assert cell._step_plan is not plan
        close(b[None], ref_stack_step(cell, x, h[None], b[None], True))
        assert not torch.equal(a, b)
        cp = copy.deepcopy(cell)
        assert cp._step_plan is None
        assert torch.equal(cp(x, h), b)
    assert stream.set_path("int8-generic") == "int8-generic"
    assert grukit.kernels.status()["stream_paths"]["int8"] == "int8-generic"
    with pytest.raises(ValueError, match="expected a path of"):
        stream.set_path("int8-amx")


@pytest.mark.parametrize("fmt", ["bf16", "int8"])
def test_grukit_save_and_load_of_a_quantized_model(fmt, tmp_path):
    """grukit.save writes the quantized tensors (int8: with their scales) under a float32 config;
    grukit.load gives a float32 model holding the rounded weights, which computes what the quantized model's
    float32 paths compute."""
    for model, x in (
        (randomize(grukit.GRU(5, 12, num_layers=2)), torch.randn(4, 2, 5)),
        (randomize(grukit.GRUCell(5, 12)), torch.randn(5)),  # unbatched: the float32 path
    ):
        q = grukit.quantize(model, fmt)
        assert q.config.dtype == "float32"
        path = grukit.save(q, tmp_path / f"{fmt}.safetensors")
        back = grukit.load(path)
        assert type(back) is type(q) and back._qweights is None
        assert all(p.dtype == torch.float32 for p in back.parameters())
        assert not list(back.buffers())
        with torch.no_grad():
            a, b = back(x), q(x)
        a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
        assert torch.equal(a, b)


def _f32_deq(q, s):
    """float32 q · s (what grukit.quantize(model, "float32") gives), as float64 NumPy values."""
    qn, sn = q.detach().numpy().astype(np.float32), s.detach().numpy().astype(np.float32)
    return (qn * sn[:, None]).astype(np.float64)


@pytest.mark.parametrize("conv", ["double", "to", "type"])
def test_int8_model_converted_to_float64_computes_in_float64(conv):
    """.double() / .to(float64) / .type(float64) on an int8 model: the int8 weights and their float32 scales
    keep their dtypes (before, .double() turned the scales float64 and the model refused float64 inputs
    with a misleading error; .type() would have turned q into floats), the biases convert, and the model
    computes in float64 on q · s: checked against grukit.reference in float64 (tol 1e-12)."""
    from grukit import reference

    to64 = {
        "double": lambda m: m.double(),
        "to": lambda m: m.to(torch.float64),
        "type": lambda m: m.type(torch.float64),
    }[conv]
    gru = grukit.quantize(randomize(grukit.GRU(5, 12, num_layers=2)).eval(), "int8")
    cell = grukit.quantize(randomize(grukit.GRUCell(5, 12)).eval(), "int8")
    for m in (gru, cell):
        assert to64(m) is m
        for n, p in m.named_parameters():
            assert p.dtype == (torch.int8 if n.startswith("weight") else torch.float64), n
        assert all(b.dtype == torch.float32 for b in m.buffers())
    assert gru.config.dtype == cell.config.dtype == "float64"
    x, h0 = torch.randn(4, 3, 5, dtype=torch.float64), torch.randn(2, 3, 12, dtype=torch.float64)
    params = {}
    for k in range(2):
        for w in ("weight_ih", "weight_hh"):
            n = f"{w}_l{k}"
            params[n] = _f32_deq(getattr(gru, n), getattr(gru, n + "_scale"))
        for b in ("bias_ih", "bias_hh"):
            params[f"{b}_l{k}"] = getattr(gru, f"{b}_l{k}").detach().numpy()
    want, want_h, _ = reference.gru(x.numpy(), params, num_layers=2, h0=h0.numpy())
    with torch.inference_mode():
        out, h_n = gru(x, h0)
        h1 = cell(x[0], h0[0])
        y, h_step = gru.step(x[0], h0)
    assert out.dtype == h1.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), want_h, rtol=0, atol=1e-12)
    assert torch.equal(h_step[-1], y)
    np.testing.assert_allclose(y.numpy(), want[0], rtol=0, atol=1e-12)
    w_ih, w_hh = (
        _f32_deq(getattr(cell, n), getattr(cell, n + "_scale")) for n in ("weight_ih", "weight_hh")
    )
    b_ih, b_hh = (getattr(cell, n).detach().numpy() for n in ("bias_ih", "bias_hh"))
    want_c, _ = reference.gru_cell(x[0].numpy(), h0[0].numpy(), w_ih, w_hh, b_ih, b_hh)
    np.testing.assert_allclose(h1.numpy(), want_c, rtol=0, atol=1e-12)
    with pytest.raises(
        TypeError, match="float64"
    ):  # float32 inputs into the float64 model: a clear error
        cell(x[0].float(), h0[0].float())


def test_float64_int8_model_saves_and_loads_as_float64(tmp_path):
    gru = grukit.quantize(randomize(grukit.GRU(4, 8)), "int8").double()
    grukit.save(gru, tmp_path / "m.safetensors")
    back = grukit.load(tmp_path / "m.safetensors")
    assert {p.dtype for p in back.parameters()} == {torch.float64}
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(back(x)[0], gru(x)[0])


def test_int8_model_half_and_back_to_float():
    """.half() on an int8 model computes in float16 on q · s (as the dequantized float32 model converted with
    .half() does: the same result, and within float16 rounding of the float64 reference); .float() after it
    gives back a float32 model with the int8 streaming step (its biases rounded to float16 and back, as any
    model's would be), bit for bit the same as the original int8 model with those biases."""
    from grukit import reference

    cell = grukit.quantize(randomize(grukit.GRUCell(6, 16)).eval(), "int8")
    x, h = torch.randn(3, 6), torch.randn(3, 16)
    orig = copy.deepcopy(cell)
    deq_half = grukit.quantize(copy.deepcopy(cell), "float32").half()
    cell.half()
    assert cell.weight_hh.dtype == torch.int8 and cell.weight_hh_scale.dtype == torch.float32
    assert cell.config.dtype == "float16"
    with torch.inference_mode():
        got = cell(x.half(), h.half())
        want = deq_half(x.half(), h.half())
    assert got.dtype == torch.float16 and torch.equal(got, want)
    w_ih, w_hh = (
        _f32_deq(getattr(cell, n), getattr(cell, n + "_scale")) for n in ("weight_ih", "weight_hh")
    )
    b_ih, b_hh = (getattr(cell, n).detach().double().numpy() for n in ("bias_ih", "bias_hh"))
    ref, _ = reference.gru_cell(x.double().numpy(), h.double().numpy(), w_ih, w_hh, b_ih, b_hh)
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=0, atol=2e-2)
    cell.float()
    with torch.no_grad():
        for b in (orig.bias_ih, orig.bias_hh):
            b.copy_(b.half().float())
    n0 = stream._calls["cell"]
    with torch.inference_mode():
        again = cell(x, h)
        before = orig(x, h)
    assert stream._calls["cell"] == n0 + 2  # the int8 streaming step runs again, in both
    assert torch.equal(again, before)
    # undoing the quantization of a float64 int8 model gives float64 weights (the model's dtype), not float32
    undone = grukit.quantize(
        grukit.quantize(randomize(grukit.GRUCell(4, 8)), "int8").double(), "float32"
    )
    assert {p.dtype for p in undone.parameters()} == {torch.float64}


def test_bf16_model_converted_to_float64_is_an_ordinary_float64_model():
    """.double() on a bf16-quantized model gives an ordinary float64 model on the bf16-rounded weights, as
    .bfloat16().double() gives any torch module: it trains (before, it kept the bf16 format, so an input that
    required grad was refused), config says float64, and it matches grukit.reference in float64 on those
    weights, gradients included (against torch.nn.GRU in float64). A device move keeps the bf16 format."""
    from grukit import reference

    gru = grukit.quantize(randomize(grukit.GRU(5, 12, num_layers=2)), "bf16")
    assert gru.to("cpu")._qweights == "bf16"
    rounded = {n: p.detach().double() for n, p in gru.named_parameters()}
    gru.double()
    assert gru._qweights is None and gru.config.dtype == "float64"
    assert all(p.dtype == torch.float64 and p.requires_grad for p in gru.parameters())
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    out, _ = gru(x)
    want, _, _ = reference.gru(
        x.detach().numpy(), {n: t.numpy() for n, t in rounded.items()}, num_layers=2
    )
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=0, atol=1e-12)
    oracle = torch.nn.GRU(5, 12, num_layers=2).double()
    with torch.no_grad():
        for n, t in rounded.items():
            getattr(oracle, n).copy_(t)
    x2 = x.detach().clone().requires_grad_(True)
    oracle(x2)[0].square().sum().backward()
    out.square().sum().backward()
    assert x.grad is not None and x2.grad is not None
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        gru.weight_hh_l1.grad, oracle.weight_hh_l1.grad, rtol=1e-10, atol=1e-12
    )
    cell = grukit.quantize(randomize(grukit.GRUCell(5, 12)), "bf16").float()
    assert cell._qweights is None and cell.config.dtype == "float32"
    assert all(p.requires_grad for p in cell.parameters())
