"""``grukit convert SRC DST``: move GRU weights between torch (.pt state_dict), Keras (.keras), ONNX (.onnx)
and grukit model files (.safetensors), then prove the conversion by running both ends in their own library.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from ..errors import UserInputError

FORMATS = {
    ".pt": "torch",
    ".pth": "torch",
    ".keras": "keras",
    ".onnx": "onnx",
    ".safetensors": "safetensors",
}
TOL = 1e-5  # fp32 outputs, CONVENTIONS.md


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
def _read_torch(path: Path, prefix: str | None, reset_before: bool = False):
    import torch

    from ..interop.torch import from_torch

    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserInputError(
            f"{path} is not a torch state_dict readable with weights_only=True (it may hold a "
            f"pickled module: save module.state_dict() instead; {type(e).__name__}: "
            f"{str(e).splitlines()[0][:120]})"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserInputError(f"{path} does not hold a state_dict (a dict of tensors)")
    if prefix is None:
        cands = sorted({k[: -len("weight_ih_l0")] for k in sd if k.endswith("weight_ih_l0")})
        if len(cands) != 1:
            raise UserInputError(
                f"{path}: expected exactly one GRU in the state_dict (keys ending in weight_ih_l0), "
                f"found {len(cands)}{': prefixes ' + str(cands) if cands else ''}; use --prefix"
            )
        prefix = cands[0]
    sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
        raise UserInputError(f"{path}: no weight_ih_l0/weight_hh_l0 under prefix {prefix!r}")
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
        model.load_state_dict(sd)
        return model, None
    return from_torch(mod), mod


def _read(fmt: str, path: Path, prefix: str | None, reset_before: bool = False):
    """(grukit.GRU, the source in its own library or None)."""
    import grukit

    if not path.is_file():
        raise UserInputError(f"SRC not found: {path}")
    if fmt == "torch":
        return _read_torch(path, prefix, reset_before)
    if fmt == "safetensors":
        model = grukit.load(path)
        if not isinstance(model, grukit.GRU):
            grus = [m for m in model.modules() if isinstance(m, grukit.GRU)]
            if len(grus) != 1:
                raise UserInputError(
                    f"{path} holds a {type(model).__name__} with {len(grus)} grukit.GRU modules; "
                    f"convert needs exactly one"
                )
            model = grus[0]
        return model, None
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
            return grukit.from_keras(kmodel), kmodel
        except (TypeError, ValueError) as e:
            raise UserInputError(f"{path}: {e}") from None
    return grukit.from_onnx(path), path


# ------------------------------------------------------------------------------------------------ write
def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        from .._io import default_mode

        os.chmod(tmp, default_mode())  # mkstemp makes 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(fmt: str, model, path: Path) -> None:
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
def _ours(model, x):
    """grukit's (output (B, T, D·H), h_n (L·D, B, H)) as float64 NumPy for batch-first x (B, T, I) NumPy."""
    import torch

    xt = torch.from_numpy(x).to(model.weight_ih_l0.dtype)
    with torch.no_grad():
        out, h_n = model(xt if model.batch_first else xt.transpose(0, 1))
    out = out if model.batch_first else out.transpose(0, 1)
    return out.double().numpy(), h_n.double().numpy()


def _run_native(fmt: str, handle, x, model):
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
        layers = [l for l in kmodel.layers if not isinstance(l, keras.layers.InputLayer)]
        y = np.asarray(keras.ops.convert_to_numpy(kmodel(x)), dtype=np.float64)
        if len(layers) == 1 and isinstance(layers[0], keras.layers.GRU) and layers[0].go_backwards:
            x = x[
                :, ::-1
            ].copy()  # Keras reads it reversed; grukit gets the reversed input (see from_keras)
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
    ) -> None:
        """Convert GRU weights between torch, Keras, ONNX and grukit files, then check both ends numerically."""
        import numpy as np
        from rich.console import Console
        from rich.table import Table

        sfmt, dfmt = _format(src, from_, "from"), _format(dst, to, "to")
        if not src.is_file():
            raise UserInputError(f"SRC not found: {src}")
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
        model, handle = _read(sfmt, src, prefix, reset_before)
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
        if worst > TOL:
            dst.unlink(missing_ok=True)
            raise RuntimeError(
                f"self-check failed (max abs diff {worst:.2e} > {TOL:g}); {dst} was removed"
            )
