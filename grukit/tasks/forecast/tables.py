"""Reading the forecasting tables: the built-in datasets and a user's .csv or .parquet file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import UserInputError

#: Built-in datasets: file in grukit/data, columns and defaults.
BUILTIN: dict[str, dict[str, Any]] = {
    "weather": dict(
        file="seattle-weather.csv",
        time_col="date",
        target="temp_max",
        id_col=None,
        covariates=["precipitation", "temp_min", "wind", "weather"],
        horizon=7,
        context=56,
        backtest=20,
        log=False,
        calendar=True,
        scaling="series",  # chosen by validation loss: see docs/forecast.md "Measured"
        seasonal="none",
    ),
    "stocks": dict(
        file="stocks.csv",
        time_col="date",
        target="price",
        id_col="symbol",
        covariates=[],
        horizon=6,
        context=24,
        backtest=6,
        stride=3,
        log=True,
        calendar=False,
        scaling="series",
        seasonal="none",
    ),  # prices have no month-of-year season; see docs/forecast.md "Measured"
}


def load_builtin(name: str) -> pd.DataFrame:
    """The built-in dataset ``name`` ("weather" or "stocks") as shipped in grukit/data."""
    if name not in BUILTIN:
        raise UserInputError(f"--dataset expects one of {sorted(BUILTIN)}, got {name!r}")
    with resources.files("grukit").joinpath("data").joinpath(BUILTIN[name]["file"]).open("rb") as f:
        return pd.read_csv(f)


def read_table(path: str | Path, id_col: str | None = None, flag: str = "--data") -> pd.DataFrame:
    """Read a user table (``.parquet``/``.pq``, otherwise CSV) with a one-line message when it cannot be.

    The id column (``id_col``) of a CSV is read as text exactly as written (``00501`` stays ``00501``,
    ``NA`` is a series named ``NA``), as a categorical (each distinct id stored once); every other column
    keeps pandas' reading (an empty target cell is
    missing). A folder, a device such as /dev/null, an empty file or a file of NUL bytes is refused by
    what it is.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise UserInputError(f"{flag} {path}: no such file")
    if p.is_dir():
        raise UserInputError(f"{flag} {path}: is a folder, not a data file (.csv or .parquet)")
    if not p.is_file():
        raise UserInputError(
            f"{flag} {path}: is not a regular file (a device or pipe), not a data file"
        )
    if p.stat().st_size == 0:
        raise UserInputError(f"{flag} {path}: the file is empty")
    with open(p, "rb") as f:
        head = f.read(4096)
    parquet = p.suffix.lower() in (".parquet", ".pq") or head[:4] == b"PAR1"
    if not parquet and head.strip(b"\x00") == b"":
        raise UserInputError(f"{flag} {path}: the file holds only NUL bytes, not a CSV table")
    try:
        if parquet:
            df = _read_parquet(p, id_col)
        else:
            df = _read_csv(p, id_col)
    except UserInputError:
        raise
    except Exception as e:
        what = "Parquet" if parquet else "CSV"
        msg = " ".join(str(e).split())[:200]
        raise UserInputError(
            f"{flag} {path}: could not read it as {what} ({type(e).__name__}: {msg})"
        ) from None
    if df.empty:
        raise UserInputError(f"{flag} {path}: the file has no data rows")
    return df


def release_memory() -> None:
    """Hand memory that was freed but is still held by the allocators back to the OS: pyarrow's pool and
    (Linux, glibc) the C heap, whose per-thread arenas otherwise keep what a multithreaded read freed
    (about 1 GB after reading a 20-million-row CSV)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _read_parquet(p: Path, id_col: str | None) -> pd.DataFrame:
    """A parquet file through pyarrow; a text id column arrives dictionary-encoded (a pandas categorical
    of its distinct ids: a few bytes a row instead of one Python string each), any other id column as
    its text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pool = pa.system_memory_pool()  # freed columns go back to the OS (see _read_csv_arrow)
    field = None
    if id_col is not None:
        schema = pq.read_schema(p)
        field = schema.field(id_col) if id_col in schema.names else None
    if field is not None and (
        pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ):
        # the ids straight from the file's dictionary pages: no Python string, no text column, per row
        table = pq.read_table(p, read_dictionary=[id_col])
        df = table.to_pandas(split_blocks=True, self_destruct=True, memory_pool=pool)
        del table
        release_memory()
        return df
    table = pq.read_table(p)
    df = table.to_pandas(split_blocks=True, self_destruct=True, memory_pool=pool)
    del table
    release_memory()
    if field is not None:
        df[id_col] = df[id_col].astype("string").astype(object)
    return df


def _read_csv(p: Path, id_col: str | None) -> pd.DataFrame:
    fast = _read_csv_arrow(p, id_col)
    return fast if fast is not None else _read_csv_pandas(p, id_col)


def _read_csv_pandas(p: Path, id_col: str | None, **kwargs: Any) -> pd.DataFrame:
    """The CSV through pandas (tables :func:`_read_csv_arrow` does not take; ``kwargs`` go to
    ``pandas.read_csv``)."""
    if id_col is None:
        return pd.read_csv(p, **kwargs)
    cols = list(pd.read_csv(p, nrows=0).columns)
    if id_col not in cols:
        return pd.read_csv(p, **kwargs)  # the column check names it later
    from pandas._libs.parsers import STR_NA_VALUES

    na = sorted(STR_NA_VALUES)
    # NA parsing off for the id column only: the other columns keep pandas' defaults. The ids as a
    # categorical of their text: a few bytes a row, not one Python string each
    return pd.read_csv(
        p,
        dtype={id_col: pd.CategoricalDtype()},
        keep_default_na=False,
        na_values={c: na for c in cols if c != id_col},
        **kwargs,
    )


def _read_csv_arrow(p: Path, id_col: str | None) -> pd.DataFrame | None:
    """The common big table, read by pyarrow's multithreaded CSV reader straight into columns: every
    column but the id a number (int64 or float64; an empty cell or one of pandas' NA texts is missing),
    the id column as text exactly as written, dictionary-encoded (a pandas categorical). None — pandas
    then reads the file as before — for anything else (text or date columns, duplicate or empty column
    names, ragged rows).

    What pandas' reader would give, but every float correctly rounded (as Python's ``float`` and pandas'
    ``float_precision="round_trip"``; pandas' default parser can be one unit in the last place off on
    numbers written with 16-17 digits).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv
    from pandas._libs.parsers import STR_NA_VALUES

    try:
        with pcsv.open_csv(p) as head:  # reads the first block only
            names = head.schema.names
    except (pa.ArrowException, OSError, ValueError):
        return None
    if len(set(names)) != len(names) or "" in names or (id_col and id_col not in names):
        return None
    types = {id_col: pa.dictionary(pa.int32(), pa.string())} if id_col else {}
    # the system allocator: what the table's columns no longer need goes back to the OS (pyarrow's
    # default pool keeps freed memory, which would count against the whole run)
    pool = pa.system_memory_pool()
    try:
        table = pcsv.read_csv(
            p,
            memory_pool=pool,
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=sorted(STR_NA_VALUES),
                strings_can_be_null=False,  # the id column: its text, "NA" and "" included
                timestamp_parsers=[],
            ),
        )
    except (pa.ArrowException, OSError, ValueError):
        return None
    for name, t in zip(table.column_names, table.schema.types):
        if name != id_col and not (pa.types.is_int64(t) or pa.types.is_float64(t)):
            return None
    df = table.to_pandas(split_blocks=True, self_destruct=True, memory_pool=pool)
    del table
    release_memory()
    return df


def read_csv(path: str | Path, id_col: str | None = None) -> pd.DataFrame:
    """:func:`read_table` of a CSV (kept for ``--csv``)."""
    return read_table(path, id_col=id_col, flag="--csv")


# --------------------------------------------------------------------------------------- sharded panels
#: the partition column of a sharded panel: ``bucket_of(id)``
BUCKET_COL = "bucket"


def bucket_of(ids: Any, buckets: int) -> Any:
    """The bucket (0 .. buckets − 1) of each series id: CRC-32 of the id's UTF-8 text, modulo ``buckets``.

    Stable across processes, machines and Python versions (unlike ``hash``), so every writer and every
    reader of a panel agree on where a series lives.

    >>> bucket_of(["a", "b", "00501"], 16).tolist()
    [3, 9, 8]
    """
    import zlib

    import numpy as np

    return np.fromiter(
        (zlib.crc32(str(i).encode()) % buckets for i in ids), dtype=np.int32, count=len(ids)
    )


def write_sharded(df: pd.DataFrame, folder: str | Path, id_col: str, buckets: int = 64) -> Path:
    """Write a panel as a partitioned parquet dataset ``folder/bucket=<b>/*.parquet`` (hive layout, the
    bucket of each series from :func:`bucket_of`): the layout :func:`read_shard` reads one rank's share of.

    Every row of a series lands in one bucket; ``folder`` must not exist yet (nothing is half-written
    into an existing folder).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(folder)
    if out.exists():
        raise UserInputError(f"{out}: already exists; give a new folder for the sharded panel")
    if id_col not in df.columns:
        raise UserInputError(
            f"--id-col {id_col!r} not found; the table has columns {list(df.columns)}"
        )
    codes, uniques = pd.factorize(df[id_col].astype(str))
    b = bucket_of(list(uniques), buckets)[codes]
    table = pa.Table.from_pandas(df.assign(**{BUCKET_COL: b}), preserve_index=False)
    tmp = out.with_name(f".tmp-{out.name}")
    pq.write_to_dataset(table, tmp, partition_cols=[BUCKET_COL])
    tmp.rename(out)
    return out


def read_shard(folder: str | Path, rank: int, world_size: int) -> pd.DataFrame:
    """The rows of the series of rank ``rank`` of ``world_size`` in a :func:`write_sharded` dataset:
    buckets ``b`` with ``b % world_size == rank``. Only those partitions' files are read, so each rank
    holds only its share; every series is read by exactly one rank."""
    import pyarrow.dataset as ds

    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    data = ds.dataset(Path(folder), format="parquet", partitioning="hive")
    mine = [f for f in data.files if int(Path(f).parent.name.split("=", 1)[1]) % world_size == rank]
    if not mine:
        return data.schema.empty_table().to_pandas().drop(columns=[BUCKET_COL], errors="ignore")
    part = ds.dataset(
        mine, format="parquet", schema=data.schema.remove(data.schema.get_field_index(BUCKET_COL))
    )
    return part.to_table().to_pandas()
