"""torch.export, torch.compile(fullgraph=True) and torch.onnx.export on a default grukit.GRU (backend="auto",
whatever it dispatches to) and on a model that contains one (GRU + Linear head)."""
import pytest
import torch

import grukit

from ._util import TOL, maxdiff, ort_run, randomize


class Tagger(torch.nn.Module):
    """A GRU + Linear head, as users embed grukit.GRU in their own models."""

    def __init__(self, num_layers=2, bidirectional=True):
        super().__init__()
        self.gru = grukit.GRU(3, 4, num_layers, batch_first=True, bidirectional=bidirectional)
        self.head = torch.nn.Linear(4 * (2 if bidirectional else 1), 2)

    def forward(self, x):
        y, h = self.gru(x)
        return self.head(y), h


def test_torch_export_with_dynamic_batch():
    model = randomize(Tagger()).eval()
    assert model.gru.backend == "auto"
    x = torch.randn(2, 5, 3)
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    x2 = torch.randn(3, 5, 3)  # another batch size through the same program
    with torch.no_grad():
        for a, b in zip(ep.module()(x2), model(x2)):
            assert maxdiff(a, b) <= TOL


def test_torch_compile_fullgraph():
    model = randomize(Tagger(num_layers=1, bidirectional=False)).eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 3, 3)
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            assert maxdiff(a, b) <= TOL


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_torch_onnx_export_of_a_model_containing_a_gru(tmp_path, dynamo):
    """The recurrence is unrolled over the example's T (fixed); batch stays dynamic."""
    model = randomize(Tagger()).eval()
    x = torch.randn(2, 5, 3)
    path = tmp_path / "tagger.onnx"
    if dynamo:
        torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"], output_names=["logits", "h_n"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["logits", "h_n"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}, "h_n": {1: "batch"}})
    x3 = torch.randn(3, 5, 3)
    logits, h_n = ort_run(path, {"x": x3.numpy()})
    with torch.no_grad():
        ref_logits, ref_h = model(x3)
    assert maxdiff(logits, ref_logits) <= TOL and maxdiff(h_n, ref_h) <= TOL
