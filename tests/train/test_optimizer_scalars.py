"""An absurd ``--lr`` / ``--weight-decay`` is refused by ``TaskModule`` before training (a one-line user error,
exit 2) instead of torch's "value cannot be converted to type float without overflow" (exit 1) at the first
optimizer step. The boundary is checked against torch itself: just below it torch's Adam/AdamW take their
first step, just above it they raise."""

from __future__ import annotations

import pytest
import torch

import grukit
from grukit.errors import UserInputError
from grukit.train import TaskModule
from grukit.train.module import check_optimizer_scalars

FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _first_step(optimizer: str, lr: float, weight_decay: float = 0.0) -> None:
    model = grukit.GRU(2, 3)
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer](
        model.parameters(), lr=lr, weight_decay=weight_decay
    )
    out, _ = model(torch.randn(4, 2, 2))
    out.sum().backward()
    opt.step()


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_lr_limit_is_where_torch_overflows(optimizer):
    limit = FLOAT32_MAX * (1 - 0.9)
    below, above = limit * 0.99, limit * 1.01
    check_optimizer_scalars(grukit.GRU(2, 3), below, optimizer=optimizer)
    _first_step(optimizer, below)  # torch takes it
    with pytest.raises(UserInputError, match=r"^--lr 3\.4\d*e\+37 is too large"):
        check_optimizer_scalars(grukit.GRU(2, 3), above, optimizer=optimizer)
    with pytest.raises(RuntimeError, match="overflow"):
        _first_step(optimizer, above)  # what the check spares the user


def test_adams_weight_decay_limit_is_where_torch_overflows():
    check_optimizer_scalars(grukit.GRU(2, 3), 1e-3, FLOAT32_MAX * 0.99, "adam")
    _first_step("adam", 1e-3, FLOAT32_MAX * 0.99)
    with pytest.raises(UserInputError, match="--weight-decay .* is too large"):
        check_optimizer_scalars(grukit.GRU(2, 3), 1e-3, FLOAT32_MAX * 1.01, "adam")
    with pytest.raises(RuntimeError, match="overflow"):
        _first_step("adam", 1e-3, FLOAT32_MAX * 1.01)
    # AdamW multiplies the weights by 1 - lr·weight_decay: no overflow error, the loss diverges instead
    check_optimizer_scalars(grukit.GRU(2, 3), 1e-3, FLOAT32_MAX * 1.01, "adamw")
    _first_step("adamw", 1e-3, FLOAT32_MAX * 1.01)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0])
def test_non_finite_or_negative_values_are_refused(value):
    with pytest.raises(UserInputError, match="--lr must be a finite number >= 0"):
        TaskModule(grukit.GRU(2, 3), lr=value)
    with pytest.raises(UserInputError, match="--weight-decay must be a finite number >= 0"):
        TaskModule(grukit.GRU(2, 3), lr=1e-3, weight_decay=value)


def test_the_limit_follows_the_weights_dtype():
    model = grukit.GRU(2, 3).double()
    check_optimizer_scalars(model, 1e38)  # float64 weights take it
    with pytest.raises(UserInputError, match="float64 weights"):
        check_optimizer_scalars(model, 1e308)
