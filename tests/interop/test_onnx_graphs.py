"""ONNX graphs that are not one plain stack, built with onnx.helper: imported so that they compute what
onnxruntime computes on the same input, or refused with the breaking node named."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import grukit
from grukit.errors import UserInputError
from grukit.interop.chain import GRUChain

from ._util import TOL, maxdiff, ort_run, randomize

F32 = TensorProto.FLOAT


class G:
    """A small ONNX graph builder: GRU operators with random weights plus whatever nodes a test adds."""

    def __init__(self, seed=0):
        self.nodes, self.inits, self.rng = [], [], np.random.default_rng(seed)

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def gru(self, name, x, I, H=4, direction="forward", lbr=1, h0="", lens="", layout=0, bias=True):
        D = 2 if direction == "bidirectional" else 1
        w = self.const(f"{name}_W", self.rng.uniform(-0.7, 0.7, (D, 3 * H, I)).astype(np.float32))
        r = self.const(f"{name}_R", self.rng.uniform(-0.7, 0.7, (D, 3 * H, H)).astype(np.float32))
        b = (
            self.const(f"{name}_B", self.rng.uniform(-0.7, 0.7, (D, 6 * H)).astype(np.float32))
            if bias
            else ""
        )
        ins = [x, w, r, b, lens, h0]
        while ins[-1] == "":
            ins.pop()
        self.nodes.append(
            helper.make_node(
                "GRU",
                ins,
                [f"{name}_Y", f"{name}_Yh"],
                name=name,
                hidden_size=H,
                direction=direction,
                linear_before_reset=lbr,
                layout=layout,
            )
        )
        return f"{name}_Y", f"{name}_Yh"

    def node(self, op, ins, outs, name=None, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=name or outs[0], **attrs))
        return outs[0]

    def to_tbf(self, y, name, D=1):
        """Y (T, D, B, H) → (T, B, D·H): the reshape a stack implies."""
        t = self.node("Transpose", [y], [f"{name}_tbf_t"], perm=[0, 2, 1, 3])
        return self.node(
            "Reshape", [t, self.const(f"{name}_shape", np.array([0, 0, -1]))], [f"{name}_tbf_r"]
        )

    def save(self, path, inputs, outputs):
        graph = helper.make_graph(
            self.nodes,
            "g",
            inputs,
            [helper.make_tensor_value_info(o, F32, None) for o in outputs],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(path))
        return path


def x_input(I=3, batch_first=False):
    return helper.make_tensor_value_info("x", F32, ["b", "t", I] if batch_first else ["t", "b", I])


def _run(model, x, hx=None, lengths=None):
    with torch.no_grad():
        return model(torch.from_numpy(x), hx, lengths=lengths)


def test_parallel_grus_added_are_refused(tmp_path):
    g = G()
    y1, _ = g.gru("left", "x", 3)
    y2, _ = g.gru("right", "x", 3)
    g.node("Add", [y1, y2], ["sum"])
    path = g.save(tmp_path / "par.onnx", [x_input()], ["sum"])
    ort_run(path, {"x": np.zeros((5, 2, 3), np.float32)})  # a valid graph
    with pytest.raises(
        UserInputError, match="'left'.*'right'.*all read the graph input 'x': parallel"
    ):
        grukit.from_onnx(path)


def test_mul_between_two_grus_is_refused(tmp_path):
    g = G(1)
    y1, _ = g.gru("g0", "x", 3)
    s = g.node("Squeeze", [y1, g.const("ax1", np.array([1]))], ["sq"])
    m = g.node("Mul", [s, g.const("two", np.array(2.0, np.float32))], ["scaled"], name="scale")
    y2, _ = g.gru("g1", m, 4)
    path = g.save(tmp_path / "mul.onnx", [x_input()], [y2])
    ort_run(path, {"x": np.zeros((5, 2, 3), np.float32)})
    with pytest.raises(UserInputError, match="'scale' \\(Mul\\)"):
        grukit.from_onnx(path)


def test_wrong_transpose_between_layers_is_refused(tmp_path):
    """(T, D, B, H) → (B, T, D·H) fed to a time-major GRU mixes batch and time: refused at the Reshape."""
    g = G(2)
    y1, _ = g.gru("g0", "x", 3, direction="bidirectional")
    t = g.node("Transpose", [y1], ["bt"], perm=[2, 0, 1, 3])
    r = g.node("Reshape", [t, g.const("s", np.array([0, 0, -1]))], ["bad"])
    y2, _ = g.gru("g1", r, 8)
    path = g.save(tmp_path / "perm.onnx", [x_input()], [y2])
    with pytest.raises(
        UserInputError, match="'g1' \\(GRU\\) reads the output of the layer before it with axes"
    ):
        grukit.from_onnx(path)


def test_head_after_the_last_gru_is_refused(tmp_path):
    g = G(3)
    y, _ = g.gru("g0", "x", 3)
    s = g.node("Squeeze", [y, g.const("ax1", np.array([1]))], ["sq"])
    out = g.node("MatMul", [s, g.const("Wout", np.ones((4, 2), np.float32))], ["logits"], "head")
    path = g.save(tmp_path / "head.onnx", [x_input()], [out])
    with pytest.raises(UserInputError, match="graph output 'logits'.*'head' \\(MatMul\\)"):
        grukit.from_onnx(path)
    assert grukit.from_onnx(path, nodes=[0]).num_layers == 1  # the explicit escape hatch


def test_stack_through_squeeze_matches_onnxruntime(tmp_path):
    g = G(4)
    y1, h1 = g.gru("g0", "x", 3)
    s = g.node("Squeeze", [y1, g.const("ax1", np.array([1]))], ["sq"])
    y2, h2 = g.gru("g1", s, 4, lbr=0)
    out = g.node("Squeeze", [y2, g.const("ax1b", np.array([1]))], ["out"])
    g.node("Concat", [h1, h2], ["h_n"], axis=0)
    path = g.save(tmp_path / "stack.onnx", [x_input()], [out, "h_n"])
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    y, h = ort_run(path, {"x": x})
    model = grukit.from_onnx(path)
    assert isinstance(model, GRUChain)  # the two layers place the reset gate differently
    got, got_h = _run(model, x)
    assert maxdiff(got, y) <= TOL and maxdiff(got_h, h) <= TOL


@pytest.mark.parametrize("stored", ["initial_h", "sequence_lens"])
def test_stored_initial_h_or_sequence_lens_is_refused(tmp_path, stored):
    g = G(5)
    if stored == "initial_h":
        h0 = g.const("h0", np.full((1, 2, 4), 0.5, np.float32))
        y, _ = g.gru("g0", "x", 3, h0=h0)
    else:
        lens = g.const("lens", np.array([6, 3], np.int32))
        y, _ = g.gru("g0", "x", 3, lens=lens)
    path = g.save(tmp_path / "stored.onnx", [x_input()], [y])
    ort_run(path, {"x": np.zeros((6, 2, 3), np.float32)})
    with pytest.raises(UserInputError, match=f"{stored}.*stored in the file"):
        grukit.from_onnx(path)
    with pytest.raises(UserInputError, match=f"{stored}.*stored in the file"):
        grukit.from_onnx(path, nodes=[0])


def test_zero_initial_h_and_graph_input_states_are_honoured(tmp_path):
    g = G(6)
    h0 = g.const("h0", np.zeros((1, 2, 4), np.float32))
    y, yh = g.gru("g0", "x", 3, h0=h0)
    path = g.save(tmp_path / "zero.onnx", [x_input()], [y, yh])
    x = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    want_y, want_h = ort_run(path, {"x": x})
    got, got_h = _run(grukit.from_onnx(path), x)
    assert maxdiff(got, want_y[:, 0]) <= TOL and maxdiff(got_h, want_h) <= TOL
    # initial_h and sequence_lens as graph inputs: the imported model takes them as hx and lengths
    g = G(7)
    y, yh = g.gru("g0", "x", 3, h0="h0", lens="lens")
    ins = [
        x_input(),
        helper.make_tensor_value_info("lens", TensorProto.INT32, ["b"]),
        helper.make_tensor_value_info("h0", F32, [1, "b", 4]),
    ]
    path = g.save(tmp_path / "inputs.onnx", ins, [y, yh])
    h0v = np.random.default_rng(2).standard_normal((1, 2, 4)).astype(np.float32)
    lens = np.array([5, 2], np.int32)
    want_y, want_h = ort_run(path, {"x": x, "h0": h0v, "lens": lens})
    got, got_h = _run(grukit.from_onnx(path), x, torch.from_numpy(h0v), torch.from_numpy(lens))
    assert maxdiff(got, want_y[:, 0]) <= TOL and maxdiff(got_h, want_h) <= TOL


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("lbr", [1, 0])
def test_reverse_direction_matches_onnxruntime(tmp_path, lengths, lbr):
    g = G(8)
    lens = "lens" if lengths else ""
    y1, h1 = g.gru("rev", "x", 3, direction="reverse", lbr=lbr, lens=lens)
    s = g.node("Squeeze", [y1, g.const("ax1", np.array([1]))], ["sq"])
    y2, h2 = g.gru("fwd", s, 4, lbr=lbr, lens=lens)
    out = g.node("Squeeze", [y2, g.const("ax1b", np.array([1]))], ["out"])
    g.node("Concat", [h1, h2], ["h_n"], axis=0)
    ins = [x_input()] + (
        [helper.make_tensor_value_info("lens", TensorProto.INT32, ["b"])] if lengths else []
    )
    path = g.save(tmp_path / "rev.onnx", ins, [out, "h_n"])
    x = np.random.default_rng(3).standard_normal((7, 3, 3)).astype(np.float32)
    feeds = {"x": x}
    lens_v = np.array([7, 4, 1], np.int32)
    if lengths:
        feeds["lens"] = lens_v
    y, h = ort_run(path, feeds)
    model = grukit.from_onnx(path)
    assert isinstance(model, GRUChain) and not model.batch_first
    got, got_h = _run(model, x, lengths=torch.from_numpy(lens_v) if lengths else None)
    assert maxdiff(got, y) <= TOL and maxdiff(got_h, h) <= TOL


def test_bidirectional_graph_with_layout_1_matches(tmp_path):
    g = G(9)
    y, yh = g.gru("bi", "x", 3, direction="bidirectional", layout=1)
    r = g.node(
        "Reshape", [y, g.const("s", np.array([0, 0, -1]))], ["out"]
    )  # (B, T, 2, H) → (B, T, 2H)
    path = g.save(tmp_path / "bf.onnx", [x_input(batch_first=True)], [r, yh])
    x = np.random.default_rng(4).standard_normal((2, 6, 3)).astype(np.float32)
    from onnx.reference import (
        ReferenceEvaluator,
    )  # onnxruntime has no layout=1 GRU; onnx's own runtime does

    want, _ = ReferenceEvaluator(str(path)).run(None, {"x": x})
    model = grukit.from_onnx(path)
    assert isinstance(model, grukit.GRU) and model.batch_first and model.bidirectional
    assert maxdiff(_run(model, x)[0], want) <= TOL


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_torch_export_of_batch_first_gru_round_trips(tmp_path, dynamo, num_layers, bidirectional):
    ref = randomize(
        torch.nn.GRU(3, 4, num_layers, batch_first=True, bidirectional=bidirectional)
    ).eval()
    x = torch.randn(2, 5, 3)
    path = tmp_path / "bf.onnx"
    torch.onnx.export(ref, (x,), str(path), dynamo=dynamo)
    model = grukit.from_onnx(path)
    assert isinstance(model, grukit.GRU) and model.batch_first
    want = ort_run(path, {"input": x.numpy()})[0]  # the graph's own (B, T, I) input
    with torch.no_grad():
        assert maxdiff(model(x)[0], want) <= TOL
        assert maxdiff(model(x)[0], ref(x)[0]) <= TOL


def test_grukit_reverse_chain_round_trips_through_save(tmp_path):
    g = G(10)
    y, _ = g.gru("rev", "x", 3, direction="reverse")
    path = g.save(tmp_path / "rev1.onnx", [x_input()], [y])
    model = grukit.from_onnx(path)
    grukit.save(model, tmp_path / "rev.safetensors")
    back = grukit.load(tmp_path / "rev.safetensors")
    x = np.random.default_rng(5).standard_normal((4, 2, 3)).astype(np.float32)
    assert maxdiff(_run(back, x)[0], ort_run(path, {"x": x})[0][:, 0]) <= TOL


def _pair(g, x, I, name, lbr=1, join="features"):
    """A forward and a reverse single-direction GRU reading x, their outputs concatenated (forward first)."""
    yf, hf = g.gru(f"{name}_f", x, I, lbr=lbr)
    yr, hr = g.gru(f"{name}_r", x, I, direction="reverse", lbr=lbr)
    if join == "features":  # squeeze each Y to (T, B, H), concatenate to (T, B, 2H)
        sf = g.node("Squeeze", [yf, g.const(f"{name}_a", np.array([1]))], [f"{name}_sf"])
        sr = g.node("Squeeze", [yr, g.const(f"{name}_b", np.array([1]))], [f"{name}_sr"])
        return g.node("Concat", [sf, sr], [f"{name}_cat"], axis=2), hf, hr
    y = g.node("Concat", [yf, yr], [f"{name}_y"], axis=1)  # (T, 2, B, H), like a bidirectional Y
    return g.to_tbf(y, name), hf, hr


@pytest.mark.parametrize("join", ["features", "directions"])
def test_forward_and_reverse_pair_is_one_bidirectional_layer(tmp_path, join):
    g = G(11)
    y0, hf0, hr0 = _pair(g, "x", 3, "l0", join=join)
    y1, hf1, hr1 = _pair(g, y0, 8, "l1", join=join)
    g.node("Concat", [hf0, hr0, hf1, hr1], ["h_n"], axis=0)
    path = g.save(tmp_path / "pair.onnx", [x_input()], [y1, "h_n"])
    x = np.random.default_rng(6).standard_normal((5, 2, 3)).astype(np.float32)
    want, want_h = ort_run(path, {"x": x})
    model = grukit.from_onnx(path)
    assert isinstance(model, grukit.GRU) and model.bidirectional and model.num_layers == 2
    got, got_h = _run(model, x)
    assert maxdiff(got, want) <= TOL and maxdiff(got_h, want_h) <= TOL


def test_pair_concatenated_in_the_wrong_order_or_twice_forward_is_refused(tmp_path):
    g = G(12)
    yf, _ = g.gru("f", "x", 3)
    yr, _ = g.gru("r", "x", 3, direction="reverse")
    g.node("Concat", [yr, yf], ["y"], name="swapped", axis=1)
    path = g.save(tmp_path / "swapped.onnx", [x_input()], ["y"])
    with pytest.raises(UserInputError, match="'swapped' \\(Concat\\)"):
        grukit.from_onnx(path)
    g = G(13)
    ya, _ = g.gru("a", "x", 3)
    yb, _ = g.gru("b", "x", 3)
    g.node("Concat", [ya, yb], ["y"], axis=1)
    path = g.save(tmp_path / "two_fwd.onnx", [x_input()], ["y"])
    with pytest.raises(UserInputError, match="parallel GRUs"):
        grukit.from_onnx(path)


@pytest.mark.parametrize("batch_first", [False, True])
def test_torch_export_with_initial_state_input(tmp_path, batch_first):
    """torch.onnx.export(gru, (x, h0)): initial_h is a per-layer Slice of the h0 input, taken as hx."""
    ref = randomize(torch.nn.GRU(3, 4, 2, batch_first=batch_first, bidirectional=True)).eval()
    x = torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)
    h0 = torch.randn(4, 2, 4)
    path = tmp_path / "h0.onnx"
    torch.onnx.export(ref, (x, h0), str(path), dynamo=False, input_names=["x", "h0"])
    model = grukit.from_onnx(path)
    assert isinstance(model, grukit.GRU) and model.batch_first == batch_first
    y, h = ort_run(path, {"x": x.numpy(), "h0": h0.numpy()})
    with torch.no_grad():
        got, got_h = model(x, h0)
    assert maxdiff(got, y) <= TOL and maxdiff(got_h, h) <= TOL
