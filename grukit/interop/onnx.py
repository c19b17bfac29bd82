"""grukit.GRU ↔ ONNX: a file made of standard ONNX ``GRU`` operators, one per layer, and loading them back.

The ONNX GRU stacks gates z, r, h with W (D, 3H, I), R (D, 3H, H), B (D, 6H) = [Wb, Rb]; its
``linear_before_reset=1`` is grukit's ``reset_after=True`` and ``0`` is ``reset_after=False`` (ONNX then
computes tanh(W_h x + W_bh + R_h (r ⊙ h) + R_bh), the same equation). The exported graph:

    input (T, B, I) [or (B, T, I) if batch_first] ─ per layer: GRU → Y (T, D, B, H) → Transpose/Reshape
    → (T, B, D·H) ─ output;  the layers' Y_h concatenated → h_n (L·D, B, H)

with dynamic batch and time axes, optional inputs ``h0`` (L·D, B, H) and ``lengths`` (B,) int32 (the ONNX
``sequence_lens``: outputs past a sequence's end are zero and h_n is its last valid state, as in grukit).
The model's config is stored in the file's metadata (key ``"grukit"``) so ``from_onnx`` restores it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from ..errors import UserInputError
from ..nn import GRU
from ._layouts import check_plain, from_framework, layer_arrays, set_layer, to_framework

DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            "ONNX interop needs the onnx package (pip install 'grukit[interop]')"
        ) from e
    return onnx


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    initial_state: bool = False,
    lengths: bool = False,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> Path:
    """Write ``model`` (a grukit.GRU, or a torch.nn.GRU) to ``path`` as standard ONNX GRU operators (fp32).

    Graph inputs: ``input`` (T, B, I) — (B, T, I) if ``model.batch_first`` —, then ``h0`` (L·D, B, H) if
    ``initial_state``, then ``lengths`` (B,) int32 if ``lengths``. Outputs: ``output`` (T, B, D·H) (or
    batch-first) and ``h_n`` (L·D, B, H). Batch and time axes are dynamic. The file is checked with
    ``onnx.checker`` (``check=True``) and written atomically. Needs opset ≥ 14.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    if isinstance(model, nn.GRU):
        from .torch import from_torch

        model = from_torch(model)
    if not isinstance(model, GRU):
        raise TypeError(
            f"export_onnx expected a grukit.GRU or torch.nn.GRU, got {type(model).__name__}"
        )
    check_plain(model, "the ONNX GRU operator")
    if not isinstance(opset, int) or opset < 14:
        raise ValueError(
            f"export_onnx needs opset >= 14 (the GRU operator's current form), got {opset!r}"
        )
    I, H, L, D = model.input_size, model.hidden_size, model.num_layers, model.num_directions
    direction = "bidirectional" if D == 2 else "forward"
    f32 = TensorProto.FLOAT
    seq_axes = ["batch", "time"] if model.batch_first else ["time", "batch"]
    inputs = [helper.make_tensor_value_info("input", f32, seq_axes + [I])]
    if initial_state:
        inputs.append(helper.make_tensor_value_info("h0", f32, [L * D, "batch", H]))
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
    outputs = [
        helper.make_tensor_value_info("output", f32, seq_axes + [D * H]),
        helper.make_tensor_value_info("h_n", f32, [L * D, "batch", H]),
    ]
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    x = "input"
    if model.batch_first:
        nodes.append(helper.make_node("Transpose", [x], ["input_tm"], perm=[1, 0, 2]))
        x = "input_tm"
    const("reshape_tbx", np.array([0, 0, -1], dtype=np.int64))
    yh = []
    for k in range(L):
        Ws, Rs, Bs = [], [], []
        for d in range(D):
            w, r, b_ih, b_hh = to_framework(*layer_arrays(model, k, d), "onnx")
            Ws.append(w)
            Rs.append(r)
            if model.bias:
                Bs.append(np.concatenate([b_ih, b_hh]))
        gru_in = [
            x,
            const(f"W_l{k}", np.stack(Ws).astype(np.float32)),
            const(f"R_l{k}", np.stack(Rs).astype(np.float32)),
            const(f"B_l{k}", np.stack(Bs).astype(np.float32)) if model.bias else "",
            "lengths" if lengths else "",
            "",
        ]
        if initial_state:
            nodes.append(
                helper.make_node(
                    "Slice",
                    [
                        "h0",
                        const(f"h0_start_l{k}", np.array([k * D], dtype=np.int64)),
                        const(f"h0_end_l{k}", np.array([(k + 1) * D], dtype=np.int64)),
                        const(f"h0_axis_l{k}", np.array([0], dtype=np.int64)),
                    ],
                    [f"h0_l{k}"],
                )
            )
            gru_in[5] = f"h0_l{k}"
        while gru_in and gru_in[-1] == "":
            gru_in.pop()
        nodes.append(
            helper.make_node(
                "GRU",
                gru_in,
                [f"Y_l{k}", f"Yh_l{k}"],
                name=f"gru_l{k}",
                hidden_size=H,
                direction=direction,
                linear_before_reset=int(model.reset_after),
            )
        )
        # Y (T, D, B, H) → (T, B, D, H) → (T, B, D·H)
        nodes.append(helper.make_node("Transpose", [f"Y_l{k}"], [f"Yt_l{k}"], perm=[0, 2, 1, 3]))
        out = f"out_l{k}" if (k < L - 1 or model.batch_first) else "output"
        nodes.append(helper.make_node("Reshape", [f"Yt_l{k}", "reshape_tbx"], [out]))
        x = out
        yh.append(f"Yh_l{k}")
    if model.batch_first:
        nodes.append(helper.make_node("Transpose", [x], ["output"], perm=[1, 0, 2]))
    if L > 1:
        nodes.append(helper.make_node("Concat", yh, ["h_n"], axis=0))
    else:
        nodes.append(helper.make_node("Identity", yh, ["h_n"]))
    graph = helper.make_graph(nodes, "grukit_gru", inputs, outputs, inits)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="grukit"
    )
    from .._version import __version__

    cfg = dataclasses.asdict(model.config)
    helper.set_model_props(
        proto, {"grukit": json.dumps({"config": cfg, "grukit_version": __version__})}
    )
    if check:
        onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        from .._io import default_mode

        os.chmod(tmp, default_mode())  # mkstemp makes 0600; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list):
            v = [s.decode() if isinstance(s, bytes) else s for s in v]
        out[a.name] = v
    return out


def _fold(proto, name: str) -> np.ndarray:
    """Evaluate the part of the graph computing ``name`` from stored tensors only (onnx's reference runtime)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    stored = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input} - stored
    needed, seen, stack = set(), set(), [name]
    while stack:
        t = stack.pop()
        if not t or t in seen or t in stored:
            continue
        seen.add(t)
        if t in inputs or t not in producers:
            raise ValueError(f"it depends on the graph input {t!r}")
        node = producers[t]
        needed.add(id(node))
        stack.extend(node.input)
    nodes = [n for n in graph.node if id(n) in needed]
    sub = helper.make_graph(
        nodes,
        "fold",
        [],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)],
        list(graph.initializer),
    )
    model = helper.make_model(sub, opset_imports=list(proto.opset_import))
    return np.asarray(ReferenceEvaluator(model).run(None, {})[0])


def _tensor_resolver(proto):
    from onnx import helper, numpy_helper

    graph = proto.graph

    inits = {t.name: t for t in graph.initializer}
    consts = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = helper.get_attribute_value(a)

    def get(name: str, what: str) -> np.ndarray:
        t = inits.get(name, consts.get(name))
        if t is not None:
            return numpy_helper.to_array(t)
        try:  # computed from stored tensors (e.g. an export without constant folding): fold it here
            return _fold(proto, name)
        except Exception as e:
            raise UserInputError(
                f"the GRU operator's {what} ({name!r}) is computed in the graph and cannot be "
                f"evaluated from stored tensors alone ({e})"
            ) from None

    return get


def from_onnx(
    path: str | os.PathLike,
    nodes: list[int | str] | None = None,
    backend: str = "auto",
    batch_first: bool | None = None,
) -> GRU:
    """A grukit.GRU with the weights of the ONNX ``GRU`` operators in ``path`` (stacked in graph order).

    Works on files from :func:`export_onnx` (config restored from their metadata) and from other
    exporters (e.g. ``torch.onnx.export`` of a torch.nn.GRU); W, R and B may be stored or computed from
    stored tensors (evaluated with onnx's reference runtime), not from graph inputs.
    ``nodes`` picks GRU operators by index (among the GRU operators) or node name; by default all of them,
    which must form one stack (same hidden size, direction and reset placement; layer k's input size
    D·H). ``batch_first`` defaults to the stored config, else to the first operator's ``layout`` attribute
    (1 = batch-first). Initial states and sequence_lens inside the graph are inputs, not weights: not read.
    """
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise UserInputError(
            f"{path} is not a readable ONNX file ({type(e).__name__}: {e})"
        ) from None
    meta = {p.key: p.value for p in proto.metadata_props}
    stored = {}
    if "grukit" in meta:
        try:
            stored = json.loads(meta["grukit"]).get("config", {})
        except (json.JSONDecodeError, AttributeError):
            stored = {}
    grus = [n for n in proto.graph.node if n.op_type == "GRU" and n.domain in ("", "ai.onnx")]
    if not grus:
        ops = sorted({n.op_type for n in proto.graph.node})
        raise UserInputError(
            f"{path} has no ONNX GRU operator in its main graph (operators found: {ops[:12]})"
        )
    if nodes is not None:
        picked = []
        for sel in nodes:
            if isinstance(sel, int):
                if not -len(grus) <= sel < len(grus):
                    raise UserInputError(
                        f"{path} has {len(grus)} GRU operators; index {sel} is out of range"
                    )
                picked.append(grus[sel])
            else:
                match = [n for n in grus if n.name == sel]
                if not match:
                    raise UserInputError(
                        f"{path} has no GRU operator named {sel!r}; names: {[n.name for n in grus]}"
                    )
                picked.append(match[0])
        grus = picked
    get = _tensor_resolver(proto)
    layers = []
    for k, node in enumerate(grus):
        a = _attrs(node)
        where = f"{path}: GRU operator {k} ({node.name or 'unnamed'})"
        direction = a.get("direction", "forward")
        if direction not in ("forward", "bidirectional"):
            raise UserInputError(
                f"{where} has direction={direction!r}; grukit.GRU has forward and bidirectional "
                f"layers only"
            )
        D = 2 if direction == "bidirectional" else 1
        acts = a.get("activations")
        if acts is not None and [s.lower() for s in acts] != ["sigmoid", "tanh"] * D:
            raise UserInputError(
                f"{where} uses activations {acts}; grukit implements Sigmoid and Tanh"
            )
        if "clip" in a:
            raise UserInputError(
                f"{where} clips its cell input (clip={a['clip']}); grukit does not"
            )
        W, R = get(node.input[1], "W"), get(node.input[2], "R")
        has_b = len(node.input) > 3 and node.input[3] != ""
        B = get(node.input[3], "B") if has_b else None
        H = W.shape[1] // 3
        if (
            W.ndim != 3
            or W.shape[0] != D
            or R.shape != (D, 3 * H, H)
            or (B is not None and B.shape != (D, 6 * H))
        ):
            raise UserInputError(
                f"{where}: inconsistent weight shapes W {W.shape}, R {R.shape}, "
                f"B {None if B is None else B.shape} for direction={direction}"
            )
        if "hidden_size" in a and a["hidden_size"] != H:
            raise UserInputError(
                f"{where}: hidden_size={a['hidden_size']} but W has 3H = {W.shape[1]} rows"
            )
        layers.append(
            dict(
                W=W,
                R=R,
                B=B,
                H=H,
                D=D,
                I=W.shape[2],
                lbr=bool(a.get("linear_before_reset", 0)),
                layout=int(a.get("layout", 0)),
            )
        )
    first = layers[0]
    for k, ly in enumerate(layers):
        want_i = first["I"] if k == 0 else first["D"] * first["H"]
        if (ly["H"], ly["D"], ly["lbr"], ly["B"] is None) != (
            first["H"],
            first["D"],
            first["lbr"],
            first["B"] is None,
        ) or ly["I"] != want_i:
            raise UserInputError(
                f"{path}: GRU operators do not form one stack: operator {k} has hidden size {ly['H']}, "
                f"{ly['D']} direction(s), linear_before_reset={int(ly['lbr'])}, input size {ly['I']}, bias "
                f"{ly['B'] is not None}; operator 0 has {first['H']}, {first['D']}, {int(first['lbr'])}, "
                f"bias {first['B'] is not None} (and layer k≥1 needs input size {first['D'] * first['H']}); pick "
                f"operators with nodes=[...]"
            )
    if batch_first is None:
        # our own files say; otherwise follow the operator's layout attribute (1 = batch-first X and Y)
        batch_first = (
            bool(stored.get("batch_first", first["layout"] == 1))
            if nodes is None
            else first["layout"] == 1
        )
    dtype = np.float64 if first["W"].dtype == np.float64 else np.float32
    import torch

    model = GRU(
        first["I"],
        first["H"],
        len(layers),
        bias=first["B"] is not None,
        batch_first=batch_first,
        bidirectional=first["D"] == 2,
        reset_after=first["lbr"],
        backend=backend,
        dtype=torch.float64 if dtype == np.float64 else torch.float32,
    )
    for k, ly in enumerate(layers):
        for d in range(ly["D"]):
            H = ly["H"]
            b_ih = b_hh = None
            if ly["B"] is not None:
                b_ih, b_hh = ly["B"][d, : 3 * H], ly["B"][d, 3 * H :]
            set_layer(model, k, d, *from_framework(ly["W"][d], ly["R"][d], b_ih, b_hh, "onnx"))
    return model.eval()
