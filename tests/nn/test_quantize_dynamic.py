"""The docs' warning about torch.ao.quantization.quantize_dynamic (docs/performance.md): it is deprecated and
leaves grukit layers unchanged — checked here so the claim stays true (or the docs get updated)."""

from __future__ import annotations

import warnings

import torch

import grukit


def test_quantize_dynamic_warns_and_skips_grukit_layers() -> None:
    model = torch.nn.Sequential(grukit.GRU(8, 16), torch.nn.Linear(16, 4))
    cell = grukit.GRUCell(8, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(model, cell),
            {torch.nn.GRU, torch.nn.GRUCell, torch.nn.Linear},
            dtype=torch.qint8,
        )
    assert any("deprecated" in str(w.message) for w in caught)
    gru, lin, qcell = q[0][0], q[0][1], q[1]
    # grukit's layers come back untouched (float32 parameters, same class) ...
    assert type(gru) is grukit.GRU and type(qcell) is grukit.GRUCell
    assert all(p.dtype == torch.float32 for p in (*gru.parameters(), *qcell.parameters()))
    # ... while a torch layer in the same call was quantized
    assert type(lin) is not torch.nn.Linear
