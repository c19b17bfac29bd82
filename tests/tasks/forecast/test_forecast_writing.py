"""The fast CSV writer writes what ``DataFrame.to_csv(index=False, float_format="%.6g")`` writes, byte for
byte (the oracle: pandas itself), and hands tables it cannot write exactly back to pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from grukit.tasks.forecast.writing import format_g, write_csv

EDGE = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-5, 1e-4, 9.99999e-5, 999999.5, 999999.4, 9999995.0,
        123456.5, 1234565.0, 0.5, 2.675, 1e16, 5e-324, 1e300, -1e-300, 99999.95, 0.000123456789,
        1e-15, 9.9999999e19, 1e20, 100000.0, 1e6, 0.1, 0.3, 1 / 3]  # fmt: skip


def _text(m: np.ndarray) -> list[str]:
    return [bytes(r).replace(b"\0", b"").decode() for r in m]


def test_format_g_equals_python_percent_g():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            EDGE,
            rng.normal(10, 3, 20000),
            10 ** rng.uniform(-25, 25, 20000) * rng.choice([-1, 1], 20000),
            rng.integers(-4000, 4000, 5000) / 8.0,  # exact ties of the last digit
            rng.integers(0, 10**9, 5000).astype(float),
        ]
    )
    want = ["" if v != v else f"{v:.6g}" for v in x.tolist()]  # "%.6g" % v
    assert _text(format_g(x)) == want


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.array([f"s{i}" for i in range(max(1, n // 7))], dtype=object)
    return pd.DataFrame(
        {
            "series": ids[rng.integers(0, len(ids), n)],
            "origin": rng.integers(-5, 10**6, n),
            "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
            "step": np.tile(np.arange(1, 8), n // 7 + 1)[:n],
            "actual": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 100, n)),
            "gru_q50": rng.lognormal(0, 5, n),
        }
    )


@pytest.mark.parametrize("n", [0, 1, 500])
def test_write_csv_equals_pandas(tmp_path, n):
    df = _table(n)
    df.to_csv(tmp_path / "want.csv", index=False, float_format="%.6g")
    write_csv(df, tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "want.csv").read_bytes()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.assign(time=d["time"] + pd.Timedelta("90min")),  # times of day
        lambda d: d.assign(time=d["time"].dt.tz_localize("UTC")),  # a time zone: pandas writes it
        lambda d: d.assign(series=d["series"].where(d.index != 2, "a,b")),  # needs quoting
        lambda d: d.assign(series=d["series"].where(d.index != 3, "")),  # an empty text
        lambda d: d.assign(series=d["series"].astype("category")),  # categorical ids
        lambda d: d.assign(series=np.arange(len(d))),  # integer ids
        lambda d: d.assign(step=d["step"] > 3),  # booleans
        lambda d: d.assign(series=d["series"].where(d.index != 4, None)),  # a missing id
        lambda d: d.assign(series=d["series"].where(d.index != 5, "ü\u00e9")),  # non-ASCII
        lambda d: d.assign(gru_q50=d["gru_q50"].astype(np.float32)),
        # integers: whole-array digits (signs, zeros, widths) and the extremes written by NumPy
        lambda d: d.assign(
            origin=np.resize([0, -1, 9, -10, 10, 99, -100, 10**17, -(10**17)], len(d))
        ),
        lambda d: d.assign(
            origin=np.resize([np.iinfo(np.int64).min, np.iinfo(np.int64).max], len(d))
        ),
        lambda d: d.assign(origin=np.resize(np.array([2**64 - 1, 0], np.uint64), len(d))),
        lambda d: d.assign(step=d["step"].astype(np.int8)),
        # a small span of values (the table of texts), negative ones too, in small integer types
        lambda d: d.assign(origin=np.resize(np.arange(-120, 121, 7), len(d))),
        lambda d: d.assign(origin=np.resize(np.arange(-128, 128, 9), len(d)).astype(np.int8)),
        lambda d: d.assign(origin=np.resize([65530, 1, 0, 2**16 - 1], len(d)).astype(np.uint16)),
        lambda d: d.assign(origin=np.resize([2**40, 2**40 + 5, 2**40 + 2**16], len(d))),
        lambda d: d.assign(series=d["series"].where(d.index != 6, "x\0y")),  # a NUL byte
    ],
)
def test_write_csv_equals_pandas_on_other_columns(tmp_path, change):
    df = change(_table(40))
    df.to_csv(tmp_path / "want.csv", index=False, float_format="%.6g")
    write_csv(df, tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == (tmp_path / "want.csv").read_bytes()
