"""Model files: one ``.safetensors`` file holding the tensors plus, in its metadata, a JSON ``"grukit"``
entry with the model's class, its config (every constructor argument), the task name and the grukit version.

``load`` rebuilds the model from the file alone and never unpickles anything. Any grukit model class that
has a ``config`` dataclass property and a ``from_config(config)`` classmethod can be saved.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ._version import __version__
from .errors import UserInputError


def _class_path(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def save(
    model: nn.Module,
    path: str | os.PathLike,
    task: str | None = None,
    dtype: torch.dtype | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically (a temporary file renamed into place).

    ``dtype`` (e.g. torch.float16) stores floating tensors smaller; ``load`` casts them back to the
    model's own dtype. ``extra`` is JSON-serializable data stored beside the config (e.g. a vocabulary).
    """
    from safetensors.torch import save_file

    if not hasattr(model, "config") or not dataclasses.is_dataclass(model.config):
        raise TypeError(
            f"grukit.save expected a grukit model with a config dataclass, got {type(model).__name__}"
        )
    module = type(model).__module__
    if not module.startswith("grukit."):
        raise TypeError(
            f"grukit.save saves grukit models only, got a {module}.{type(model).__qualname__}"
        )
    header = {
        "class": _class_path(model),
        "config": dataclasses.asdict(model.config),
        "task": task,
        "grukit_version": __version__,
        "stored_dtype": None if dtype is None else str(dtype).replace("torch.", ""),
    }
    if extra:
        header["extra"] = extra
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous().clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"grukit": json.dumps(header)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_header(path: str | os.PathLike) -> dict:
    """The ``"grukit"`` metadata entry of a model file, without loading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise UserInputError(f"{path} is not a readable safetensors file ({e})") from None
    if "grukit" not in meta:
        raise UserInputError(
            f"{path} is a safetensors file without grukit metadata; was it written by grukit.save?"
        )
    try:
        header = json.loads(meta["grukit"])
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path} has corrupt grukit metadata ({e})") from None
    if (
        not isinstance(header, dict)
        or not isinstance(header.get("config"), dict)
        or not isinstance(header.get("class"), str)
    ):
        raise UserInputError(
            f'{path} has corrupt grukit metadata: expected a JSON object with a "class" string '
            f'and a "config" object, got {str(header)[:120]}'
        )
    return header


def _import_class(spec: str):
    module, _, qualname = spec.partition(":")
    if not module.startswith("grukit.") or not qualname:
        raise UserInputError(f"model file names class {spec!r}, which is not a grukit model class")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise UserInputError(
            f"model file names class {spec!r}, which this grukit version does not have"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module) and hasattr(obj, "from_config")):
        raise UserInputError(f"model file names {spec!r}, which is not a grukit model class")
    return obj


def load(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", return_header: bool = False
):
    """Rebuild the model stored in ``path`` by :func:`save` (in eval mode); tensors that do not match the
    config are refused with a message naming them."""
    from safetensors.torch import load_file

    header = read_header(path)
    cls = _import_class(header.get("class", ""))
    try:
        model = cls.from_config(header["config"])
    except (TypeError, ValueError) as e:
        raise UserInputError(
            f"{path}: the stored config does not build a {cls.__name__} ({e})"
        ) from None
    tensors = load_file(str(path), device="cpu")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise UserInputError(
            f"{path}: tensors do not match the stored config of {cls.__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for k, ref in expected.items():
        if tuple(tensors[k].shape) != tuple(ref.shape):
            raise UserInputError(
                f"{path}: tensor {k!r} has shape {tuple(tensors[k].shape)}, but the stored config "
                f"of {cls.__name__} needs {tuple(ref.shape)}"
            )
        if tensors[k].is_floating_point() != ref.is_floating_point():
            raise UserInputError(
                f"{path}: tensor {k!r} has dtype {tensors[k].dtype}, but the stored config of "
                f"{cls.__name__} needs {ref.dtype}"
            )
        tensors[k] = tensors[k].to(ref.dtype)
    model.load_state_dict(tensors)
    model = model.to(map_location).eval()
    return (model, header) if return_header else model
