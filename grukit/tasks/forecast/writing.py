"""Writing result tables as CSV fast: what ``DataFrame.to_csv(path, index=False, float_format="%.6g")``
writes, byte for byte, built in whole-array operations.

pandas formats every cell through Python (a few µs a cell: half a minute for the backtest and forecast
files of 100k series). Here each column becomes a byte matrix (one row per table row, NUL-padded): the
float columns' digits come from integer arithmetic over the whole column (only cells whose last
significant digit is a near tie, or whose magnitude is extreme, go through Python's ``"%.6g"``), integer,
date and text columns from NumPy's fixed-width byte strings; the matrices are joined with commas and
newlines and the padding dropped. A table this module cannot write exactly as pandas does (a column of
another type, a text cell that would need quoting, an empty text, a NUL byte, a time zone) is written by
pandas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: significant digits of the float columns (``"%.6g"``)
DIGITS = 6
#: an integer column spanning fewer values than this takes its texts from a table of them
TABLE_INTS = 1 << 16
#: rows written at a time (bounds the byte matrices)
CHUNK = 1 << 18
_W = 21  # format_g's layout: sign, "0.", 3 zeros, 6 digits with 5 places for the point, "e+XX"


def format_g(values: np.ndarray) -> np.ndarray:
    """``"%.6g" % v`` of every value as a (n, 21) uint8 matrix whose NUL bytes are to be dropped (NaN →
    empty, as ``to_csv`` writes it).

    Every row has one layout, NUL where a character is absent: sign, ``0.`` and up to three zeros (a
    fixed-point value under 1), the six digits with a place for the point after each of the first five,
    and the exponent (``e+XX``, scientific notation only). So the whole column is formatted by a few
    dozen whole-array operations, whatever its magnitudes.

    >>> m = format_g(np.array([1234567.0, 0.5, -2.25e-7, 100.0, np.nan, np.inf]))
    >>> [bytes(r).replace(b"\\0", b"").decode() for r in m]
    ['1.23457e+06', '0.5', '-2.25e-07', '100', '', 'inf']
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n, D = len(x), DIGITS
    a = np.abs(x)
    ok = np.isfinite(x) & (a >= 1e-15) & (a < 1e20)
    safe = np.where(ok, a, 1.0)
    e = np.floor(np.log10(safe)).astype(np.int64)
    p = D - 1 - e  # scale by 10**p; |p| ≤ 20, so 10.0**|p| is exact
    scaled = np.where(p >= 0, safe * 10.0 ** np.maximum(p, 0), safe / 10.0 ** np.maximum(-p, 0))
    lo, hi = 10 ** (D - 1), 10**D
    frac = scaled - np.floor(scaled)
    # a near tie of the last digit, or log10's exponent off by one: these go through Python
    hard = ~ok | (np.abs(frac - 0.5) < 1e-6) | (scaled < lo) | (scaled >= hi)
    m = np.rint(np.where(hard, lo, scaled)).astype(np.int64)
    carry = m == hi  # 999999.7 → 1e+06
    m = np.where(carry, lo, m)
    m, e = m.astype(np.int32), (e + carry).astype(np.int32)  # 32 bits: faster digit arithmetic
    # significant digits: 6 less the trailing zeros of m (its first digit is never 0)
    sig = np.full(n, D, dtype=np.int32)
    for k in range(1, D):
        sig -= m % 10**k == 0
    fixed = (e >= -4) & (e < D)
    small = fixed & (e < 0)  # 0.000ddd
    # digits shown: a fixed-point value ≥ 1 shows its whole integer part, then up to the last nonzero
    shown = np.where(fixed & (e >= 0), np.maximum(e + 1, sig), sig)
    # the point after digit k: after the integer part (fixed, ≥ 1), or after the first (scientific)
    point_at = np.where(fixed, np.where((e >= 0) & (sig > e + 1), e, -1), np.where(sig > 1, 0, -1))
    zero, dot = ord("0"), ord(".")
    out = np.zeros((n, _W), dtype=np.uint8)
    out[:, 0] = np.where(np.signbit(x), ord("-"), 0)
    out[:, 1] = np.where(small, zero, 0)
    out[:, 2] = np.where(small, dot, 0)
    for i in range(1, 4):  # the zeros after "0." of 0.01 .. 0.0001
        out[:, 2 + i] = np.where(small & (e < -i), zero, 0)
    for k in range(D):
        digit = (m // 10 ** (D - 1 - k)) % 10 + zero
        out[:, 6 + 2 * k] = np.where(k < shown, digit, 0)
        if k < D - 1:
            out[:, 7 + 2 * k] = np.where(point_at == k, dot, 0)
    sci = ~fixed
    ae = np.abs(e)
    out[:, 17] = np.where(sci, ord("e"), 0)
    out[:, 18] = np.where(sci, np.where(e < 0, ord("-"), ord("+")), 0)
    out[:, 19] = np.where(sci, ae // 10 + zero, 0)
    out[:, 20] = np.where(sci, ae % 10 + zero, 0)
    for i in np.nonzero(hard)[0].tolist():
        out[i] = 0
        v = float(x[i])
        if v == v:
            b = f"{v:.6g}".encode()
            out[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return out


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` as ``df.to_csv(path, index=False, float_format="%.6g")`` does, byte for byte."""
    cols = _byte_columns(df)
    if cols is None:
        df.to_csv(path, index=False, float_format="%.6g")
        return
    with open(path, "wb") as f:
        f.write((",".join(str(c) for c in df.columns) + "\n").encode())
        for a in range(0, len(df), CHUNK):
            parts = []
            for j, make in enumerate(cols):
                mat = make(a, a + CHUNK)
                parts.append(mat)
                sep = ord(",") if j < len(cols) - 1 else ord("\n")
                parts.append(np.full((len(mat), 1), sep, dtype=np.uint8))
            block = np.concatenate(parts, axis=1)
            f.write(block[block != 0].tobytes())


def _byte_columns(df: pd.DataFrame):
    """Per column a function (start, stop) → the NUL-padded uint8 matrix of its CSV text, or None where
    this module does not write the table the way pandas does."""
    names = [str(c) for c in df.columns]
    if not len(df.columns) or len(set(names)) != len(names) or any(map(_needs_quotes, names)):
        return None
    out = []
    for c in df.columns:
        s = df[c]
        dt = s.dtype
        if isinstance(dt, np.dtype) and dt.kind == "f":
            v = s.to_numpy(np.float64)
            out.append(lambda a, b, v=v: format_g(v[a:b]))
        elif isinstance(dt, np.dtype) and dt.kind in "iu":
            out.append(_int_column(s.to_numpy()))
        elif isinstance(dt, np.dtype) and dt.kind == "M":
            t = s.to_numpy()
            if np.isnat(t).any():
                return None
            day = t.astype("M8[D]")
            if (day == t).all():
                text = np.datetime_as_string(day, unit="D")
            elif (t.astype("M8[s]") == t).all():
                text = np.strings.replace(np.datetime_as_string(t, unit="s"), "T", " ")
            else:
                return None
            out.append(_fixed(text.astype("S")))
        elif (isinstance(dt, np.dtype) and dt.kind == "O") or isinstance(
            dt, (pd.StringDtype, pd.CategoricalDtype)
        ):
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
            if (codes < 0).any():
                return None
            texts = _plain_texts(uniques)
            if texts is None:
                return None  # pandas writes another object's repr, or quotes the text
            out.append(_fixed(texts[codes]))
        else:
            return None
    return out


def _plain_texts(uniques: Any) -> np.ndarray | None:
    """The distinct texts of a column as a fixed-width bytes array (UTF-8), or None when one is not a
    non-empty text pandas writes as it is (no quoting: no comma, quote or line break; no NUL byte)."""
    items = list(uniques)
    if not all(type(u) is str for u in items):
        if not all(isinstance(u, str) for u in items):
            return None
        items = [str(u) for u in items]
    if not items:
        return np.zeros(0, dtype="S1")
    joined = "".join(items)  # one scan for every text instead of one per text
    if any(ch in joined for ch in ',"\r\n\0') or min(map(len, items)) == 0:
        return None
    if joined.isascii():
        return np.array(items, dtype=str).astype("S")
    return np.array([u.encode() for u in items], dtype=bytes)


def _int_column(v: np.ndarray):
    """An integer column's decimal texts as a (start, stop) → uint8 matrix function (NUL-padded; the
    NULs are dropped on writing, so leading ones do no harm): whole-array digits, not a text per cell."""
    v = np.asarray(v)
    if len(v) == 0 or (v.dtype.kind == "u" and v.dtype.itemsize == 8) or v.min() < -(10**18):
        return _fixed(v.astype("S"))
    lo, hi = int(v.min()), int(v.max())
    if hi - lo < TABLE_INTS:  # few distinct values (steps, times, origins): each value's text once
        table = np.arange(lo, hi + 1, dtype=np.int64).astype("S")
        tab = table.view(np.uint8).reshape(len(table), table.dtype.itemsize)
        return lambda a, z: tab[v[a:z].astype(np.int64) - lo]
    v = v.astype(np.int64)
    a = np.abs(v)
    width = len(str(int(a.max())))
    digits = a[:, None] // 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)[None, :]
    lead = (
        digits == 0
    )  # leading zeros: the quotient by the higher powers is 0 (the last digit stays)
    lead[:, -1] = False
    mat = np.where(lead, 0, digits % 10 + 48).astype(np.uint8)
    if (v < 0).any():
        sign = np.where(v < 0, ord("-"), 0).astype(np.uint8)
        # the sign just before the first digit: shift it into the last leading-zero slot
        first = np.argmax(~lead, axis=1)
        mat = np.concatenate([np.zeros((len(v), 1), np.uint8), mat], axis=1)
        mat[np.arange(len(v)), first] = sign
    return lambda a, z: mat[a:z]


def _fixed(b: np.ndarray):
    """Rows of a fixed-width bytes array as a (start, stop) → uint8 matrix function (NUL-padded)."""
    w = b.dtype.itemsize
    mat = b.view(np.uint8).reshape(len(b), w)
    return lambda a, z: mat[a:z]


def _needs_quotes(text: str) -> bool:
    return any(ch in text for ch in ',"\r\n') or text == ""
