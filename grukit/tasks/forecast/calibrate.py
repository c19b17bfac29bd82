"""Quantile levels (``--quantiles``), their intervals and split-conformal calibration of them (NumPy only).

A set of quantile levels holds the median 0.5 and symmetric pairs ``(q, 1 − q)``; each pair is a central
interval of nominal coverage ``1 − 2q``, reported as ``coverage_<100·(1 − 2q)>`` (0.1/0.9 → ``coverage_80``,
0.05/0.95 → ``coverage_90``, 0.025/0.975 → ``coverage_95``).

Calibration (conformalized quantile regression, Romano, Patterson & Candès 2019, per horizon step): on n
held-out windows, the conformity score of an interval (lo, hi) at step h is ``s = max(lo − y, y − hi)``
(negative inside the interval); its correction is the ⌈(n + 1)(1 − α)⌉-th smallest score (α = 1 − the
interval's coverage; the largest score when that rank exceeds n), and the calibrated interval is
``(lo − q̂, hi + q̂)`` — wider when the model covers too little, narrower when it covers too much. The median is
never moved; the outer quantiles are then clamped outwards from it so that no two cross.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...errors import UserInputError

#: the default ``--quantiles``
DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def parse_quantiles(value: str | Sequence[float] | None) -> tuple[float, ...]:
    """``--quantiles`` ("0.05,0.5,0.95" or a sequence) → sorted levels, checked.

    The levels must be numbers strictly between 0 and 1, given in increasing order without repeats, hold 0.5,
    and come in symmetric pairs (q, 1 − q), at most 4 decimals each.

    >>> parse_quantiles("0.05, 0.1, 0.5, 0.9, 0.95")
    (0.05, 0.1, 0.5, 0.9, 0.95)
    >>> parse_quantiles(None)
    (0.1, 0.5, 0.9)
    """
    if value is None:
        return DEFAULT_QUANTILES
    shown = value if isinstance(value, str) else ",".join(map(str, value))
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        levels = [float(x) for x in items if not isinstance(x, str) or x.strip()]
    except (TypeError, ValueError):
        raise UserInputError(
            f"--quantiles expects comma-separated numbers such as 0.1,0.5,0.9, got {shown!r}"
        ) from None
    what = f"--quantiles {shown!r}"
    if not levels:
        raise UserInputError(f"{what}: expected at least the median 0.5")
    if any(not math.isfinite(q) or not 0.0 < q < 1.0 for q in levels):
        raise UserInputError(f"{what}: every level must lie strictly between 0 and 1")
    if any(round(q, 4) != q for q in levels):
        raise UserInputError(f"{what}: levels have at most 4 decimals")
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise UserInputError(f"{what}: levels must be increasing, without repeats")
    if 0.5 not in levels:
        raise UserInputError(
            f"{what}: the median 0.5 must be one of the levels (the point forecast)"
        )
    lone = [q for q in levels if round(1.0 - q, 4) not in levels]
    if lone:
        raise UserInputError(
            f"{what}: levels must come in symmetric pairs (q, 1 - q) that form intervals; "
            f"{', '.join(f'{q:g}' for q in lone)} lack(s) a partner"
        )
    return tuple(levels)


def median_index(quantiles: Sequence[float]) -> int:
    """Position of 0.5 in ``quantiles``."""
    return list(quantiles).index(0.5)


def intervals(quantiles: Sequence[float]) -> list[tuple[int, int, float]]:
    """The central intervals ``(index of lo, index of hi, nominal coverage)``, outermost first.

    >>> intervals((0.05, 0.1, 0.5, 0.9, 0.95))
    [(0, 4, 0.9), (1, 3, 0.8)]
    """
    k = len(quantiles)
    return [
        (i, k - 1 - i, round(quantiles[k - 1 - i] - quantiles[i], 6))
        for i in range(median_index(quantiles))
    ]


def coverage_key(coverage: float) -> str:
    """metrics.json's key of an interval's coverage: ``coverage_`` + the coverage in percent.

    >>> coverage_key(0.8), coverage_key(0.95), coverage_key(0.975)
    ('coverage_80', 'coverage_95', 'coverage_97.5')
    """
    return f"coverage_{round(100 * coverage, 4):g}"


def column_name(q: float) -> str:
    """The CSV column of a quantile level: ``q`` + the level in percent (0.1 → q10, 0.025 → q2.5).

    >>> [column_name(q) for q in (0.1, 0.5, 0.9, 0.025)]
    ['q10', 'q50', 'q90', 'q2.5']
    """
    return f"q{round(100 * q, 4):g}"


def conformal_offsets(
    pred: np.ndarray,
    target: np.ndarray,
    quantiles: Sequence[float],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Split-conformal corrections (H, L) of the L intervals at each of the H steps.

    Args:
        pred: (N, H, Q) predicted quantiles on held-out windows (levels ``quantiles``, increasing).
        target: (N, H) the actual values (any finite value where ``mask`` is 0).
        quantiles: the Q levels.
        mask: (N, H), 1 where the target is observed (default: all).

    Returns:
        (H, L) float64: add it to the upper and subtract it from the lower end of interval l at step h
        (:func:`intervals` order). A step without observed targets gets 0 (no change).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.normal(size=(2000, 1))
        >>> pred = np.stack([np.full_like(y, -0.5), np.zeros_like(y), np.full_like(y, 0.5)], -1)
        >>> off = conformal_offsets(pred, y, (0.1, 0.5, 0.9))
        >>> bool(abs(0.5 + off[0, 0] - 1.2816) < 0.1)  # the 0.9 quantile of N(0, 1)
        True
    """
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[2] != len(quantiles) or y.shape != pred.shape[:2]:
        raise ValueError(
            f"pred (N, H, {len(quantiles)}) and target (N, H) expected, got {pred.shape} and {y.shape}"
        )
    m = np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask) > 0
    ivs = intervals(quantiles)
    out = np.zeros((y.shape[1], len(ivs)))
    for h in range(y.shape[1]):
        obs = m[:, h]
        n = int(obs.sum())
        if n == 0:
            continue
        for j, (lo, hi, cov) in enumerate(ivs):
            s = np.maximum(pred[obs, h, lo] - y[obs, h], y[obs, h] - pred[obs, h, hi])
            rank = math.ceil((n + 1) * cov)  # finite-sample corrected rank, 1-based
            out[h, j] = np.sort(s)[min(rank, n) - 1]
    return out


def apply_offsets(pred: np.ndarray, offsets: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Calibrated quantiles: (N, H, Q) with interval l at step h moved out by ``offsets[h, l]``.

    The median stays; each lower quantile is then at most the next one above it and each upper quantile at
    least the next one below it, so no two cross (an interval narrowed past an inner one ends on it).

    >>> p = np.array([[[-1.0, 0.0, 1.0]]])
    >>> apply_offsets(p, np.array([[0.5]]), (0.1, 0.5, 0.9)).tolist()
    [[[-1.5, 0.0, 1.5]]]
    >>> apply_offsets(p, np.array([[-2.0]]), (0.1, 0.5, 0.9)).tolist()
    [[[0.0, 0.0, 0.0]]]
    """
    out = np.array(pred, dtype=np.float64, copy=True)
    off = np.asarray(offsets, dtype=np.float64)
    ivs = intervals(quantiles)
    if off.shape != (out.shape[1], len(ivs)):
        raise ValueError(f"offsets ({out.shape[1]}, {len(ivs)}) expected, got {off.shape}")
    for j, (lo, hi, _) in enumerate(ivs):
        out[:, :, lo] -= off[None, :, j]
        out[:, :, hi] += off[None, :, j]
    mid = median_index(quantiles)
    for i in range(mid - 1, -1, -1):
        out[:, :, i] = np.minimum(out[:, :, i], out[:, :, i + 1])
    for i in range(mid + 1, out.shape[2]):
        out[:, :, i] = np.maximum(out[:, :, i], out[:, :, i - 1])
    return out


def coverages(actual: np.ndarray, pred: np.ndarray, quantiles: Sequence[float]) -> dict[str, float]:
    """``{coverage_<level>: share of actuals inside the interval}`` for every interval; actual (N,), pred
    (N, Q).

    >>> coverages(
    ...     np.array([0.0, 2.0]), np.array([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]), (0.1, 0.5, 0.9)
    ... )
    {'coverage_80': 0.5}
    """
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    return {
        coverage_key(cov): float(np.mean((a >= p[:, lo]) & (a <= p[:, hi])))
        for lo, hi, cov in sorted(intervals(quantiles), key=lambda t: t[2])
    }
