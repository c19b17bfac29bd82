"""Exported programs that run without grukit: ``grukit::gru_sequence_export`` and its scan decomposition.

Under ``torch.export`` the layer emits the CompositeImplicitAutograd-only op; a plain
``run_decompositions()`` replaces it by a ``scan`` loop in core ATen. The oracles: the float64 NumPy
reference (``grukit.reference``), and grukit's eager layer (the fused kernel) within the fused-vs-composite
tolerance of docs/conventions.md (1e-6 in float32).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from support import numpy_params, randomize

import grukit
from grukit import reference
from grukit.kernels import export as export_op
from grukit.reference import variants as ref_variants

FUSED_TOL = 1e-6  # fused against composite, float32 (docs/conventions.md)
REF_TOL = 1e-5  # against the float64 reference, float32
EXPORT_OP = "grukit.gru_sequence_export"


def _targets(gm: torch.fx.GraphModule) -> list[str]:
    """The call targets of a graph and of every subgraph below it (the scan bodies)."""
    out = []
    for mod in gm.modules():
        if isinstance(mod, torch.fx.GraphModule):
            out += [str(n.target) for n in mod.graph.nodes if n.op == "call_function"]
    return out


def _export(model, args, T_dim: int, *, strict: bool = False):
    T = torch.export.Dim("T", min=2, max=4096)
    shapes = ({T_dim: T},) + (None,) * (len(args) - 1)
    return torch.export.export(model, args, dynamic_shapes=shapes, strict=strict)


def _decomposed(model, args, T_dim: int):
    """Export with a dynamic T, check the op is there, decompose, check no grukit op is left."""
    ep = _export(model, args, T_dim)
    before = _targets(ep.graph_module)
    assert any(EXPORT_OP in t for t in before), before
    assert not any("grukit.gru_sequence.default" in t for t in before)  # not the fused op
    dec = ep.run_decompositions()  # no table: the CompositeImplicitAutograd op is removed
    after = _targets(dec.graph_module)
    assert not any("grukit" in t for t in after), [t for t in after if "grukit" in t]
    assert any("scan" in t for t in after), after
    return ep, dec


# ------------------------------------------------------------------------- the op's loop, eagerly
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [6, 3, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("variant", ["plain", "no-bias", "ln+zoneout"])
@pytest.mark.parametrize("path", ["scan", "op"])
def test_export_op_matches_the_float64_reference(reset_after, reverse, lengths, variant, path):
    """One direction against the float64 reference: the decomposition (the scan operator, run eagerly by
    torch's loop) and the op called eagerly (the fused kernel, or the composite loop for the variants)."""
    g = torch.Generator().manual_seed(3)
    T, B, I, H = 6, 3, 2, 4

    def r(*s, scale=0.5):
        return torch.randn(*s, generator=g, dtype=torch.float64) * scale

    x, h0, w_ih, w_hh = r(T, B, I, scale=1.0), r(B, H), r(3 * H, I), r(3 * H, H)
    b_ih, b_hh = (None, None) if variant == "no-bias" else (r(3 * H), r(3 * H))
    ln = variant == "ln+zoneout"
    ln_ih, ln_hh = (1 + r(3 * H), 1 + r(3 * H)) if ln else (None, None)
    p = 0.3 if variant == "ln+zoneout" else 0.0
    lens = None if lengths is None else torch.tensor(lengths)
    f = [t if t is None else t.float() for t in (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh)]
    if path == "scan":
        out, h_n = export_op._scan_sequence(*f[:6], lens, f[6], f[7], p, reset_after, reverse)
    else:
        out, h_n, _ = export_op.sequence(
            *f[:6], reset_after, lens, reverse, ln_ih=f[6], ln_hh=f[7], zoneout=p
        )
    npy = [None if t is None else t.numpy() for t in (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh)]
    r_out, r_h, _ = ref_variants.variant_gru_direction(
        *npy[:6],
        reset_after,
        lengths,
        reverse,
        npy[6],
        npy[7],
        zoneout=p if p else None,
    )
    assert out.dtype == torch.float32 and tuple(out.shape) == (T, B, H)
    assert np.abs(out.double().numpy() - r_out).max() <= REF_TOL
    assert np.abs(h_n.double().numpy() - r_h).max() <= REF_TOL


@pytest.mark.slow
def test_eager_compile_and_trace_keep_the_fused_op():
    """Only torch.export sees the export op: torch.compile and jit.trace keep grukit::gru_sequence."""
    gru = randomize(grukit.GRU(3, 4, bidirectional=True)).eval()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    try:
        torch.compile(gru, fullgraph=True, backend=backend)(torch.randn(7, 2, 3))
    finally:
        torch._dynamo.reset()
    targets = _targets(graphs[0])
    assert sum(t in ("grukit.gru_sequence", "grukit.gru_sequence.default") for t in targets) == 2
    assert not any("export" in t for t in targets)
    traced = torch.jit.trace(gru, (torch.randn(5, 2, 3),))
    code = traced.inlined_graph.str()
    assert "grukit::gru_sequence(" in code and "gru_sequence_export" not in code
    assert not export_op.in_torch_export()


# ------------------------------------------------------------------------ in-process, variants
@pytest.mark.slow
@pytest.mark.parametrize("reset_after", [True, False])
def test_variants_in_eval_export_with_dynamic_T(reset_after):
    """layer_norm + zoneout (+ recurrent dropout and DropConnect, inactive in eval), bidirectional, 2 layers,
    with lengths: exported with a dynamic T (impossible before: the loop fixed T), decomposed, run at two
    other lengths, equal to the float64 reference."""
    gru = grukit.GRU(
        3,
        4,
        num_layers=2,
        bidirectional=True,
        reset_after=reset_after,
        layer_norm=True,
        zoneout=0.25,
        recurrent_dropout=0.3,
        dropconnect=0.2,
    )
    gru = randomize(gru).eval()
    x = torch.randn(9, 2, 3)
    ep, dec = _decomposed(gru, (x, None, torch.tensor([9, 4])), 0)
    prog = dec.module()
    params = numpy_params(gru)
    for T in (3, 21):
        x = torch.randn(T, 2, 3)
        lengths = [T, max(1, T // 2)]
        r_out, r_h, _ = ref_variants.variant_gru(
            x.double().numpy(),
            params,
            num_layers=2,
            bidirectional=True,
            reset_after=reset_after,
            lengths=lengths,
            layer_norm=True,
            zoneout_p=0.25,
        )
        for m in (prog, ep.module()):  # decomposed (scan), and not (the op's eager kernel)
            with torch.no_grad():
                out, h_n = m(x, None, torch.tensor(lengths))
            assert np.abs(out.double().numpy() - r_out).max() <= REF_TOL
            assert np.abs(h_n.double().numpy() - r_h).max() <= REF_TOL
    with pytest.raises(RuntimeError, match="Runtime assertion failed"), torch.no_grad():
        prog(torch.randn(5, 2, 3), None, torch.tensor([6, 2]))  # a length past T is refused


@pytest.mark.slow
def test_strict_export_and_training_mode_use_the_export_op():
    """strict=True (dynamo) export, and a plain layer exported in training mode (dropout between layers),
    emit the export op too; the decomposed program equals the float64 reference (dropout off in eval)."""
    gru = randomize(grukit.GRU(3, 4, num_layers=2, batch_first=True))
    ep = _export(gru.eval(), (torch.randn(2, 8, 3),), 1, strict=True)
    assert sum(t == EXPORT_OP + ".default" for t in _targets(ep.graph_module)) == 2
    dec = ep.run_decompositions()
    assert not any("grukit" in t for t in _targets(dec.graph_module))
    x = torch.randn(2, 13, 3)
    with torch.no_grad():
        out, h_n = dec.module()(x)
    r_out, r_h, _ = reference.gru(x.numpy(), numpy_params(gru), 2, batch_first=True)
    assert np.abs(out.double().numpy() - r_out).max() <= REF_TOL
    assert np.abs(h_n.double().numpy() - r_h).max() <= REF_TOL
    # the program before decomposition, called here: the op's eager kernel is the fused one
    fused = pytest.importorskip(
        "grukit.kernels.fused", reason="the native fused kernel is unavailable"
    )
    before = fused.calls["sequence"]
    with torch.no_grad():
        out2, h_n2 = ep.module()(x)
    assert fused.calls["sequence"] == before + 2
    assert (out2 - out).abs().max() <= FUSED_TOL and (h_n2 - h_n).abs().max() <= FUSED_TOL
    train = randomize(grukit.GRU(3, 4, num_layers=2, dropout=0.5)).train()
    ep = _export(train, (torch.randn(8, 2, 3),), 0)
    assert sum(t == EXPORT_OP + ".default" for t in _targets(ep.graph_module)) == 2


@pytest.mark.slow
def test_float64_with_dynamic_batch_and_time_and_an_initial_state():
    """float64, T and B both dynamic, hx an input: the decomposed program equals the float64 reference
    within 1e-10."""
    gru = randomize(grukit.GRU(3, 4, 2, bidirectional=True, dtype=torch.float64)).eval()
    T, B = torch.export.Dim("T", min=2, max=4096), torch.export.Dim("B", min=1, max=64)
    x, h0 = torch.randn(7, 3, 3, dtype=torch.float64), torch.randn(4, 3, 4, dtype=torch.float64)
    ep = torch.export.export(gru, (x, h0), dynamic_shapes=({0: T, 1: B}, {1: B}))
    dec = ep.run_decompositions()
    assert not any("grukit" in t for t in _targets(dec.graph_module))
    x, h0 = torch.randn(11, 5, 3, dtype=torch.float64), torch.randn(4, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        out, h_n = dec.module()(x, h0)
    r_out, r_h, _ = reference.gru(x.numpy(), numpy_params(gru), 2, True, h0=h0.numpy())
    assert np.abs(out.numpy() - r_out).max() <= 1e-10 and np.abs(h_n.numpy() - r_h).max() <= 1e-10


# ---------------------------------------------------------------- the acceptance: without grukit
class Tagger(torch.nn.Module):
    """Linear → grukit.GRU (2 layers) → Linear, batch-first, optional per-sequence lengths."""

    def __init__(self, reset_after=True, bidirectional=False):
        super().__init__()
        self.inp = torch.nn.Linear(5, 6)
        self.gru = grukit.GRU(
            6,
            8,
            num_layers=2,
            batch_first=True,
            reset_after=reset_after,
            bidirectional=bidirectional,
        )
        self.head = torch.nn.Linear(8 * (2 if bidirectional else 1), 3)

    def forward(self, x, lengths=None):
        y, h_n = self.gru(torch.tanh(self.inp(x)), None, lengths)
        return self.head(y), h_n


# Runs in a fresh interpreter: blocks every import of grukit before torch is imported, then loads the
# decomposed programs and runs them on the inputs the parent wrote (safetensors both ways).
_CHILD = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoGrukit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "grukit" or name.startswith("grukit."):
                raise ImportError("grukit is blocked in this process")
            return None

    sys.meta_path.insert(0, NoGrukit())
    try:
        import grukit  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("grukit could be imported")

    import torch
    from safetensors.torch import load_file, save_file

    names, inputs, outputs = sys.argv[1].split(","), load_file("inputs.safetensors"), {}
    for name in names:
        prog = torch.export.load(name + ".pt2").module()
        for key in sorted(k for k in inputs if k.startswith(name + ".x.")):
            tag = key[len(name + ".x."):]
            args = [inputs[key]]
            if name + ".lengths." + tag in inputs:
                args.append(inputs[name + ".lengths." + tag])
            logits, h_n = prog(*args)
            outputs[name + ".logits." + tag], outputs[name + ".h_n." + tag] = logits, h_n
    save_file(outputs, "outputs.safetensors")
    assert not any(m == "grukit" or m.startswith("grukit.") for m in sys.modules), "grukit imported"
    assert not hasattr(torch.ops.grukit, "gru_sequence_export"), "the export op is registered"
    assert not hasattr(torch.ops.grukit, "gru_sequence"), "the fused op is registered"
    print("ran", len(outputs) // 2, "calls without grukit")
    """
)


@pytest.mark.slow
def test_decomposed_program_runs_in_a_process_without_grukit(tmp_path):
    """The issue's acceptance: Linear → GRU (2 layers) → Linear exported with a dynamic T, decomposed (no
    grukit op left), saved, then loaded and run in a process where ``import grukit`` fails, at two sequence
    lengths; equal to grukit's eager output within the fused tolerance. Also reset_after=False, and
    lengths (with a bidirectional GRU, whose reverse direction starts at each sequence's own end)."""
    cases = {
        "plain": (Tagger(), False),
        "reset_before": (Tagger(reset_after=False), False),
        "lengths": (Tagger(bidirectional=True), True),
    }
    gen = torch.Generator().manual_seed(7)
    inputs: dict[str, torch.Tensor] = {}
    for i, (name, (model, with_lengths)) in enumerate(cases.items()):
        randomize(model, seed=i).eval()
        example = (torch.randn(3, 10, 5),) + ((torch.tensor([10, 6, 1]),) if with_lengths else ())
        _, dec = _decomposed(model, example, 1)
        torch.export.save(dec, tmp_path / f"{name}.pt2")
        for T in (4, 37):  # both differ from the example's T = 10
            inputs[f"{name}.x.{T}"] = torch.randn(3, T, 5, generator=gen)
            if with_lengths:
                inputs[f"{name}.lengths.{T}"] = torch.tensor([T, T // 2 + 1, 1])
    save_file(inputs, tmp_path / "inputs.safetensors")
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}  # no PYTHONPATH: the repo is not on it
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, ",".join(cases)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ran 6 calls without grukit" in res.stdout
    outputs = load_file(tmp_path / "outputs.safetensors")
    for name, (model, with_lengths) in cases.items():
        for T in (4, 37):
            args = [inputs[f"{name}.x.{T}"]]
            if with_lengths:
                args.append(inputs[f"{name}.lengths.{T}"])
            with torch.no_grad():
                want_logits, want_h = model(*args)
            got_logits, got_h = outputs[f"{name}.logits.{T}"], outputs[f"{name}.h_n.{T}"]
            assert got_logits.shape == want_logits.shape and got_h.shape == want_h.shape
            assert (got_logits - want_logits).abs().max() <= FUSED_TOL, (name, T)
            assert (got_h - want_h).abs().max() <= FUSED_TOL, (name, T)
