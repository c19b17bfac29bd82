"""``grukit convert SRC DST``: move GRU weights between torch (.pt state_dict), Keras (.keras), ONNX (.onnx)
and grukit model files (.safetensors), then prove the conversion by running both ends in their own library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import UserInputError

FORMATS = {
    ".pt": "torch",
    ".pth": "torch",
    ".keras": "keras",
    ".onnx": "onnx",
    ".safetensors": "safetensors",
}
TOL = 1e-5  # fp32 outputs, docs/conventions.md


def _format(path: Path, flag: str | None, which: str) -> str:
    if flag:
        if flag not in set(FORMATS.values()):
            raise UserInputError(
                f"--{which} must be one of {sorted(set(FORMATS.values()))}, got {flag!r}"
            )
        return flag
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(
            f"cannot tell the format of {which.upper() if which == 'from' else 'DST'} {path} from "
            f"its extension {path.suffix!r}; use one of {sorted(FORMATS)} or --{which}"
        )
    return fmt


# ------------------------------------------------------------------------------------------------- read
def _read_torch(
    path: Path, prefix: str | None, reset_before: bool, notes: list[str]
) -> tuple[Any, Any]:
    import torch

    from ..interop.torch import from_torch

    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is an empty file, not a torch state_dict")
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:120]
        raise UserInputError(
            f"{path} is not a torch state_dict readable with weights_only=True (it may hold a "
            f"pickled module: save module.state_dict() instead; {type(e).__name__}: {first})"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserInputError(f"{path} does not hold a state_dict (a dict of tensors)")
    if not sd:
        raise UserInputError(f"{path} holds an empty state_dict: no GRU to convert")
    if prefix is None:
        cands = sorted({k[: -len("weight_ih_l0")] for k in sd if k.endswith("weight_ih_l0")})
        if len(cands) != 1:
            raise UserInputError(
                f"{path}: expected exactly one GRU in the state_dict (keys ending in weight_ih_l0), "
                f"found {len(cands)}{': prefixes ' + str(cands) if cands else ''}"
                + (
                    "; use --prefix"
                    if cands
                    else f" among {len(sd)} tensors (e.g. {sorted(sd)[:3]})"
                )
            )
        prefix = cands[0]
    left_out = sorted(k for k in sd if not k.startswith(prefix))
    sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
        raise UserInputError(f"{path}: no weight_ih_l0/weight_hh_l0 under prefix {prefix!r}")
    if sd["weight_hh_l0"].dim() != 2 or sd["weight_ih_l0"].dim() != 2:
        raise UserInputError(
            f"{path}: {prefix}weight_ih_l0 / weight_hh_l0 have shapes {tuple(sd['weight_ih_l0'].shape)} / "
            f"{tuple(sd['weight_hh_l0'].shape)}; a GRU's are (3H, I) and (3H, H)"
        )
    if left_out:
        notes.append(
            f"left out: {len(left_out)} tensors outside prefix {prefix!r} "
            f"({', '.join(left_out[:4])}{', ...' if len(left_out) > 4 else ''})"
        )
    H, I = sd["weight_hh_l0"].shape[1], sd["weight_ih_l0"].shape[1]
    L = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in sd if k.startswith("weight_ih_l"))
    bi = "weight_ih_l0_reverse" in sd
    mod = torch.nn.GRU(
        I, H, L, bias="bias_ih_l0" in sd, bidirectional=bi, dtype=sd["weight_ih_l0"].dtype
    )
    try:
        mod.load_state_dict(sd)
    except RuntimeError as e:
        raise UserInputError(
            f"{path}: the tensors do not form a torch.nn.GRU({I}, {H}, num_layers={L}, "
            f"bidirectional={bi}): {str(e).splitlines()[0]} ..."
        ) from None
    if reset_before:  # a grukit reset_after=False state_dict: same keys, no torch equivalent to run
        import grukit

        model = grukit.GRU(
            I,
            H,
            L,
            bias="bias_ih_l0" in sd,
            bidirectional=bi,
            reset_after=False,
            dtype=sd["weight_ih_l0"].dtype,
        )
        try:
            model.load_state_dict(sd)
        except RuntimeError as e:
            raise UserInputError(f"{path}: {str(e).splitlines()[0]}") from None
        return model, None
    return from_torch(mod), mod


def _refuse_chain(path: Path, model: Any) -> UserInputError:
    return UserInputError(
        f"{path} computes {model.source or 'a GRU stack'} (imported as grukit.interop.GRUChain), which is "
        f"not a plain GRU stack; convert writes plain stacks only (use grukit.from_keras / from_onnx in "
        f"Python to run it)"
    )


def _from_model_file(path: Path, gru_only: bool, notes: list[str]) -> Any:
    """The grukit.GRU of a model file: the file's own model, or with --gru-only the one GRU inside it."""
    import grukit

    from ..interop.chain import GRUChain

    model = grukit.load(path)
    if isinstance(model, grukit.GRU):
        return model
    name = f"{type(model).__module__}.{type(model).__qualname__}"
    if isinstance(model, GRUChain):
        raise _refuse_chain(path, model)
    if isinstance(model, (grukit.GRUCell, grukit.MinGRU)):
        raise UserInputError(
            f"{path} holds a {name}; convert handles grukit.GRU models (torch.nn.GRU, Keras and ONNX GRU "
            f"layers have no minGRU, and a single cell has no sequence to check)"
        )
    grus = [(n, m) for n, m in model.named_modules() if isinstance(m, grukit.GRU)]
    if not gru_only:
        raise UserInputError(
            f"{path} holds a {name}, not a plain GRU/GRUCell/MinGRU; converting it would drop everything "
            f"but its GRU. Pass --gru-only to export its {len(grus)} grukit.GRU module(s) alone"
        )
    if len(grus) != 1:
        raise UserInputError(
            f"{path} holds a {name} with {len(grus)} grukit.GRU modules; --gru-only needs exactly one"
        )
    gname, gru = grus[0]
    mine = {id(p) for p in gru.parameters()}
    left: dict[str, int] = {}
    for n, p in model.named_parameters():
        if id(p) not in mine:
            left[n.rsplit(".", 1)[0]] = left.get(n.rsplit(".", 1)[0], 0) + p.numel()
    kept = sum(p.numel() for p in gru.parameters())
    total = sum(p.numel() for p in model.parameters())
    dropped = ", ".join(f"{n} ({k} parameters)" for n, k in left.items()) or "no parameters"
    notes.append(
        f"--gru-only: exporting {type(model).__name__}.{gname} ({kept} of {total} parameters); left out: "
        f"{dropped}"
    )
    return gru


def _read(
    fmt: str, path: Path, prefix: str | None, reset_before: bool, gru_only: bool, notes: list[str]
) -> tuple[Any, Any]:
    """(grukit.GRU, the source in its own library or None)."""
    import grukit

    from ..interop.chain import GRUChain

    if not path.is_file():
        raise UserInputError(f"SRC not found: {path}")
    if fmt == "torch":
        return _read_torch(path, prefix, reset_before, notes)
    if fmt == "safetensors":
        return _from_model_file(path, gru_only, notes), None
    if fmt == "keras":
        from ..interop.keras import _keras

        keras = _keras()
        try:
            kmodel = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except Exception as e:
            raise UserInputError(
                f"{path} is not a loadable Keras model file ({type(e).__name__}: {e})"
            ) from None
        try:
            model = grukit.from_keras(kmodel)
        except (TypeError, ValueError) as e:
            raise UserInputError(f"{path}: {e}") from None
        if isinstance(model, GRUChain):
            raise _refuse_chain(path, model)
        return model, kmodel
    model = grukit.from_onnx(path)
    if isinstance(model, GRUChain):
        raise _refuse_chain(path, model)
    return model, path


# ------------------------------------------------------------------------------------------------ write
def _atomic(path: Path, write: Any) -> None:
    from .._io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(
        path
    ) as tmp:  # beside the final file, renamed into place; a full disk names it
        write(tmp)


def _write(fmt: str, model: Any, path: Path) -> None:
    import torch

    import grukit

    if fmt == "torch":
        if not model.reset_after:
            raise UserInputError(
                "cannot write a .pt torch.nn.GRU state_dict: the model has reset_after=False and "
                "torch.nn.GRU only has reset_after=True; write .safetensors, .keras or .onnx"
            )
        sd = grukit.to_torch(model).state_dict()
        _atomic(path, lambda p: torch.save(sd, str(p)))
    elif fmt == "safetensors":
        grukit.save(model, path)
    elif fmt == "keras":
        kmodel = grukit.to_keras(model)
        _atomic(path, lambda p: kmodel.save(str(p)))
    else:
        grukit.export_onnx(model, path)


# ------------------------------------------------------------------------------------------------ check
def _ours(model: Any, x: Any) -> tuple[Any, Any]:
    """grukit's (output (B, T, D·H), h_n (L·D, B, H)) as float64 NumPy for batch-first x (B, T, I) NumPy."""
    import torch

    xt = torch.from_numpy(x).to(model.weight_ih_l0.dtype)
    with torch.no_grad():
        out, h_n = model(xt if model.batch_first else xt.transpose(0, 1))
    out = out if model.batch_first else out.transpose(0, 1)
    return out.double().numpy(), h_n.double().numpy()


def _run_native(fmt: str, handle: Any, x: Any, model: Any) -> tuple[Any, Any]:
    """Run SRC/DST in its own library on x (B, T, I) fp32 NumPy → (its output, grukit's output to compare),
    or (None, None) where the file cannot be run with that input."""
    import numpy as np
    import torch

    if fmt == "torch":
        mod = handle if isinstance(handle, torch.nn.GRU) else None
        if mod is None:
            mod = torch.nn.GRU(
                model.input_size,
                model.hidden_size,
                model.num_layers,
                model.bias,
                bidirectional=model.bidirectional,
                dtype=model.weight_ih_l0.dtype,
            )
            mod.load_state_dict(torch.load(str(handle), map_location="cpu", weights_only=True))
        with torch.no_grad():
            y = mod(torch.from_numpy(x).to(model.weight_ih_l0.dtype).transpose(0, 1))[0].transpose(
                0, 1
            )
        return y.double().numpy(), _ours(model, x)[0]
    if fmt == "safetensors":
        import grukit

        other = grukit.load(handle)
        return (
            (_ours(other, x)[0], _ours(model, x)[0])
            if isinstance(other, grukit.GRU)
            else (None, None)
        )
    if fmt == "keras":
        from ..interop.keras import _keras

        keras = _keras()
        kmodel = (
            handle
            if not isinstance(handle, (str, Path))
            else keras.saving.load_model(str(handle), compile=False, safe_mode=True)
        )
        res = kmodel(x)
        if isinstance(res, (list, tuple)):  # return_state: [output, states...]
            res = res[0]
        y = np.asarray(keras.ops.convert_to_numpy(res), dtype=np.float64)
        out, h_n = _ours(model, x)
        if y.ndim == 2:  # return_sequences=False: the top layer's last state per direction
            D = model.num_directions
            out = np.concatenate([h_n[-D + d] for d in range(D)], -1)
        return y, out
    import onnxruntime as ort

    sess = ort.InferenceSession(str(handle), providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    if len(ins) != 1 or len(ins[0].shape) != 3:
        return None, None
    dims = ins[0].shape
    if all(isinstance(d, int) for d in dims):  # a foreign file exported with fixed shapes: use them
        B, T = (dims[0], dims[1]) if model.batch_first else (dims[1], dims[0])
        x = np.random.default_rng(0).standard_normal((B, T, model.input_size)).astype(np.float32)
    feed = x if model.batch_first else x.transpose(1, 0, 2).copy()
    try:
        y = np.asarray(sess.run(None, {ins[0].name: feed})[0], dtype=np.float64)
    except Exception:  # a foreign graph with another input layout: no check
        return None, None
    if not model.batch_first and y.ndim == 3:
        y = y.transpose(1, 0, 2)
    out = _ours(model, x)[0]
    return (y, out) if y.shape == out.shape else (None, None)


def register(app: typer.Typer) -> None:
    """Add the top-level ``grukit convert SRC DST`` command to ``app``."""

    @app.command("convert")
    def convert(
        src: Path = typer.Argument(
            ...,
            help="Source file: .pt (torch.nn.GRU state_dict), .keras, .onnx or "
            ".safetensors (grukit model file).",
        ),
        dst: Path = typer.Argument(
            ..., help="Destination file; its format comes from its extension."
        ),
        from_: str = typer.Option(
            None,
            "--from",
            help="Source format if the extension does not say: torch, keras, onnx, safetensors.",
        ),
        to: str = typer.Option(
            None, "--to", help="Destination format if the extension does not say."
        ),
        prefix: str = typer.Option(
            None,
            "--prefix",
            help="For .pt sources: the key prefix of the GRU's tensors "
            "(e.g. 'encoder.gru.'); found automatically if unique.",
        ),
        reset_before: bool = typer.Option(
            False,
            "--reset-before",
            help="For .pt sources: the state_dict is a "
            "grukit GRU with reset_after=False (same keys as torch.nn.GRU, other math).",
        ),
        batch: int = typer.Option(3, help="Batch size of the random self-check input."),
        steps: int = typer.Option(7, help="Time steps of the random self-check input."),
        seed: int = typer.Option(0, help="Seed of the random self-check input."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace DST if it exists."),
        gru_only: bool = typer.Option(
            False,
            "--gru-only",
            help="For .safetensors task models (e.g. music-jsb): export the one GRU inside and leave "
            "out the rest (embeddings, heads); the command prints what is left out.",
        ),
    ) -> None:
        """Convert GRU weights between torch, Keras, ONNX and grukit files, then check both ends numerically."""
        import numpy as np
        from rich.console import Console
        from rich.table import Table

        sfmt, dfmt = _format(src, from_, "from"), _format(dst, to, "to")
        if not src.is_file():
            raise UserInputError(f"SRC not found: {src}")
        if not dst.parent.is_dir():
            raise UserInputError(
                f"the folder of DST {dst} does not exist ({dst.parent}); create it first"
            )
        if dst.exists() and not overwrite:
            raise UserInputError(f"DST {dst} exists; pass --overwrite to replace it")
        if src.resolve() == dst.resolve():
            raise UserInputError("SRC and DST are the same file")
        if batch < 1 or steps < 1:
            raise UserInputError(f"--batch and --steps must be ≥ 1, got {batch} and {steps}")
        if reset_before and sfmt != "torch":
            raise UserInputError(
                "--reset-before applies to .pt sources only; other formats record the placement"
            )
        if gru_only and sfmt != "safetensors":
            raise UserInputError(
                "--gru-only applies to .safetensors model files only; a .pt state_dict is read by its "
                "--prefix"
            )
        notes: list[str] = []
        model, handle = _read(sfmt, src, prefix, reset_before, gru_only, notes)
        model = model.eval()
        _write(dfmt, model, dst)

        x = (
            np.random.default_rng(seed)
            .standard_normal((batch, steps, model.input_size))
            .astype(np.float32)
        )
        rows, worst = [], 0.0
        for side, fmt, h in (("SRC", sfmt, handle), ("DST", dfmt, dst)):
            if h is None:
                rows.append((side, fmt, "—", "no independent library to run (grukit's own format)"))
                continue
            y, ours = _run_native(fmt, h, x, model)
            if y is None:
                rows.append((side, fmt, "—", "graph has another interface; not run"))
                continue
            if y.shape != ours.shape:
                err = float("inf")
            else:
                err = float(np.abs(y - ours).max())
            worst = max(worst, err)
            rows.append((side, fmt, f"{err:.2e}", "ok" if err <= TOL else f"FAILED (> {TOL:g})"))
        console = Console()
        D = model.num_directions
        console.print(f"[bold]{src}[/] ({sfmt}) → [bold]{dst}[/] ({dfmt})")
        console.print(
            f"GRU input_size={model.input_size} hidden_size={model.hidden_size} "
            f"num_layers={model.num_layers} bidirectional={D == 2} reset_after={model.reset_after} "
            f"bias={model.bias} parameters={sum(p.numel() for p in model.parameters())}"
        )
        table = Table(
            title="self-check: each file run in its own library vs grukit",
            caption=f"random input B={batch}, T={steps}, seed={seed}; tolerance {TOL:g}",
        )
        for col in ("file", "format", "max abs diff", "result"):
            table.add_column(col)
        for r in rows:
            table.add_row(*r)
        console.print(table)
        for note in notes:
            console.print(note, markup=False)
        if worst > TOL:
            dst.unlink(missing_ok=True)
            raise RuntimeError(
                f"self-check failed (max abs diff {worst:.2e} > {TOL:g}); {dst} was removed"
            )
