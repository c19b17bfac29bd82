"""Model selection of the forecaster's default output: the GRU or a statistical model, chosen per series on
validation windows before the scored (or forecast) origin.

The candidates: the GRU (the estimator's model, trained on data before the scored origin) and
statsforecast's naive, seasonal naive, AutoETS and AutoTheta, each fitted on the history before the window
it forecasts; ``combo`` is the mean of the GRU's, AutoETS's and AutoTheta's quantiles. A window's score is
MAE / the in-sample MAE of the lag-m naive forecast on the history before it (MASE). No test value is ever
looked at.

**Small panels** (at most :data:`PER_SERIES_MAX` series: one short series is the common case) choose per
series on up to :data:`MAX_WINDOWS` rolling windows ``h`` apart that end at the scored origin
(:func:`validation_origins`; as many as the series' length allows), with :func:`choose_small`: the default
source is ``stat_combo``, the mean of AutoETS's, AutoTheta's and AutoARIMA's quantiles (AutoARIMA where the
season is at most :data:`ARIMA_MAX_SEASON`; else the mean of the other two); the better trivial forecast
(naive or seasonal naive) replaces it only where it clearly beats it (:func:`beats`: on at least two
windows, by more than :data:`TOLERANCE` and more than one standard error of the paired per-window
difference, in t units), and the GRU replaces that only where it clearly beats it on the windows it held
out of its training (its error on windows it trained on would flatter it). This rule was chosen on
development windows that lie wholly before every test window (``benchmarks/forecast_selection_dev.py``:
each data set cut at its first test origin); the rule before it (:func:`choose_robust`: the simplest
statistical model not clearly beaten, the GRU or ``combo`` only if clearly better) lost to a trivial
forecast on 3 of those 16 data sets and had a development geometric mean of 1.38 × the best statsforecast
model's, against 1.01 for this one.

**Larger panels** (more than :data:`PER_SERIES_MAX` series) give every series one weighted mean
(``blend``) of the GRU's, AutoETS's and AutoTheta's quantiles, weighted once for the whole panel
(:func:`blend_weights`): the weights on the simplex grid of step :data:`WEIGHT_STEP` with the lowest mean
MASE on the window just before the scored origin, over the series whose window the GRU held out (a random
20%: :func:`~.windows.split_windows`), shrunk halfway (:data:`SHRINK`) toward equal weights. One window per
series is too little evidence to choose per series, and the panel's validation flatters the GRU: its
held-out windows share calendar time with the other series' windows it trained on (a global model learns
what happened in those years), which the statistical models, fitted per series, cannot. The shrinkage is
a prior fixed before any measurement (estimated combination weights rarely beat equal weights by much,
and equal weights never bet everything on one flattered candidate), not fitted to any data set.
Only those held-out windows are forecast and scored (the statistical candidates are fitted nowhere else).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

#: the sources a series' forecast can come from, in tie-breaking order; statsforecast names in
#: :data:`.evaluate.SF_NAMES`
CANDIDATES = ("GRU", "naive", "snaive", "ets", "theta", "combo", "arima", "stat_combo")
#: the statistical candidates (statsforecast models) a larger panel's validation forecasts, and the members
#: of ``combo``
STAT_CANDIDATES = ("naive", "snaive", "ets", "theta")
COMBO = ("GRU", "ets", "theta")
#: the source of a small panel's default: the mean of AutoETS's, AutoTheta's and AutoARIMA's quantiles
#: (:func:`with_combo`; without AutoARIMA where the season is longer than :data:`ARIMA_MAX_SEASON`)
STAT_COMBO = "stat_combo"
STAT_COMBO_MEMBERS = ("ets", "theta", "arima")
#: AutoARIMA is fitted (a small panel's candidate) only for seasons up to this long: on 500 hourly points
#: with m = 24 one fit takes tens of seconds
ARIMA_MAX_SEASON = 12
#: the trivial candidates that may replace ``stat_combo`` in a small panel (:func:`choose_small`)
TRIVIAL = ("naive", "snaive")
#: the fewest history points before a validation window for a series to be selected on
MIN_HISTORY = 4
#: panels of at most this many series choose per series on several windows (:func:`choose_robust`)
PER_SERIES_MAX = 20
#: the most validation windows per series of a small panel (each is one more statistical fit per model)
MAX_WINDOWS = 5
#: a more complex candidate must beat a simpler one by more than this share of its MASE to be chosen
TOLERANCE = 0.05
#: the statistical candidates are fitted on the last this many points of a history (the default of the
#: baselines' ``baseline_history``: AutoETS and AutoTheta on a long hourly series would take minutes)
STAT_HISTORY = 500
#: the statistical candidates from the simplest (kept on near-ties)
SIMPLEST_FIRST = ("naive", "snaive", "theta", "ets")
#: the source of a larger panel's series: the panel's weighted mean of :data:`COMBO` (:func:`blend_weights`)
BLEND = "blend"
#: the grid step of :func:`blend_weights` (weights 0, 0.1, ..., 1 summing to 1)
WEIGHT_STEP = 0.1
#: the share of the way from the validation-best weights to equal weights (:func:`blend_weights`)
SHRINK = 0.5


def naive_scale(y: np.ndarray, m: int) -> float:
    """The MASE denominator of a history: in-sample MAE of the lag-m naive forecast (lag 1 when the
    history is not longer than m); 1 where that is 0 or undefined.

    >>> naive_scale(np.array([1.0, 2.0, 4.0, 7.0]), 1)
    2.0
    """
    y = np.asarray(y, dtype=np.float64)
    lag = m if len(y) > m else 1
    if len(y) <= lag:
        return 1.0
    d = np.abs(y[lag:] - y[:-lag])
    d = d[np.isfinite(d)]
    s = float(d.mean()) if d.size else 0.0
    return s if s > 0 else 1.0


def validation_origins(first: int, horizon: int, windows: int) -> list[int]:
    """The origins of a series' validation windows, latest first: ``first - horizon * j`` for j = 1 ..
    ``windows``, each with at least :data:`MIN_HISTORY` points before it (the last window ends at
    ``first``, the first scored origin).

    >>> validation_origins(30, 6, 5)
    [24, 18, 12, 6]
    """
    out = []
    for j in range(1, windows + 1):
        v = first - horizon * j
        if v < MIN_HISTORY:
            break
        out.append(v)
    return out


def small_stat_candidates(m: int) -> tuple[str, ...]:
    """The statsforecast models a small panel's selection fits for season length ``m``: naive, seasonal
    naive, AutoETS, AutoTheta and, for ``m`` ≤ :data:`ARIMA_MAX_SEASON`, AutoARIMA.

    >>> small_stat_candidates(24)
    ('naive', 'snaive', 'ets', 'theta')
    """
    return (*STAT_CANDIDATES, "arima") if m <= ARIMA_MAX_SEASON else STAT_CANDIDATES


def with_combo(forecasts: Mapping[str, np.ndarray], stat: bool = False) -> dict[str, np.ndarray]:
    """``forecasts`` (name → (N, H, Q) quantiles) with ``combo``: the mean of the GRU's, AutoETS's and
    AutoTheta's quantiles (where all three are present), and with ``stat``, ``stat_combo``: the mean of
    AutoETS's, AutoTheta's and AutoARIMA's (AutoETS's and AutoTheta's where AutoARIMA is absent)."""
    out = dict(forecasts)
    if all(k in out for k in COMBO):
        out["combo"] = np.mean([out[k] for k in COMBO], axis=0)
    if stat and all(k in out for k in STAT_COMBO_MEMBERS[:2]):
        out[STAT_COMBO] = np.mean([out[k] for k in STAT_COMBO_MEMBERS if k in out], axis=0)
    return out


def validation_scores(
    actual: np.ndarray, medians: Mapping[str, np.ndarray], scale: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-series validation MASE of each candidate: mean |actual − median| / scale.

    Args:
        actual: (N, H) validation values (NaN: not observed, left out).
        medians: candidate → (N, H) point forecasts.
        scale: (N,) MASE denominators.

    Returns:
        candidate → (N,) scores (NaN where a series has no observed value or the forecast is not finite).
    """
    out = {}
    for name, f in medians.items():
        err = np.abs(np.asarray(actual, dtype=np.float64) - f)
        ok = np.isfinite(err)
        cnt = ok.sum(axis=1)
        tot = np.where(ok, err, 0.0).sum(axis=1)
        bad = (~np.isfinite(f) & np.isfinite(actual)).any(axis=1)
        sc = np.where((cnt > 0) & ~bad, tot / np.maximum(cnt, 1), np.nan) / scale
        out[name] = sc
    return out


def choose(
    scores: Mapping[str, np.ndarray],
    own: np.ndarray,
    candidates: Sequence[str] = CANDIDATES,
) -> list[str]:
    """The source of each series: its lowest-scoring candidate where ``own`` (its validation window was
    held out of the GRU's training), else the candidate with the lowest mean score over the ``own`` series
    (the GRU when there is none). A series without a finite score for every candidate keeps the GRU.

    >>> s = {"GRU": np.array([1.0, 0.5, 0.9]), "naive": np.array([0.8, 0.7, 0.1])}
    >>> choose(s, own=np.array([True, True, False]), candidates=("GRU", "naive"))
    ['naive', 'GRU', 'GRU']
    """
    names = [c for c in candidates if c in scores]
    if not names:
        return ["GRU"] * len(own)
    table = np.stack([np.asarray(scores[c], dtype=np.float64) for c in names], axis=1)  # (N, K)
    valid: np.ndarray = np.asarray(np.isfinite(table).all(axis=1), dtype=bool)
    own = np.asarray(own, dtype=bool) & valid
    if own.any():
        panel = names[int(np.argmin(table[own].mean(axis=0)))]
    else:
        panel = "GRU"
    out = []
    for i in range(len(table)):
        if own[i]:
            out.append(names[int(np.argmin(table[i]))])  # argmin: the first of equal scores
        elif valid[i] or panel == "GRU":
            out.append(panel)
        else:
            out.append("GRU")
    return out


def weight_grid(k: int, step: float = WEIGHT_STEP) -> np.ndarray:
    """All weight vectors of ``k`` members on the grid of ``step`` that sum to 1, (G, k), in
    lexicographic order of their integer numerators (so the first member's weight rises last).

    >>> weight_grid(2, 0.5).tolist()
    [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    """
    n = round(1 / step)
    rows = [c for c in np.ndindex(*(n + 1,) * k) if sum(c) == n]
    return np.asarray(rows, dtype=np.float64) / n


def blend_weights(
    actual: np.ndarray,
    medians: Mapping[str, np.ndarray],
    scale: np.ndarray,
    own: np.ndarray,
    members: Sequence[str] = COMBO,
    step: float = WEIGHT_STEP,
    shrink: float = SHRINK,
) -> dict[str, float]:
    """A panel's weights of ``members``: the grid point (:func:`weight_grid`) whose weighted median has the
    lowest mean validation MASE over the ``own`` series (those whose window the GRU held out) with a finite
    forecast from every member, moved ``shrink`` of the way toward equal weights. Equal weights where no
    series qualifies.

    Args:
        actual: (N, H) validation values (NaN: not observed).
        medians: member → (N, H) point forecasts.
        scale: (N,) MASE denominators.
        own: (N,) True where the series' validation window was held out of the GRU's training.

    Returns:
        member → weight (they sum to 1).

    >>> a = np.array([[1.0, 1.0]])
    >>> m = {
    ...     "GRU": np.array([[1.0, 1.0]]),
    ...     "ets": np.array([[3.0, 3.0]]),
    ...     "theta": np.array([[3.0, 3.0]]),
    ... }
    >>> blend_weights(a, m, np.ones(1), np.array([True]))  # best: all GRU; halfway to 1/3 each
    {'GRU': 0.6667, 'ets': 0.1667, 'theta': 0.1667}
    """
    k = len(members)
    equal = np.full(k, 1.0 / k)
    f = np.stack([np.asarray(medians[c], dtype=np.float64) for c in members])  # (k, N, H)
    ok = np.asarray(own, dtype=bool) & np.isfinite(f).all(axis=(0, 2))
    ok &= np.isfinite(np.asarray(actual, dtype=np.float64)).any(axis=1)
    if not ok.any():
        best = equal
    else:
        grid = weight_grid(k, step)
        comb = np.einsum("gk,knh->gnh", grid, f[:, ok])  # (G, n, H)
        err = np.abs(np.asarray(actual, dtype=np.float64)[ok][None] - comb)
        mase = np.nanmean(err, axis=2) / np.asarray(scale, dtype=np.float64)[ok][None]
        best = grid[int(np.argmin(mase.mean(axis=1)))]  # argmin: the first of equal means
    w = (1 - shrink) * best + shrink * equal
    return {c: round(float(x), 4) for c, x in zip(members, w)}


def weighted(forecasts: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of ``forecasts`` (name → (N, H, Q) quantiles) by ``weights`` (name → weight)."""
    tot = sum(weights.values())
    parts = [np.asarray(forecasts[c], dtype=np.float64) * (w / tot) for c, w in weights.items()]
    return np.sum(parts, axis=0)


def blend(gru: np.ndarray, chosen: Sequence[str], others: Mapping[str, np.ndarray]) -> np.ndarray:
    """The (N, H, Q) quantiles of each row's chosen source: the GRU's (``gru``) or ``others[name]``."""
    out = np.array(gru, dtype=np.float64, copy=True)
    for i, c in enumerate(chosen):
        if c != "GRU":
            out[i] = others[c][i]
    return out


def beats(
    challenger: np.ndarray,
    incumbent: np.ndarray,
    tolerance: float = TOLERANCE,
    se_test: bool = True,
) -> bool:
    """Whether ``challenger`` is clearly better than ``incumbent`` on their paired validation windows
    (MASE per window, NaN: no such window): on the windows both have — at least two — the mean of
    ``incumbent − challenger`` exceeds both ``tolerance`` × the incumbent's mean and (``se_test``) one
    standard error of that difference, in Student's t units for the few windows there are (t of n − 1
    degrees of freedom at the normal's one-SE level, 84.1%: 1.84 SE for 2 windows, 1.32 for 3, 1.14 for 5).
    An advantage the noise of a few windows explains does not count; one window cannot tell it. (The
    parameters are for ``benchmarks/forecast_selection_dev.py``'s variants; the rules use the defaults.)

    >>> beats(np.array([0.5, 0.6, 0.4]), np.array([1.0, 1.1, 0.9]))  # 0.5 better, SE 0
    True
    >>> beats(np.array([0.1, 1.9]), np.array([1.0, 1.0]))  # 0 better on average
    False
    >>> beats(np.array([0.2, 1.0]), np.array([1.0, 1.0]))  # 0.4 better, SE 0.4: not clearly
    False
    >>> beats(np.array([0.2]), np.array([1.0]))  # one window
    False
    """
    from scipy import stats

    c, b = np.asarray(challenger, dtype=np.float64), np.asarray(incumbent, dtype=np.float64)
    ok = np.isfinite(c) & np.isfinite(b)
    n = int(ok.sum())
    if n < 2:
        return False
    d = b[ok] - c[ok]
    se = 0.0
    if se_test:
        se = float(d.std(ddof=1) / np.sqrt(n)) * float(stats.t.ppf(stats.norm.cdf(1.0), n - 1))
    return bool(d.mean() > max(tolerance * float(b[ok].mean()), se))


def choose_robust(
    scores: Mapping[str, np.ndarray],
    gru_ok: np.ndarray,
    candidates: Sequence[str] = CANDIDATES,
    *,
    simplest_first: Sequence[str] = SIMPLEST_FIRST,
    challengers: Sequence[str] = ("combo", "GRU"),
    tolerance: float = TOLERANCE,
    se_test: bool = True,
) -> list[str]:
    """The source of each series from its scores on several validation windows (the previous small-panel
    rule, kept for comparison: ``benchmarks/forecast_selection_dev.py`` scores it and its variants).

    Args:
        scores: candidate → (N, K) validation MASE per series and window (NaN: no such window).
        gru_ok: (N, K) True where the window was held out of the GRU's training (the GRU and ``combo``
            are judged there only).
        candidates: the candidates allowed.
        simplest_first: the statistical candidates, simplest first.
        challengers: the GRU-side candidates (judged on ``gru_ok`` windows only), preferred first on a tie.
        tolerance: :func:`beats`' tolerance.
        se_test: whether :func:`beats` also asks for one standard error.

    Returns:
        N sources. Per series: ``s`` = the first of :data:`SIMPLEST_FIRST` that the statistical candidate
        with the lowest mean MASE does not :func:`beat <beats>` (on the windows every statistical
        candidate has); then ``combo`` or the GRU (the one with the lower mean, ``combo`` on a tie)
        replaces ``s`` if it beats ``s`` on the ``gru_ok`` windows. A series with no ``gru_ok`` window
        takes that rule applied to the per-window means over the series that have one; where no series
        has one, its own ``s``. Without a window every statistical candidate has: the GRU.

    >>> e = {
    ...     "GRU": np.array([[0.5, 0.4, 0.1, 0.1]]),
    ...     "naive": np.array([[1.0, 1.1, 1.0, 1.0]]),
    ...     "ets": np.array([[0.97, 1.0, 0.99, 1.0]]),
    ... }
    >>> choose_robust(e, np.array([[True, True, False, False]]), ("GRU", "naive", "ets"))
    ['GRU']
    >>> choose_robust(
    ...     {**e, "GRU": np.array([[0.1, 1.9, 0.1, 0.1]])},
    ...     np.array([[True, True, False, False]]),
    ...     ("GRU", "naive", "ets"),
    ... )
    ['naive']
    """
    names = [c for c in candidates if c in scores]
    stats = [c for c in simplest_first if c in names]
    grus = [c for c in challengers if c in names]
    gru_ok = np.asarray(gru_ok, dtype=bool)
    table = {c: np.asarray(scores[c], dtype=np.float64) for c in names}
    for g in grus:  # the GRU's error on windows it trained on is not looked at
        table[g] = np.where(gru_ok, table[g], np.nan)

    def pick(tab: dict[str, np.ndarray]) -> str:
        """One series (or the panel's mean): candidate → (K,) scores."""
        if not stats:
            return "GRU"
        common = np.all([np.isfinite(tab[c]) for c in stats], axis=0)
        if not common.any():
            return "GRU"
        means = {c: float(tab[c][common].mean()) for c in stats}
        best = min(stats, key=lambda c: means[c])  # the first of equal means
        simple = next(
            c
            for c in stats
            if c == best or not beats(tab[best][common], tab[c][common], tolerance, se_test)
        )
        ref = tab[simple]
        chall = []
        for g in grus:
            both = np.isfinite(tab[g]) & np.isfinite(ref)
            if both.any():
                chall.append((float(tab[g][both].mean()), g))
        if not chall:
            return simple
        g = min(chall, key=lambda x: x[0])[1]  # min keeps the first of equal means: combo
        return g if beats(tab[g], ref, tolerance, se_test) else simple

    has: np.ndarray = np.asarray(
        np.isfinite(table[grus[-1]]).any(axis=1) if grus else np.zeros(len(gru_ok), bool),
        dtype=bool,
    )
    out = [pick({c: t[i] for c, t in table.items()}) for i in range(len(gru_ok))]
    if has.any() and not has.all():  # series the GRU held nothing out of: the others' mean decides
        with warnings.catch_warnings():  # a window none of them has: NaN, left out
            warnings.simplefilter("ignore", RuntimeWarning)
            shared = pick({c: np.nanmean(t[has], axis=0) for c, t in table.items()})
        out = [o if h else shared for o, h in zip(out, has)]
    return out


def choose_small(scores: Mapping[str, np.ndarray], gru_ok: np.ndarray) -> list[str]:
    """The source of each series of a small panel from its scores on several validation windows (the
    rule of the module doc, chosen on development windows: ``benchmarks/forecast_selection_dev.py``).

    Args:
        scores: candidate → (N, K) validation MASE per series and window (NaN: no such window); uses
            ``stat_combo``, ``naive``, ``snaive`` and ``GRU``.
        gru_ok: (N, K) True where the window was held out of the GRU's training (the GRU is judged there
            only).

    Returns:
        N sources. Per series: ``stat_combo``, unless the trivial candidate (naive or seasonal naive,
        the one with the lower mean MASE) :func:`beats` it on the windows both have — then that one; the
        GRU replaces that choice if it beats it on the windows it held out.

    >>> s = {
    ...     "stat_combo": np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
    ...     "naive": np.array([[0.5, 0.6, 0.5], [0.98, 0.9, 1.1]]),
    ...     "snaive": np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]),
    ...     "GRU": np.array([[0.1, 0.1, 0.9], [0.5, 0.6, 0.1]]),
    ... }
    >>> choose_small(s, np.array([[True, True, False], [True, True, False]]))
    ['GRU', 'GRU']
    >>> choose_small(s, np.array([[False, False, True], [False, False, True]]))
    ['naive', 'stat_combo']
    """
    gru_ok = np.asarray(gru_ok, dtype=bool)
    tab = {
        c: np.asarray(scores[c], dtype=np.float64)
        for c in (STAT_COMBO, *TRIVIAL, "GRU")
        if c in scores
    }
    out = []
    for i in range(len(gru_ok)):
        ref = tab[STAT_COMBO][i] if STAT_COMBO in tab else np.full(gru_ok.shape[1], np.nan)
        src = STAT_COMBO
        trivial = [c for c in TRIVIAL if c in tab and np.isfinite(tab[c][i]).any()]
        if trivial:
            t = min(trivial, key=lambda c: float(np.nanmean(tab[c][i])))  # the first of equal means
            if beats(tab[t][i], ref):
                src, ref = t, tab[t][i]
        if "GRU" in tab and beats(np.where(gru_ok[i], tab["GRU"][i], np.nan), ref):
            src = "GRU"
        out.append(src)
    return out
