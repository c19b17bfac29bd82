"""Seeding and determinism."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, deterministic: bool | None = None) -> int:
    """Seed Python's ``random``, NumPy and torch (all devices) with ``seed``; with ``deterministic=True`` also
    switch torch to deterministic algorithms (``False`` switches them off, ``None`` leaves them alone).
    Returns ``seed``."""
    import numpy as np
    import torch

    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global generator on purpose
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    if deterministic is not None:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(bool(deterministic))
    return seed


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed used at the start of ``epoch``: shuffling and dropout depend on (seed, epoch) only, so a run
    resumed at an epoch boundary draws the same random numbers as an uninterrupted one."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 17) % (2**32)


def set_threads(threads: int | None) -> int:
    """``--threads``: use ``threads`` torch CPU threads when given (None keeps torch's choice); returns the
    number in use, for the run's config and metrics.

    Example:
        >>> set_threads(None) >= 1
        True
    """
    import torch

    if threads is not None:
        if int(threads) < 1:
            from ..errors import UserInputError

            raise UserInputError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()
