"""grukit ↔ ONNX GRU operators, checked by running the files in onnxruntime."""

import numpy as np
import onnx
import pytest
import torch

import grukit
from grukit.errors import UserInputError

from ._util import TOL, maxdiff, ort_run, randomize


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize(
    "num_layers,bidirectional,batch_first", [(1, False, False), (2, True, True), (2, False, False)]
)
def test_export_runs_in_onnxruntime_like_the_module(
    tmp_path, reset_after, num_layers, bidirectional, batch_first
):
    model = randomize(
        grukit.GRU(
            3,
            5,
            num_layers,
            batch_first=batch_first,
            bidirectional=bidirectional,
            reset_after=reset_after,
        )
    ).eval()
    path = grukit.export_onnx(model, tmp_path / "m.onnx", initial_state=True, lengths=True)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    grus = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert len(grus) == num_layers
    assert all(
        a.i == int(reset_after)
        for n in grus
        for a in n.attribute
        if a.name == "linear_before_reset"
    )
    D = 2 if bidirectional else 1
    for B, T in ((3, 6), (2, 9)):  # dynamic batch and time axes
        x = torch.randn(B, T, 3) if batch_first else torch.randn(T, B, 3)
        h0 = torch.randn(num_layers * D, B, 5)
        lengths = torch.tensor([T, 2, T - 1][:B])
        y, h = ort_run(
            path,
            {"input": x.numpy(), "h0": h0.numpy(), "lengths": lengths.numpy().astype(np.int32)},
        )
        with torch.no_grad():
            y_ref, h_ref = model(x, h0, lengths=lengths)
        assert maxdiff(y, y_ref) <= TOL and maxdiff(h, h_ref) <= TOL
    back = grukit.from_onnx(path)
    assert back.config == model.config
    for k, v in model.state_dict().items():
        assert maxdiff(back.state_dict()[k], v) == 0.0


def test_export_without_optional_inputs_and_bias(tmp_path):
    model = randomize(grukit.GRU(3, 4, bias=False)).eval()
    path = grukit.export_onnx(model, tmp_path / "m.onnx")
    x = torch.randn(5, 2, 3)
    y, h = ort_run(path, {"input": x.numpy()})
    with torch.no_grad():
        y_ref, h_ref = model(x)
    assert maxdiff(y, y_ref) <= TOL and maxdiff(h, h_ref) <= TOL
    back = grukit.from_onnx(path)
    assert not back.bias
    with torch.no_grad():
        assert maxdiff(back(x)[0], y_ref) <= TOL


@pytest.mark.parametrize("fmt", ["bf16", "int8"])
def test_export_of_a_quantized_model_computes_what_it_computes(tmp_path, fmt):
    """grukit.quantize keeps W_ih/W_hh in bfloat16 (or int8 with per-row scales); the file holds those rounded
    values as float32, so onnxruntime gives the quantized model's outputs (not the float32 original's)."""
    model = randomize(grukit.GRU(6, 12, 2, bidirectional=True)).eval()
    x = torch.randn(7, 3, 6)
    with torch.no_grad():
        y32, _ = model(x)
    q = grukit.quantize(model, fmt)
    assert q.weight_hh_l0.dtype == (torch.bfloat16 if fmt == "bf16" else torch.int8)
    with torch.no_grad():
        y_ref, h_ref = q(x)
    assert (
        maxdiff(y_ref, y32) > 10 * TOL
    )  # the rounding is visible: the check below can tell the two apart
    path = grukit.export_onnx(q, tmp_path / "q.onnx")
    y, h = ort_run(path, {"input": x.numpy()})
    assert maxdiff(y, y_ref) <= TOL and maxdiff(h, h_ref) <= TOL


@pytest.mark.parametrize(
    "dynamo,fold",
    [(False, True), (False, False), (True, True)],
    ids=["torchscript", "torchscript-unfolded", "dynamo"],
)
def test_from_onnx_reads_torch_exported_gru(tmp_path, dynamo, fold):
    """Torch's exporters; without constant folding W/R/B are Concat/Slice results, evaluated on load."""
    ref = randomize(torch.nn.GRU(3, 4, 2, bidirectional=True)).eval()
    x = torch.randn(5, 2, 3)
    path = tmp_path / "torch.onnx"
    torch.onnx.export(
        ref, (x,), str(path), dynamo=dynamo, **({} if dynamo else {"do_constant_folding": fold})
    )
    model = grukit.from_onnx(path)
    assert (model.num_layers, model.bidirectional, model.reset_after) == (2, True, True)
    with torch.no_grad():
        assert maxdiff(model(x)[0], ref(x)[0]) <= TOL
        assert maxdiff(model(x)[0], ort_run(path, {"input": x.numpy()})[0]) <= TOL
    one = grukit.from_onnx(path, nodes=[0])
    assert one.num_layers == 1


def test_clear_errors(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        grukit.from_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(UserInputError, match="not a readable ONNX file"):
        grukit.from_onnx(junk)
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    relu = onnx.helper.make_model(
        onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    )
    onnx.save(relu, str(tmp_path / "relu.onnx"))
    with pytest.raises(UserInputError, match="no ONNX GRU operator.*Relu"):
        grukit.from_onnx(tmp_path / "relu.onnx")
    path = grukit.export_onnx(grukit.GRU(3, 4), tmp_path / "m.onnx")
    with pytest.raises(UserInputError, match="out of range"):
        grukit.from_onnx(path, nodes=[3])
    with pytest.raises(ValueError, match="opset >= 14"):
        grukit.export_onnx(grukit.GRU(3, 4), tmp_path / "old.onnx", opset=13)
    assert not (tmp_path / "old.onnx").exists()
    with pytest.raises(ValueError, match="layer_norm"):
        grukit.export_onnx(grukit.GRU(3, 4, layer_norm=True), tmp_path / "ln.onnx")
    with pytest.raises(TypeError, match="grukit.GRU"):
        grukit.export_onnx(torch.nn.LSTM(3, 4), tmp_path / "lstm.onnx")


def test_from_onnx_foreign_batch_first_layout(tmp_path):
    """A hand-written file (no grukit metadata) whose GRU uses layout=1: imported batch-first, weights exact."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    W, R, B = (rng.standard_normal(s).astype(np.float32) for s in ((1, 12, 3), (1, 12, 4), (1, 24)))
    graph = helper.make_graph(
        [
            helper.make_node(
                "GRU",
                ["x", "W", "R", "B"],
                ["y", "y_h"],
                hidden_size=4,
                layout=1,
                linear_before_reset=1,
            )
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"))],
    )
    path = tmp_path / "bf.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    model = grukit.from_onnx(path)
    assert model.batch_first and model.reset_after
    H = 4

    def zrn(a):
        return np.concatenate([a[H : 2 * H], a[:H], a[2 * H :]])  # z, r, n → r, z, n

    np.testing.assert_array_equal(model.weight_ih_l0.detach().numpy(), zrn(W[0]))
    np.testing.assert_array_equal(model.weight_hh_l0.detach().numpy(), zrn(R[0]))
    np.testing.assert_array_equal(model.bias_ih_l0.detach().numpy(), zrn(B[0, :12]))
    np.testing.assert_array_equal(model.bias_hh_l0.detach().numpy(), zrn(B[0, 12:]))


def test_from_onnx_refuses_weights_fed_at_run_time(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    R, B = np.ones((1, 12, 4), np.float32), np.ones((1, 24), np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["w_in"], ["W"]),
            helper.make_node("GRU", ["x", "W", "R", "B"], ["y"], hidden_size=4),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", 3]),
            helper.make_tensor_value_info("w_in", TensorProto.FLOAT, [1, 12, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(R, "R"), numpy_helper.from_array(B, "B")],
    )
    path = tmp_path / "fed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UserInputError, match="W .*graph input 'w_in'"):
        grukit.from_onnx(path)
