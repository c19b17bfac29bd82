"""Seeding and determinism."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, deterministic: bool | None = None) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (all devices) with ``seed``.

    Call it before building a model, so that its initialization is seeded too.

    Args:
        seed: an integer in [0, 2**32).
        deterministic: True switches torch to deterministic algorithms, False switches them off, None
            (default) leaves the setting alone.

    Returns:
        ``seed``, as an int.

    Raises:
        ValueError: ``seed`` is outside [0, 2**32).

    Examples:
        >>> import torch
        >>> from grukit.train import seed_everything
        >>> _ = seed_everything(0)
        >>> a = torch.rand(3)
        >>> _ = seed_everything(0)
        >>> torch.equal(a, torch.rand(3))
        True
    """
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
    """The seed used at the start of ``epoch`` of a run seeded with ``seed``.

    Shuffling and dropout depend on (seed, epoch) only, so a run resumed at an epoch boundary draws the same
    random numbers as an uninterrupted one.

    Args:
        seed: the run's seed.
        epoch: the epoch index (0-based).

    Returns:
        A seed in [0, 2**32), a fixed function of (seed, epoch).

    Examples:
        >>> from grukit.train import epoch_seed
        >>> epoch_seed(0, 3) == epoch_seed(0, 3) != epoch_seed(0, 4)
        True
    """
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 17) % (2**32)


def set_threads(threads: int | None) -> int:
    """``--threads``: use ``threads`` torch CPU threads when given (None keeps torch's choice); returns the
    number in use, for the run's config and metrics. More than 4 threads per CPU is refused (one line):
    each thread reserves memory, and 100000 of them exhaust it.

    Example:
        >>> set_threads(None) >= 1
        True
    """
    import torch

    if threads is not None:
        import os

        from ..errors import UserInputError

        if int(threads) < 1:
            raise UserInputError(f"--threads must be at least 1, got {threads}")
        cpus = os.cpu_count() or 1
        if int(threads) > 4 * cpus:
            raise UserInputError(
                f"--threads {threads}: this machine has {cpus} CPUs; expected at most {4 * cpus} "
                f"threads (4 per CPU)"
            )
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()
