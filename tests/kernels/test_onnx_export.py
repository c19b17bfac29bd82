"""A plain torch.onnx.export of a model holding grukit.GRU writes standard ONNX GRU nodes (both exporters)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import grukit

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


class _Model(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.gru = grukit.GRU(3, 4, num_layers=2, batch_first=True, **kw)
        self.head = torch.nn.Linear(4 * self.gru.num_directions, 2)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x, h0):
        out, h_n = self.gru(x, h0)
        return self.head(out), h_n


@pytest.mark.parametrize("dynamo", [True, False])
@pytest.mark.parametrize("kw", [{"bidirectional": True}, {"reset_after": False, "bias": False}])
def test_plain_onnx_export_writes_gru_nodes_with_dynamic_T(tmp_path, dynamo, kw):
    model = _Model(**kw).eval()
    D = model.gru.num_directions
    args = (torch.randn(2, 7, 3), torch.randn(2 * D, 2, 4))
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, args, path, dynamic_shapes=({1: "T"}, None))
        else:
            torch.onnx.export(
                model,
                args,
                path,
                dynamo=False,
                input_names=["x", "h0"],
                dynamic_axes={"x": {1: "T"}},
            )
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("GRU") == (2 if dynamo else 2 * D)  # one node per layer (dynamo) or direction
    assert "Loop" not in ops and "Sigmoid" not in ops
    sess = ort.InferenceSession(str(path))
    names = [i.name for i in sess.get_inputs()]
    for T in (5, 13):  # neither is the traced length
        x, h0 = torch.randn(2, T, 3), torch.randn(2 * D, 2, 4)
        got = sess.run(None, dict(zip(names, (x.numpy(), h0.numpy()))))
        want = model(x, h0)
        assert np.abs(got[0] - want[0].detach().numpy()).max() <= 1e-5
        assert np.abs(got[1] - want[1].detach().numpy()).max() <= 1e-5
