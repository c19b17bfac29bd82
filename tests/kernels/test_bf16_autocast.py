"""Issue 32: the bf16 GEMMs under CPU autocast to bfloat16 (grukit.kernels.bf16, route "bf16")."""

from __future__ import annotations

import pytest
import torch
from support import randomize

import grukit
from grukit.kernels import route

fused = pytest.importorskip("grukit.kernels.fused", reason="the native kernel is not available")
from grukit.kernels import bf16  # noqa: E402

PATHS = [0, 1] if bf16.available() else [0]


@pytest.fixture
def path(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    bf16.force_path = request.param
    yield request.param
    bf16.force_path = None


def _rounded64(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).to(torch.float64)


@pytest.mark.parametrize("path", PATHS, indirect=True)
@pytest.mark.parametrize(("M", "N", "K"), [(1, 1, 1), (9, 17, 33), (37, 50, 64), (70, 3, 1030)])
def test_mm_against_float64_of_rounded_operands(path: int, M: int, N: int, K: int) -> None:
    g = torch.Generator().manual_seed(M * 1000 + N + K)
    a = torch.randn(K, M, generator=g).t()  # a strided left operand
    b = torch.randn(N, K, generator=g)
    bias = torch.randn(N, generator=g)
    got = bf16.mm(a, b, bias=bias)
    want = _rounded64(a) @ _rounded64(b).t() + bias.double()
    assert got.dtype == torch.float32 and got.shape == (M, N)
    # products of bf16 numbers are exact in float32; only the float32 summation differs
    tol = 2e-6 * (K + 1) * (_rounded64(a).abs() @ _rounded64(b).abs().t()).max().item() + 1e-6
    assert (got.double() - want).abs().max().item() <= tol
    # the concatenated left operand (as the dW_hh product builds it) equals the whole one
    cat = bf16.mm(bf16.left(a[:, : K // 2], a[:, K // 2 :]), b)
    assert torch.equal(cat, bf16.mm(a, b))


def test_rounding_is_nearest_even_like_torch() -> None:
    x = torch.randn(64, 48) * 1e3
    x[0, :4] = torch.tensor([float("inf"), -float("inf"), 0.0, -0.0])
    assert torch.equal(bf16.left(x), x.to(torch.bfloat16))


def _has_avx512bw() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(
                line.startswith("flags") and {"avx512f", "avx512bw"} <= set(line.split())
                for line in f
            )
    except OSError:
        return False


@pytest.mark.parametrize(("M", "K"), [(1, 1), (15, 31), (16, 32), (17, 33), (40, 100), (33, 64)])
def test_transposed_rows_vector_path_has_the_portable_bits(M: int, K: int) -> None:
    """The AVX-512 conversion of a transposed left operand (csrc/gru_bf16_cvt.cpp, path 1) gives the portable
    loop's bits on every value — ties, subnormals, infinities, NaNs with payloads — over the m and k tails of its
    16 × 32 blocks, and torch's rounding (an independent oracle) on every non-NaN value."""
    if not _has_avx512bw():
        pytest.skip("the AVX-512 conversion needs AVX-512 F and BW")
    g = torch.Generator().manual_seed(M * 100 + K)
    base = torch.randn(K, M + 3, generator=g) * 10.0 ** torch.randint(
        -40, 38, (K, M + 3), generator=g
    )
    bits = base.view(torch.int32)
    special = torch.tensor(
        [0x00000001, 0x80000001, 0x007FFFFF, 0x3F808000, 0x3F818000, 0x7F800000, 0xFF800000, 0x7FC00001,
         0xFFFFFFFF, 0x7F800001, 0x7F7FFFFF, 0x00008000, 0x00018000, 0x80000000, 0x3F80FFFF, 0x40008001],
        dtype=torch.int64,
    ).to(torch.int32)  # fmt: skip
    flat = bits.view(-1)
    flat[: min(flat.numel(), special.numel())] = special[: flat.numel()]
    a = base[:, 1 : M + 1].t()  # (M, K), unit stride along M, a row stride that is not M
    assert a.stride() == (1, M + 3)
    got = bf16.left(a, path=1)
    want = bf16.left(a, path=0)
    assert got.shape == (M, K + K % 2)
    assert torch.equal(got.view(torch.int16), want.view(torch.int16))
    finite = ~torch.isnan(a)
    ref = a.to(torch.bfloat16)
    assert torch.equal(got[:, :K][finite].view(torch.int16), ref[finite].view(torch.int16))
    assert bool(torch.isnan(got[:, :K][~finite]).all())


def _errors(
    model: torch.nn.Module, ref: torch.nn.Module, x: torch.Tensor, h0: torch.Tensor
) -> tuple[float, float]:
    """(max |out − float64 out| under autocast bf16, the same for the weight gradients, relative)."""
    xs = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, hn = model(xs, h0)
    (out.float().square().mean() + hn.float().sum()).backward()
    x64 = x.double().requires_grad_(True)
    out64, hn64 = ref(x64, h0.double())
    (out64.square().mean() + hn64.sum()).backward()
    err_out = (out.double() - out64).abs().max().item()
    err_grad = max(
        ((p.grad.double() - q.grad).abs().max() / q.grad.abs().max()).item()  # type: ignore[union-attr]
        for p, q in zip(model.parameters(), ref.parameters(), strict=True)
    )
    return err_out, err_grad


@pytest.mark.parametrize(
    ("bidirectional", "num_layers"), [(False, 1), (True, 2)], ids=["uni", "bi2"]
)
def test_autocast_error_within_twice_nn_gru(bidirectional: bool, num_layers: int) -> None:
    """The error bound of issue 32: grukit's autocast error ≤ 2 × nn.GRU's under the same autocast
    (float64 nn.GRU as the oracle; non-zero biases and h0)."""
    I, H, T, B = 24, 48, 40, 6
    torch.manual_seed(0)
    D = 2 if bidirectional else 1
    ref = randomize(torch.nn.GRU(I, H, num_layers, bidirectional=bidirectional), seed=3)
    nn_gru = torch.nn.GRU(I, H, num_layers, bidirectional=bidirectional)
    nn_gru.load_state_dict(ref.state_dict())
    ours = grukit.GRU(I, H, num_layers, bidirectional=bidirectional)
    ours.load_state_dict(ref.state_dict())
    ref.double()
    x = torch.randn(T, B, I)
    h0 = torch.randn(num_layers * D, B, H) * 0.5
    before = fused.calls["bf16_sequence"]
    ours_out, ours_grad = _errors(ours, ref, x, h0)
    ref.zero_grad()
    nn_out, nn_grad = _errors(nn_gru, ref, x, h0)
    assert nn_out > 0  # nn.GRU does compute in bf16 here (the bound is not vacuous)
    assert ours_out <= 2 * nn_out, (ours_out, nn_out)
    assert ours_grad <= 2 * nn_grad, (ours_grad, nn_grad)
    if bf16.available():
        assert fused.calls["bf16_sequence"] == before + num_layers * D


def test_lengths_and_reset_before_match_float64_within_bf16_error() -> None:
    """The hprev (lengths) branch through the layer, and the reset_after=False branches of bf16.sequence (the
    route sends only reset_after=True layers there), against float64."""
    from grukit.functional import gru as fgru

    I, H, T, B = 10, 16, 12, 5
    lengths = torch.tensor([12, 7, 3, 12, 1])
    m = randomize(grukit.GRU(I, H, bidirectional=True), seed=5)
    m64 = grukit.GRU(I, H, bidirectional=True, backend="torch")
    m64.load_state_dict(m.state_dict())
    m64.double()
    x = torch.randn(T, B, I)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = m(x, lengths=lengths)
    out.sum().backward()
    out64, _ = m64(x.double(), lengths=lengths)
    out64.sum().backward()
    assert (out.double() - out64).abs().max().item() < 2e-2
    for p, q in zip(m.parameters(), m64.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        assert ((p.grad.double() - q.grad).abs().max() / q.grad.abs().max()).item() < 2e-2
    g = torch.Generator().manual_seed(7)
    ws = [torch.randn(3 * H, n, generator=g) * 0.4 for n in (I, H)] + [
        torch.randn(3 * H, generator=g) * 0.4 for _ in range(2)
    ]
    h0 = torch.randn(B, H, generator=g) * 0.5
    for lens in (None, lengths):
        for reverse in (False, True):
            w32 = [w.clone().requires_grad_(True) for w in ws]
            w64 = [w.double().requires_grad_(True) for w in ws]
            o, hn, _ = bf16.sequence(x, h0, *w32, reset_after=False, lengths=lens, reverse=reverse)
            o64, hn64, _ = fgru.sequence(
                x.double(), h0.double(), *w64, False, lengths=lens, reverse=reverse
            )
            (o.square().sum() + hn.sum()).backward()
            (o64.square().sum() + hn64.sum()).backward()
            assert (o.double() - o64).abs().max().item() < 2e-2
            for p, q in zip(w32, w64, strict=True):
                assert p.grad is not None and q.grad is not None
                assert ((p.grad.double() - q.grad).abs().max() / q.grad.abs().max()).item() < 2e-2


def test_route_table_for_autocast() -> None:
    x = torch.zeros(3, 2, 4)
    with torch.autocast("cpu", dtype=torch.float16):
        d = route.choose(route.Spec(), x, autocast="cpu")
    assert d.route == "op"  # float16 autocast keeps the float32 kernel
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = route.choose(route.Spec(), x, autocast="cpu")
        gates = route.choose(route.Spec(), x, autocast="cpu", return_gates=True)
    assert d.route == ("bf16" if bf16.available() else "op")
    assert gates.route != "bf16"


def test_forcing_the_dp_path_without_the_instructions_raises() -> None:
    if bf16.available():
        pytest.skip("this CPU has AVX-512-BF16: the refusal cannot be observed")
    bf16.force_path = 1
    try:
        with pytest.raises(RuntimeError, match="AVX-512-BF16"):
            bf16.mm(torch.ones(2, 2), torch.ones(2, 2))
    finally:
        bf16.force_path = None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("B", "H"), [(9, 17), (5, 40)])
def test_recurrent_bf16_kernels_against_float64_on_rounded_products(
    threads: int, B: int, H: int
) -> None:
    """Odd hidden sizes (padding of the bf16 pairs), batch tails of the register tiles and the threaded
    split, against the same GRU in float64 — and the bf16 recurrence on/off agree to bf16 accuracy."""
    if not bf16.available():
        pytest.skip("the bf16 recurrent kernels need AVX-512-BF16 (the float32 route runs instead)")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        I, T = 7, 11
        m = randomize(grukit.GRU(I, H), seed=B)
        m64 = grukit.GRU(I, H, backend="torch")
        m64.load_state_dict(m.state_dict())
        m64.double()
        x = torch.randn(T, B, I)
        h0 = torch.randn(1, B, H) * 0.5
        grads = []
        for rec in (True, False):
            bf16.recurrent = rec
            m.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, hn = m(x, h0)
            (out.square().sum() + hn.sum()).backward()
            grads.append([p.grad.clone() for p in m.parameters()])  # type: ignore[union-attr]
            out64, hn64 = m64(x.double(), h0.double())
            assert (out.double() - out64).abs().max().item() < 3e-2
        m64.zero_grad()
        (out64.square().sum() + hn64.sum()).backward()
        for g_rec, g_f32, p in zip(*grads, m64.parameters(), strict=True):
            assert p.grad is not None
            scale = p.grad.abs().max()
            assert ((g_rec.double() - p.grad).abs().max() / scale).item() < 3e-2
            assert ((g_f32.double() - p.grad).abs().max() / scale).item() < 3e-2
    finally:
        bf16.recurrent = True
        torch.set_num_threads(old)


def test_interleaved_training_calls_match_separate_ones() -> None:
    """The autocast path's bf16 operand copies and gi come from the thread's workspace: two models' forwards,
    then their backwards in the other order, give the gradients each gives alone (no buffer still in use is
    handed out again), and a repeated call gives the same bits."""
    torch.manual_seed(3)
    models = [randomize(grukit.GRU(24, 40), seed=s) for s in (1, 2)]
    xs = [torch.randn(30, 12, 24) for _ in models]

    def grads(m: torch.nn.Module) -> list[torch.Tensor]:
        return [p.grad.clone() for p in m.parameters()]  # type: ignore[union-attr]

    alone = []
    for m, x in zip(models, xs, strict=True):
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = m(x)
        out.float().square().sum().backward()
        alone.append(grads(m))
    for m in models:
        m.zero_grad()
    n0 = fused.calls["bf16_sequence"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [m(x)[0] for m, x in zip(models, xs, strict=True)]
    assert fused.calls["bf16_sequence"] == n0 + (2 if bf16.available() else 0)
    for o in reversed(outs):
        o.float().square().sum().backward()
    for m, want in zip(models, alone, strict=True):
        for g, w in zip(grads(m), want, strict=True):
            assert torch.equal(g, w)
