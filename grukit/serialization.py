"""Model files: one ``.safetensors`` file holding the tensors plus, in its metadata, a JSON ``"grukit"``
entry with the model's class, its config (every constructor argument), the task name and the grukit version.

The header also holds ``"tensors_sha256"``, a checksum of every stored tensor (names, dtypes, shapes and
bytes; :func:`tensor_checksum`); ``load`` verifies it when present, so a flipped bit is refused rather than
changing a model's outputs silently (files without one, such as those written by older grukit versions,
still load). ``load`` also refuses parameters that hold NaN or infinity.

``load`` rebuilds the model from the file alone and never unpickles anything. Any grukit model class that
has a ``config`` dataclass property and a ``from_config(config)`` classmethod can be saved. The format is the
model file of docs/conventions.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, overload

import torch
from torch import nn

from ._io import atomic_path
from ._version import __version__
from .errors import UserInputError


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors of a model file, in name order: each name, dtype, shape and raw bytes.

    Examples:
        >>> import torch
        >>> a = tensor_checksum({"w": torch.zeros(2)})
        >>> a == tensor_checksum({"w": torch.zeros(2)}), a == tensor_checksum({"w": torch.ones(2)})
        (True, False)
    """
    import hashlib

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{t.dtype!s}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _class_path(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}:{cls.__qualname__}"


def save(
    model: nn.Module,
    path: str | os.PathLike[str],
    task: str | None = None,
    dtype: torch.dtype | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a grukit model to one ``.safetensors`` file, atomically.

    The file holds the model's ``state_dict`` tensors and, in its metadata, a JSON ``"grukit"`` entry with
    the model's class, its config dataclass (every constructor argument), ``task`` and the grukit version.
    It is written to a temporary file in the same folder and renamed into place, so an interrupted save
    never leaves a partial file at ``path``. Nothing is pickled.

    Args:
        model: a grukit model: a module of a ``grukit.*`` package with a ``config`` dataclass and a
            ``from_config`` classmethod (``grukit.GRU``, ``grukit.GRUCell``, ``grukit.MinGRU``, a recipe's
            model).
        path: the file to write; missing parent folders are created, an existing file is replaced.
        task: the task name recorded in the header (e.g. ``"music"``), or None.
        dtype: store floating tensors in this dtype (e.g. ``torch.float16`` to halve the file);
            :func:`load` casts them back to the model's own dtype. None keeps each tensor's dtype.
        extra: JSON-serializable data stored beside the config (e.g. a vocabulary).

    Returns:
        The path written, as a ``Path``.

    Raises:
        TypeError: ``model`` has no config dataclass, or is not a grukit model.

    Examples:
        >>> import tempfile, torch, grukit
        >>> gru = grukit.GRU(8, 16, num_layers=2)
        >>> path = grukit.save(gru, tempfile.mkdtemp() + "/gru.safetensors")
        >>> path.name
        'gru.safetensors'
        >>> grukit.load(path).config == gru.config
        True
    """
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config) or isinstance(config, type):
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
        "config": dataclasses.asdict(config),
        "task": task,
        "grukit_version": __version__,
        "stored_dtype": None if dtype is None else str(dtype).replace("torch.", ""),
    }
    if extra:
        header["extra"] = extra
    tensors: dict[str, torch.Tensor] = {}
    state = model.state_dict()
    for k, v in state.items():
        v = v.detach().to("cpu")
        w = state.get(k[: -len("_scale")]) if k.endswith("_scale") else None
        if w is not None and w.dtype == torch.int8:  # an int8 weight's scale stays float32
            tensors[k] = v.float().contiguous().clone()
            continue
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous().clone()
    header["tensors_sha256"] = tensor_checksum(tensors)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"grukit": json.dumps(header)})
    return path


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``"grukit"`` metadata entry of a model file, read without loading its tensors.

    Args:
        path: a model file written by :func:`save`.

    Returns:
        The header: ``{"class", "config", "task", "grukit_version", "stored_dtype", "tensors_sha256"}``
        and, when the model was saved with ``extra``, ``"extra"`` (files of older versions lack
        ``"tensors_sha256"``).

    Raises:
        UserInputError: the file is missing, is not a safetensors file, or has no (or corrupt) grukit
            metadata.

    Examples:
        >>> import tempfile, grukit
        >>> from grukit.serialization import read_header
        >>> path = grukit.save(
        ...     grukit.GRU(8, 16), tempfile.mkdtemp() + "/gru.safetensors", task="demo"
        ... )
        >>> header = read_header(path)
        >>> header["class"], header["task"], header["config"]["hidden_size"]
        ('grukit.nn.gru:GRU', 'demo', 16)
    """
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


def _import_class(spec: str) -> type[nn.Module]:
    module, _, qualname = spec.partition(":")
    if not module.startswith("grukit.") or not qualname:
        raise UserInputError(f"model file names class {spec!r}, which is not a grukit model class")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise UserInputError(
            f"model file names class {spec!r}, which this grukit version does not have"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module) and hasattr(obj, "from_config")):
        raise UserInputError(f"model file names {spec!r}, which is not a grukit model class")
    return obj


def read_tensor_specs(path: str | os.PathLike[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of every tensor in a safetensors file, read from its header alone (no tensor
    data is read or allocated)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            out = {}
            for k in f.keys():
                sl = f.get_slice(k)
                out[k] = (str(sl.get_dtype()), tuple(int(d) for d in sl.get_shape()))
    except Exception as e:
        raise UserInputError(f"{path} is not a readable safetensors file ({e})") from None
    return out


class _TooBig(Exception):
    """Raised by the registration hooks when a config asks for more than the file holds."""


@contextlib.contextmanager
def _budget(max_params: int, max_numel: int) -> Iterator[None]:
    """While active, refuse (raise :class:`_TooBig`) once the modules being built register more parameters
    than ``max_params`` or more parameter elements than ``max_numel``: a config claiming a huge model stops
    after a few layers instead of building a million of them."""
    from torch.nn.modules.module import register_module_parameter_registration_hook

    seen = [0, 0]

    def hook(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is None:
            return None
        seen[0] += 1
        seen[1] += param.numel()
        if seen[0] > max_params or seen[1] > max_numel:
            raise _TooBig(f"{seen[0]} parameter tensors, {seen[1]} elements so far")
        return None

    handle = register_module_parameter_registration_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _int8_scale_keys(specs: dict[str, tuple[str, tuple[int, ...]]]) -> set[str]:
    """The ``<weight>_scale`` entries of int8 weights (``grukit.quantize(model, "int8")``): a file holds the
    int8 weight and its per-row scale; :func:`load` gives a float32 model their product."""
    return {
        k + "_scale"
        for k, (dtype, _) in specs.items()
        if dtype in ("I8", "int8") and specs.get(k + "_scale", ("",))[0] in ("F32", "float32")
    }


def _check_against_header(
    path: str | os.PathLike[str],
    cls: type[nn.Module],
    config: dict[str, Any],
    specs: dict[str, tuple[str, tuple[int, ...]]],
) -> None:
    """Build ``cls`` from ``config`` on the meta device (shapes only, no memory), under a budget of the
    file's own tensor count and size, and compare its state_dict with the file's tensor header."""
    n_stored = len(specs)
    numel_stored = sum(math.prod(shape) for _, shape in specs.values())
    what = (
        f"{path}: the stored config asks for a bigger {cls.__name__} than the file's tensors hold "
        f"({n_stored} tensors, {numel_stored} numbers)"
    )
    try:
        # Generous margins, so that a near miss gets the per-tensor message below; a config claiming a model
        # many times the file's size stops here (on the meta device the budget only bounds Python objects).
        budget = _budget(n_stored + 64, max(4 * numel_stored, numel_stored + 2**24))
        with budget, torch.device("meta"):
            shadow: nn.Module = getattr(cls, "from_config")(config)  # noqa: B009
    except _TooBig as e:
        raise UserInputError(f"{what}; refused before allocating it ({e})") from None
    except (TypeError, ValueError) as e:
        raise UserInputError(
            f"{path}: the stored config does not build a {cls.__name__} ({e})"
        ) from None
    expected = shadow.state_dict()
    scales = _int8_scale_keys(specs)  # int8 weights and their scales stand for float weights
    specs = {
        k: (("F32" if k + "_scale" in scales else dt), shape)
        for k, (dt, shape) in specs.items()
        if k not in scales
    }
    missing = sorted(set(expected) - set(specs))
    unexpected = sorted(set(specs) - set(expected))
    if missing or unexpected:
        raise UserInputError(
            f"{path}: tensors do not match the stored config of {cls.__name__}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for k, ref in expected.items():
        dtype, shape = specs[k]
        if shape != tuple(ref.shape):
            raise UserInputError(
                f"{path}: tensor {k!r} has shape {shape}, but the stored config "
                f"of {cls.__name__} needs {tuple(ref.shape)}"
            )
        name = _ST_DTYPES.get(dtype, dtype)
        if name.startswith(("float", "bfloat")) != ref.is_floating_point():
            raise UserInputError(
                f"{path}: tensor {k!r} has dtype torch.{name}, but the stored config of "
                f"{cls.__name__} needs {ref.dtype}"
            )


#: safetensors' dtype names → torch's (for messages; the float ones decide the float-vs-integer check).
_ST_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@overload
def load(
    path: str | os.PathLike[str],
    map_location: str | torch.device = ...,
    return_header: Literal[False] = ...,
) -> nn.Module: ...


@overload
def load(
    path: str | os.PathLike[str],
    map_location: str | torch.device = ...,
    *,
    return_header: Literal[True],
) -> tuple[nn.Module, dict[str, Any]]: ...


def load(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    return_header: bool = False,
) -> nn.Module | tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored by :func:`save` from the file alone, in eval mode.

    The class named in the header is built from the stored config, then the file's tensors are loaded into
    it, cast to the model's own dtypes. Only classes of grukit's own packages are built, and nothing is
    unpickled.

    Args:
        path: a model file written by :func:`save`.
        map_location: the device to move the model to (default ``"cpu"``).
        return_header: also return the file's header (see :func:`read_header`).

    Returns:
        The model, or ``(model, header)`` with ``return_header=True``.

    Raises:
        UserInputError: the file is missing or unreadable, has no or corrupt grukit metadata, names a class
            that is not a grukit model, fails its stored tensor checksum, holds NaN or infinite
            parameters, or holds tensors that do not match its config (names, shapes, or
            floating vs integer dtypes); the message names what did not match. The config is checked
            against the tensor names, shapes and dtypes in the safetensors header *before* any module is
            built for real (the check builds it on the meta device, under a budget of the file's own
            tensor count and size), so a small file whose config claims a huge model costs no memory.

    Examples:
        >>> import tempfile, torch, grukit
        >>> gru = grukit.GRU(8, 16, batch_first=True)
        >>> path = grukit.save(gru, tempfile.mkdtemp() + "/gru.safetensors", dtype=torch.float16)
        >>> same = grukit.load(path)
        >>> type(same).__name__, same.training, same.weight_hh_l0.dtype
        ('GRU', False, torch.float32)
        >>> x = torch.randn(2, 5, 8)  # (B, T, I)
        >>> same(x)[0].shape  # (B, T, H)
        torch.Size([2, 5, 16])
    """
    from safetensors.torch import load_file

    header = read_header(path)
    cls = _import_class(header.get("class", ""))
    # Shapes first, from the file's header and a meta-device model: nothing is allocated for a config
    # that the tensors do not back (a few-KB file claiming hidden_size 2**20 is refused in milliseconds).
    _check_against_header(path, cls, header["config"], read_tensor_specs(path))
    try:
        model: nn.Module = getattr(cls, "from_config")(header["config"])  # noqa: B009
    except (TypeError, ValueError) as e:
        raise UserInputError(
            f"{path}: the stored config does not build a {cls.__name__} ({e})"
        ) from None
    # The names, shapes and float-vs-integer kinds were checked against the header above (the same config
    # builds the same state_dict); what is left is the cast to the model's own dtypes.
    tensors = load_file(str(path), device="cpu")
    stored_sum = header.get("tensors_sha256")
    if stored_sum is not None and tensor_checksum(tensors) != stored_sum:
        raise UserInputError(
            f"{path}: the tensors do not match the checksum stored in the file (it was changed or "
            f"damaged after it was written); re-train or re-download the model"
        )
    for s in _int8_scale_keys(
        {k: (str(t.dtype).replace("torch.", ""), ()) for k, t in tensors.items()}
    ):
        w = s[: -len("_scale")]  # int8 weights (grukit.quantize): the float32 model gets q · scale
        tensors[w] = tensors[w].float() * tensors.pop(s).float()[:, None]
    params = {name for name, _ in model.named_parameters()}
    for k in sorted(params & set(tensors)):
        t = tensors[k]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            what = "NaN" if bool(torch.isnan(t).any()) else "infinite values"
            raise UserInputError(
                f"{path}: parameter {k!r} holds {what}; the model cannot give usable outputs "
                f"(was it saved from a diverged training run?)"
            )
    for k, ref in model.state_dict().items():
        tensors[k] = tensors[k].to(ref.dtype)
    model.load_state_dict(tensors)
    model = model.to(map_location).eval()
    return (model, header) if return_header else model
