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


@pytest.mark.slow
def test_torch_compile_fullgraph():
    model = randomize(Tagger(num_layers=1, bidirectional=False)).eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 3, 3)
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            assert maxdiff(a, b) <= TOL


@pytest.mark.parametrize(
    "dynamo",
    [
        pytest.param(True, id="dynamo", marks=pytest.mark.slow),
        pytest.param(False, id="torchscript"),
    ],
)
def test_torch_onnx_export_of_a_model_containing_a_gru(tmp_path, dynamo):
    """The recurrence is unrolled over the example's T (fixed); batch stays dynamic."""
    model = randomize(Tagger()).eval()
    x = torch.randn(2, 5, 3)
    path = tmp_path / "tagger.onnx"
    if dynamo:
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=True,
            input_names=["x"],
            output_names=["logits", "h_n"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    else:
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits", "h_n"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}, "h_n": {1: "batch"}},
        )
    x3 = torch.randn(3, 5, 3)
    logits, h_n = ort_run(path, {"x": x3.numpy()})
    with torch.no_grad():
        ref_logits, ref_h = model(x3)
    assert maxdiff(logits, ref_logits) <= TOL and maxdiff(h_n, ref_h) <= TOL


def test_swap_to_torch_gives_onnx_gru_operators_with_dynamic_time(tmp_path):
    """swap_to_torch + torch.onnx.export: real ONNX GRU operators, batch and time both dynamic."""
    import onnx

    from grukit.interop import swap_to_torch

    model = randomize(Tagger()).eval()
    swapped = swap_to_torch(model)
    assert isinstance(swapped.gru, torch.nn.GRU) and isinstance(model.gru, grukit.GRU)
    path = tmp_path / "tagger.onnx"
    torch.onnx.export(
        swapped,
        (torch.randn(2, 5, 3),),
        str(path),
        dynamo=False,
        input_names=["x"],
        output_names=["logits", "h_n"],
        dynamic_axes={"x": {0: "batch", 1: "time"}},
    )
    assert sum(n.op_type == "GRU" for n in onnx.load(str(path)).graph.node) == 2
    for B, T in ((3, 9), (1, 2)):
        x = torch.randn(B, T, 3)
        logits, h_n = ort_run(path, {"x": x.numpy()})
        with torch.no_grad():
            ref_logits, ref_h = model(x)
        assert maxdiff(logits, ref_logits) <= TOL and maxdiff(h_n, ref_h) <= TOL
    with pytest.raises(grukit.errors.UserInputError, match="graph output 'logits'"):
        grukit.from_onnx(path)  # the graph computes more than a GRU stack (a head): refused ...
    back = grukit.from_onnx(
        path, nodes=[0, 1]
    )  # ... unless the GRU operators are picked explicitly
    with torch.no_grad():
        assert maxdiff(back(x.transpose(0, 1))[0].transpose(0, 1), model.gru(x)[0]) <= TOL
    bad = Tagger()
    bad.gru = grukit.GRU(3, 4, 2, batch_first=True, bidirectional=True, reset_after=False)
    with pytest.raises(ValueError, match="gru: .*reset_after=True"):
        swap_to_torch(bad)
