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
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..errors import UserInputError
from ..nn import GRU
from ._layouts import check_plain, from_framework, layer_arrays, set_layer, to_framework
from .chain import DirectionSpec, GRUChain, GRUChainConfig, LayerSpec

DEFAULT_OPSET = 17


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            "ONNX interop needs the onnx package (pip install 'grukit[interop]')"
        ) from e
    return onnx


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    initial_state: bool = False,
    lengths: bool = False,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> Path:
    """Write ``model`` (a grukit.GRU, or a torch.nn.GRU) to ``path`` as standard ONNX GRU operators (fp32).

    One ONNX ``GRU`` operator per layer (the graph is drawn in the module docstring); the model's config is
    stored in the file's metadata so that :func:`from_onnx` restores it. Batch and time axes are dynamic.
    The file is written atomically: on any error no file is left at ``path``.

    Args:
        model: a :class:`grukit.GRU` without ``layer_norm`` / ``zoneout``, or a ``torch.nn.GRU``.
        path: the file to write (replaced if it exists).
        initial_state: add a graph input ``h0`` (L·D, B, H); without it the initial state is zero.
        lengths: add a graph input ``lengths`` (B,) int32, the ONNX ``sequence_lens``.
        opset: the ONNX opset of the file, at least 14.
        check: run ``onnx.checker`` on the graph before writing.

    Returns:
        ``path`` as a ``Path``. The graph's inputs are ``input`` (T, B, I) — (B, T, I) if
        ``model.batch_first`` —, then ``h0`` and ``lengths`` if asked for; its outputs ``output``
        (T, B, D·H) (or (B, T, D·H)) and ``h_n`` (L·D, B, H), as ``model(input, h0, lengths)`` returns them.

    Raises:
        TypeError: ``model`` is not a grukit.GRU or torch.nn.GRU.
        ValueError: a variant the ONNX GRU operator cannot express, or an opset below 14.
        ImportError: the onnx package is not installed.

    Example:
        >>> import numpy as np, onnxruntime, torch, grukit
        >>> gru = grukit.GRU(3, 4, num_layers=2, batch_first=True)
        >>> path = grukit.export_onnx(gru, "gru_export.onnx")
        >>> session = onnxruntime.InferenceSession(str(path))
        >>> [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        (['input'], ['output', 'h_n'])
        >>> x = torch.randn(2, 5, 3)  # (B, T, I)
        >>> output, h_n = session.run(None, {"input": x.numpy()})
        >>> output.shape, h_n.shape
        ((2, 5, 4), (2, 2, 4))
        >>> bool(np.allclose(output, gru(x)[0].detach().numpy(), atol=1e-5))
        True
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
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, arr: Any) -> str:
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
    from .._io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(
        path
    ) as tmp:  # beside the final file, renamed into place; a full disk names it
        onnx.save(proto, str(tmp))
    return path


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out: dict[str, Any] = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list):
            v = [s.decode() if isinstance(s, bytes) else s for s in v]
        out[a.name] = v
    return out


def _fold(proto: Any, name: str) -> np.ndarray:
    """Evaluate the part of the graph computing ``name`` from stored tensors only (onnx's reference runtime)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    stored = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input} - stored
    needed: set[int] = set()
    seen: set[str] = set()
    stack = [name]
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
    res: Any = ReferenceEvaluator(model).run(None, {})
    return np.asarray(res[0])


def _tensor_resolver(proto: Any) -> Any:
    from onnx import helper, numpy_helper

    graph = proto.graph

    inits = {t.name: t for t in graph.initializer}
    consts: dict[str, Any] = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = helper.get_attribute_value(a)

    def get(name: str, what: str) -> np.ndarray:
        t = inits.get(name, consts.get(name))
        if t is not None:
            return np.asarray(numpy_helper.to_array(t))
        try:  # computed from stored tensors (e.g. an export without constant folding): fold it here
            return _fold(proto, name)
        except Exception as e:
            raise UserInputError(
                f"the GRU operator's {what} ({name!r}) is computed in the graph and cannot be "
                f"evaluated from stored tensors alone ({e})"
            ) from None

    return get


# ------------------------------------------------------------------------------------------------- import
# The graph is read by following its data flow. Every tensor on the way from the graph input to the first GRU,
# from one GRU's Y to the next GRU's X, and from the last GRU to the graph outputs gets a symbolic layout: a
# list of axes, each a tuple of atoms (T, B, D, H, I, or the graph input's unknown axes a0/a1). Transpose
# permutes axes, Squeeze drops size-1 axes, Reshape merges neighbouring axes (row-major, so element order is
# kept); anything else breaks the chain and is named. An axis list is compared after dropping size-1 atoms.

_Atom = tuple[str, "int | None"]
_Axis = tuple[_Atom, ...]
_Layout = list[_Axis]
_Tagged = tuple[_Layout, "int | None"]


class _Break(Exception):
    """The data path reached a node that is not part of a GRU stack."""

    def __init__(self, node: Any, why: str) -> None:
        self.node, self.why = node, why
        super().__init__(why)


def _size(axis: _Axis) -> int | None:
    out = 1
    for _, n in axis:
        if n is None:
            return None
        out *= n
    return out


def _norm(lay: _Layout) -> list[tuple[str, ...]]:
    out = []
    for axis in lay:
        atoms = tuple(a for a, n in axis if not (a == "D" and n == 1))
        if atoms:
            out.append(atoms)
    return out


def _reshape(lay: _Layout, shape: list[int], allowzero: bool, node: Any) -> _Layout:
    """The layout after Reshape(shape) if it only merges neighbouring axes (or adds/drops size-1 ones).

    Dims before a -1 are matched from the left, dims after it from the right; -1 takes the axes between.
    A 0 copies the input axis at the same index (allowzero=0). A positive dim must be the product of the
    (known) sizes of the axes it merges, so a literal size for a dynamic time/batch axis is refused unless
    the graph input declares that size.
    """
    if allowzero and 0 in shape:
        raise _Break(node, "it reshapes with allowzero=1")
    if shape.count(-1) > 1 or any(v < -1 for v in shape):
        raise _Break(node, f"its target shape {shape} is invalid")
    m = shape.index(-1) if -1 in shape else len(shape)

    def take(dims: list[int], axes: list[_Axis], start: int, step: int) -> tuple[list[_Axis], int]:
        """Match ``dims`` against ``axes`` walking from ``start`` by ``step`` (+1 or -1); returns the new
        axes (in walking order) and how many input axes were consumed."""
        out: list[_Axis] = []
        used = 0
        for j, v in enumerate(dims):
            if v == 0:
                pos = start + step * used
                want = j if step == 1 else len(shape) - 1 - j
                if pos != want or not 0 <= pos < len(axes):
                    raise _Break(node, f"its target shape {shape} copies an axis out of place")
                out.append(axes[pos])
                used += 1
                continue
            group: list[_Axis] = []
            prod = 1
            while prod != v:
                pos = start + step * used
                if prod > v or not 0 <= pos < len(axes):
                    raise _Break(node, f"its target shape {shape} splits or mixes axes")
                n = _size(axes[pos])
                if n is None:
                    raise _Break(
                        node,
                        f"its target shape {shape} fixes the size of a dynamic (time/batch) axis",
                    )
                group.append(axes[pos])
                prod *= n
                used += 1
            ordered = group if step == 1 else group[::-1]
            out.append(tuple(a for ax in ordered for a in ax))
        return out, used

    left, p = take(shape[:m], lay, 0, 1)
    if m == len(shape):
        if any(_size(ax) != 1 for ax in lay[p:]):
            raise _Break(node, f"its target shape {shape} does not cover every axis")
        return left
    right, q = take(shape[m + 1 :][::-1], lay, len(lay) - 1, -1)
    if p + q > len(lay):
        raise _Break(node, f"its target shape {shape} does not fit the input's axes")
    middle = lay[p : len(lay) - q]
    merged: _Axis = tuple(a for ax in middle for a in ax)
    return left + [merged] + right[::-1]


class _Graph:
    """Producers, stored tensors and graph inputs of an ONNX graph, and the walks over its data flow."""

    def __init__(self, proto: Any) -> None:
        graph = proto.graph
        self.proto = proto
        self.producers = {o: n for n in graph.node for o in n.output if o}
        self.stored = {t.name for t in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in self.stored]
        self.outputs = [o.name for o in graph.output]
        self.get = _tensor_resolver(proto)

    def const(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is computed from stored tensors only, else None."""
        if not name:
            return None
        if name in self.inputs:
            return None
        try:
            return np.asarray(self.get(name, "value"))
        except UserInputError:
            return None

    def layout(self, name: str, sources: dict[str, _Tagged]) -> _Tagged:
        """The layout of ``name`` computed from ``sources`` (tensor → (layout, direction tag)).

        The tag is 0 / 1 for the output of the forward / reverse operator of a pair of single-direction GRUs
        that together form one bidirectional layer, None otherwise; Concat joins a pair (forward first) into
        one axis whose outermost atom is the direction, as a bidirectional operator's output has it.
        """
        if name in sources:
            return sources[name]
        node = self.producers.get(name)
        if node is None:
            raise _Break(None, f"it reads the graph input {name!r}")
        op, a = node.op_type, _attrs(node)
        if op == "Identity":
            return self.layout(node.input[0], sources)
        if op == "Concat":
            parts = [self.layout(i, sources) for i in node.input]
            if len(parts) != 2 or [t for _, t in parts] != [0, 1]:
                raise _Break(
                    node,
                    "it concatenates something other than the forward and the reverse output "
                    "(in that order) of one layer",
                )
            (la, _), (lb, _) = parts
            if len(la) != len(lb):
                raise _Break(node, "it concatenates tensors of different ranks")
            k = int(a.get("axis", 0)) % len(la)
            rest_a = _norm([ax for i, ax in enumerate(la) if i != k])
            rest_b = _norm([ax for i, ax in enumerate(lb) if i != k])
            keep_a = tuple(t for t in la[k] if not (t[0] == "D" and t[1] == 1))
            keep_b = tuple(t for t in lb[k] if not (t[0] == "D" and t[1] == 1))
            if rest_a != rest_b or keep_a != keep_b:
                raise _Break(node, "the two directions' outputs do not line up")
            merged: _Axis = (("D", 2),) + keep_a
            return [merged if i == k else ax for i, ax in enumerate(la)], None
        if op == "Transpose":
            lay, tag = self.layout(node.input[0], sources)
            perm = a.get("perm", list(range(len(lay)))[::-1])
            if sorted(perm) != list(range(len(lay))):
                raise _Break(node, f"its perm {perm} does not fit {len(lay)} axes")
            return [lay[p] for p in perm], tag
        if op == "Squeeze":
            lay, tag = self.layout(node.input[0], sources)
            axes = a.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                c = self.const(node.input[1])
                if c is None:
                    raise _Break(node, "its axes are computed from graph inputs")
                axes = [int(v) for v in np.ravel(c)]
            if axes is None:
                axes = [i for i, ax in enumerate(lay) if _size(ax) == 1]
            axes = [int(v) % len(lay) for v in axes]
            if any(_size(lay[i]) != 1 for i in axes):
                raise _Break(node, "it squeezes an axis that is not of size 1")
            return [ax for i, ax in enumerate(lay) if i not in axes], tag
        if op == "Reshape":
            lay, tag = self.layout(node.input[0], sources)
            c = self.const(node.input[1])
            if c is None:
                raise _Break(node, "its target shape is computed from graph inputs")
            shape = [int(v) for v in np.ravel(c)]
            return _reshape(lay, shape, bool(a.get("allowzero", 0)), node), tag
        raise _Break(node, "it is not one of the reshapes a GRU stack implies")

    def sources(self, name: str) -> list[tuple[str, Any, int]]:
        """Walk back from ``name`` through data-moving nodes (and Concat) to GRU outputs or graph inputs."""
        found: list[tuple[str, Any, int]] = []
        stack = [name]
        while stack:
            t = stack.pop()
            if t in self.inputs:
                found.append(("input", t, 0))
                continue
            node = self.producers.get(t)
            if node is None:
                raise _Break(None, f"{t!r} is neither computed nor a graph input")
            if node.op_type == "GRU":
                found.append(("gru", node, list(node.output).index(t)))
            elif node.op_type == "Concat":
                stack.extend(node.input)
            elif node.op_type in ("Identity", "Transpose", "Squeeze", "Reshape"):
                stack.append(node.input[0])
            else:
                raise _Break(node, "it is not one of the reshapes a GRU stack implies")
        return found


def _node_name(node: Any) -> str:
    return f"{node.name or '(unnamed)'!r} ({node.op_type})"


def _parse_gru(node: Any, get: Any, where: str) -> dict[str, Any]:
    a = _attrs(node)
    direction = a.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise UserInputError(f"{where} has direction={direction!r}, which ONNX does not define")
    D = 2 if direction == "bidirectional" else 1
    acts = a.get("activations")
    if acts is not None and [s.lower() for s in acts] != ["sigmoid", "tanh"] * D:
        raise UserInputError(f"{where} uses activations {acts}; grukit implements Sigmoid and Tanh")
    if "clip" in a:
        raise UserInputError(f"{where} clips its cell input (clip={a['clip']}); grukit does not")
    W, R = get(node.input[1], "W"), get(node.input[2], "R")
    has_b = len(node.input) > 3 and node.input[3] != ""
    B = get(node.input[3], "B") if has_b else None
    H = W.shape[1] // 3 if W.ndim == 3 else 0
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
    return dict(
        W=W,
        R=R,
        B=B,
        H=H,
        D=D,
        I=W.shape[2],
        direction=direction,
        lbr=bool(a.get("linear_before_reset", 0)),
        layout=int(a.get("layout", 0)),
        node=node,
        where=where,
    )


def _is_zero_state(g: _Graph, name: str) -> bool | None:
    """True if ``name`` is all zeros whatever the input (stored zeros, Expand/ConstantOfShape of 0), False if
    it is stored with other values, None if it is neither (e.g. computed from a graph input)."""
    c = g.const(name)
    if c is not None:
        return not np.any(c)
    node = g.producers.get(name)
    if node is not None and node.op_type in (
        "Identity",
        "Slice",
        "Gather",
        "Reshape",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
    ):  # a piece of a zero state is zero
        return True if _is_zero_state(g, node.input[0]) else None
    if node is not None and node.op_type == "Expand":
        c = g.const(node.input[0])
        return None if c is None else not np.any(c)
    if node is not None and node.op_type == "ConstantOfShape":
        from onnx import numpy_helper

        v = _attrs(node).get("value")
        return True if v is None else not np.any(numpy_helper.to_array(v))
    return None


def _states(g: _Graph, layers: list[dict[str, Any]], path: Path, follow: bool) -> tuple[bool, bool]:
    """Check each GRU's initial_h and sequence_lens; (takes hx at call time, takes lengths at call time)."""
    h_kinds: list[Any] = []
    l_kinds: list[str | None] = []
    row = 0
    for ly in layers:
        node, where = ly["node"], ly["where"]
        ins = list(node.input) + [""] * (6 - len(node.input))
        seq, h0 = ins[4], ins[5]
        if not seq:
            l_kinds.append(None)
        elif seq in g.inputs:
            l_kinds.append(seq)
        else:
            c = g.const(seq)
            raise UserInputError(
                f"{where}: its sequence_lens is "
                + (
                    f"stored in the file ({np.ravel(c).tolist()[:8]})"
                    if c is not None
                    else "computed in the graph"
                )
                + "; grukit takes lengths at call time and would ignore it, so the file is refused"
            )
        if not h0:
            h_kinds.append("zero")
        else:
            zero = _is_zero_state(g, h0)
            if zero is True:
                h_kinds.append("zero")
            elif zero is False:
                c = g.const(h0)
                assert c is not None
                raise UserInputError(
                    f"{where}: its initial_h is stored in the file with non-zero values (max |h0| = "
                    f"{float(np.abs(c).max()):.3g}); grukit takes the initial state at call time (hx) and would "
                    f"ignore it, so the file is refused"
                )
            elif not follow:
                h_kinds.append("input")
            else:
                src, lo, hi = h0, None, None
                node_h = g.producers.get(h0)
                if node_h is not None and node_h.op_type == "Slice":
                    starts, ends = g.const(node_h.input[1]), g.const(node_h.input[2])
                    axes = (
                        g.const(node_h.input[3])
                        if len(node_h.input) > 3 and node_h.input[3]
                        else np.array([0])
                    )
                    steps = (
                        g.const(node_h.input[4])
                        if len(node_h.input) > 4 and node_h.input[4]
                        else np.array([1])
                    )
                    if (
                        starts is None
                        or ends is None
                        or axes is None
                        or steps is None
                        or np.ravel(axes).tolist() != [0]
                        or np.ravel(steps).tolist() != [1]
                    ):
                        raise UserInputError(
                            f"{where}: its initial_h comes from node {_node_name(node_h)}, which is not a plain slice of a graph input"
                        )
                    src, lo, hi = node_h.input[0], int(np.ravel(starts)[0]), int(np.ravel(ends)[0])
                if src not in g.inputs or ly["layout"] != 0:
                    raise UserInputError(
                        f"{where}: its initial_h ({h0!r}) is computed in the graph, not a (slice of a) graph input "
                        f"or zeros; grukit cannot express it"
                    )
                if lo is None:
                    lo, hi = row, row + ly["D"]
                    if len(layers) > 1:
                        raise UserInputError(
                            f"{where}: its initial_h is the whole graph input {src!r} in a stack of "
                            f"{len(layers)} GRUs; grukit's hx is one (num_layers·D, B, H) tensor sliced per layer"
                        )
                if (lo, hi) != (row, row + ly["D"]):
                    raise UserInputError(
                        f"{where}: its initial_h is rows {lo}:{hi} of {src!r}; grukit's hx gives this layer rows "
                        f"{row}:{row + ly['D']}"
                    )
                h_kinds.append(("input", src))
        row += ly["D"]
    if (
        len({k if isinstance(k, str) else "input" for k in h_kinds}) > 1
        or len({k for k in h_kinds if isinstance(k, tuple)}) > 1
    ):
        raise UserInputError(
            f"{path}: the GRU operators take their initial states from different places ({h_kinds}); "
            f"grukit has one hx for all layers"
        )
    if len(set(l_kinds)) > 1:
        raise UserInputError(
            f"{path}: the GRU operators do not all read the same sequence_lens ({l_kinds}); grukit has "
            f"one lengths argument for all layers"
        )
    return h_kinds[0] != "zero", l_kinds[0] is not None


def _y_layout(ly: dict[str, Any], tb: tuple[int | None, int | None] = (None, None)) -> _Layout:
    T, B, D, H = ("T", tb[0]), ("B", tb[1]), ("D", ly["D"]), ("H", ly["H"])
    return [(T,), (D,), (B,), (H,)] if ly["layout"] == 0 else [(B,), (T,), (D,), (H,)]


def _y_sources(
    group: list[dict[str, Any]], tb: tuple[int | None, int | None]
) -> dict[str, _Tagged]:
    """The Y outputs of one layer's operator(s) with their layouts (tagged 0/1 for a forward/reverse pair)."""
    if len(group) == 1:
        return {group[0]["node"].output[0]: (_y_layout(group[0], tb), None)}
    return {ly["node"].output[0]: (_y_layout(ly, tb), i) for i, ly in enumerate(group)}


def _width(group: list[dict[str, Any]]) -> int:
    return int(sum(ly["D"] for ly in group) * group[0]["H"])


def _follow_chain(g: _Graph, grus: list[Any], path: Path) -> list[list[Any]]:
    """The GRU nodes in data-flow order, one list per layer: one operator, or a forward and a reverse
    operator reading the same input whose outputs are concatenated. Refuses whatever breaks the chain."""

    def refuse(node: Any, why: str, what: str) -> UserInputError:
        at = f"node {_node_name(node)}" if node is not None else "the graph"
        return UserInputError(
            f"{path}: {what} is not a GRU stack at {at}: {why}; from_onnx imports one chain of GRU "
            f"operators (pick operators with nodes=[...] to take their weights only)"
        )

    key: dict[int, frozenset[tuple[str, object, int]]] = {}
    for n in grus:
        try:
            found = g.sources(n.input[0])
        except _Break as e:
            raise refuse(e.node, e.why, f"the input X of GRU {_node_name(n)}") from None
        key[id(n)] = frozenset((k, id(o) if k == "gru" else o, i) for k, o, i in found)

    def layer_of(members: list[Any], what: str) -> list[Any]:
        if len(members) == 1:
            return members
        dirs = sorted(str(_attrs(n).get("direction", "forward")) for n in members)
        if len(members) == 2 and dirs == ["forward", "reverse"]:
            return sorted(members, key=lambda n: str(_attrs(n).get("direction", "forward")))
        raise UserInputError(
            f"{path}: GRU operators {', '.join(_node_name(n) for n in members)} all read {what}: "
            f"parallel GRUs are not a stack (only a forward and a reverse operator whose outputs are "
            f"concatenated form one bidirectional layer)"
        )

    inputs = {k for n in grus for k in key[id(n)] if k[0] == "input"}
    firsts = [n for n in grus if key[id(n)] and all(k[0] == "input" for k in key[id(n)])]
    if not firsts or len(inputs) != 1:
        raise UserInputError(
            f"{path}: {'no GRU operator reads' if not firsts else 'the GRU operators read'} "
            f"{'the graph input directly' if not firsts else f'{len(inputs)} graph inputs'}: not one "
            f"GRU stack (pick operators with nodes=[...] to take their weights only)"
        )
    groups = [layer_of(firsts, f"the graph input {next(iter(inputs))[1]!r}")]
    while True:
        ys = frozenset(("gru", id(n), 0) for n in groups[-1])
        nxt = [n for n in grus if key[id(n)] == ys]
        if not nxt:
            break
        groups.append(
            layer_of(nxt, f"the output of {', '.join(_node_name(n) for n in groups[-1])}")
        )
    placed = {id(n) for grp in groups for n in grp}
    left = [n for n in grus if id(n) not in placed]
    if left:
        n = left[0]
        reads_state = any(k[0] == "gru" and k[2] == 1 for k in key[id(n)])
        raise UserInputError(
            f"{path}: GRU {_node_name(n)} "
            + (
                "reads a final state Y_h, not an output sequence Y"
                if reads_state
                else "does not read the output of the layer before it (alone)"
            )
            + ": not one GRU stack (pick operators with nodes=[...] to take their weights only)"
        )
    return groups


def _check_flow(g: _Graph, groups: list[list[dict[str, Any]]], path: Path) -> bool:
    """Check every link of the chain and the graph outputs; returns batch_first (the graph input's layout)."""

    def refuse(e: _Break, what: str) -> UserInputError:
        at = f"node {_node_name(e.node)}" if e.node is not None else "the graph"
        return UserInputError(
            f"{path}: {what} is not what a GRU stack computes at {at}: {e.why}; from_onnx imports "
            f"one chain of GRU operators (pick operators with nodes=[...] to take their weights only)"
        )

    first = groups[0][0]
    x_in = g.sources(first["node"].input[0])[0][1]
    a0, a1, feat = ("a0", None), ("a1", None), ("I", first["I"])
    seen = set()
    for ly in groups[0]:
        try:
            lay, _ = g.layout(ly["node"].input[0], {x_in: ([(a0,), (a1,), (feat,)], None)})
        except _Break as e:
            raise refuse(e, f"the path from the graph input to {_node_name(ly['node'])}") from None
        norm = _norm(lay)
        if norm not in ([("a0",), ("a1",), ("I",)], [("a1",), ("a0",), ("I",)]):
            raise UserInputError(
                f"{path}: the graph input reaches {_node_name(ly['node'])} with axes {norm}, not as "
                f"a (time, batch, features) or (batch, time, features) tensor"
            )
        seen.add((norm[0] == ("a0",)) == (ly["layout"] == 1))
    if len(seen) != 1:
        raise UserInputError(
            f"{path}: the two directions of the first layer read the input differently"
        )
    batch_first = bool(seen.pop())
    # a file exported with fixed shapes may reshape with literal sizes: take them from the graph input
    dims: list[int | None] = [None, None]
    for vi in g.proto.graph.input:
        if vi.name == x_in and vi.type.tensor_type.HasField("shape"):
            d = [
                x.dim_value if x.HasField("dim_value") else None
                for x in vi.type.tensor_type.shape.dim
            ]
            if len(d) == 3:
                dims = [d[0] or None, d[1] or None]
    tb = (dims[1], dims[0]) if batch_first else (dims[0], dims[1])
    for prev, grp in zip(groups, groups[1:]):
        feat_axis = ("D", "H") if _width(prev) > prev[0]["H"] else ("H",)
        for ly in grp:
            want: list[tuple[str, ...]] = (
                [("T",), ("B",)] if ly["layout"] == 0 else [("B",), ("T",)]
            ) + [feat_axis]
            what = f"the path from {', '.join(_node_name(p['node']) for p in prev)} to {_node_name(ly['node'])}"
            try:
                lay, tag = g.layout(ly["node"].input[0], _y_sources(prev, tb))
            except _Break as e:
                raise refuse(e, what) from None
            if _norm(lay) != want or tag is not None:
                raise UserInputError(
                    f"{path}: {_node_name(ly['node'])} reads the output of the layer before it with axes "
                    f"{_norm(lay)}{' (one direction only)' if tag is not None else ''}, expected {want}: "
                    f"the reshape between them is not the one a stack implies"
                )
    # graph outputs: the last Y (reshaped to grukit's output, or the operator's own Y), or final states
    last = groups[-1]
    feat_axis = ("D", "H") if _width(last) > last[0]["H"] else ("H",)
    seq_ok: list[list[tuple[str, ...]]] = [
        [("B",), ("T",), feat_axis] if batch_first else [("T",), ("B",), feat_axis]
    ]
    if len(last) == 1:
        seq_ok.append(_norm(_y_layout(last[0], tb)))
    flat = [ly for grp in groups for ly in grp]
    yh = [ly["node"].output[1] if len(ly["node"].output) > 1 else "" for ly in flat]
    for out in g.outputs:
        node = g.producers.get(out)
        if out in yh or (node is not None and node.op_type == "Identity" and node.input[0] in yh):
            continue
        if node is not None and node.op_type == "Concat" and list(node.input) == yh:
            if int(_attrs(node).get("axis", 0)) == (0 if flat[-1]["layout"] == 0 else 1):
                continue
        try:
            lay, tag = g.layout(out, _y_sources(last, tb))
        except _Break as e:
            raise refuse(e, f"graph output {out!r}") from None
        if _norm(lay) not in seq_ok or tag is not None:
            raise UserInputError(
                f"{path}: graph output {out!r} has axes {_norm(lay)}"
                f"{' (one direction only)' if tag is not None else ''}; with the graph input "
                f"{'batch-first' if batch_first else 'time-major'}, grukit's output is {seq_ok[0]}"
            )
    return batch_first


def from_onnx(
    path: str | os.PathLike[str],
    nodes: list[int | str] | None = None,
    backend: str = "auto",
    batch_first: bool | None = None,
) -> GRU | GRUChain:
    """A grukit model computing what the ONNX ``GRU`` operators in ``path`` compute.

    The graph is read by following its data flow, not node order. It is accepted when it is one chain: the
    graph input (optionally through a Transpose) feeds the first GRU operator, each next GRU reads the
    previous one's output Y through the reshapes a stack implies (Squeeze / Transpose / Reshape, checked axis
    by axis), and the graph outputs are the last Y (reshaped) or the final states Y_h (one, or all
    concatenated in order). Anything else — parallel GRUs, a ``Mul`` or ``Add`` between layers, a head after
    the last GRU — is refused with the breaking node named.

    * ``initial_h``: absent or zeros (stored, or ``Expand``/``ConstantOfShape`` of 0) → h0 = 0; a graph input
      (sliced per layer as :func:`export_onnx` does) → pass it as ``hx``; stored non-zero values are refused.
    * ``sequence_lens``: absent, or one graph input shared by all operators (→ pass ``lengths``); stored
      values are refused.
    * ``batch_first`` defaults to the graph input's layout: a Transpose (1, 0, 2) in front of the first GRU
      (``torch.onnx.export`` of a batch-first torch.nn.GRU) or ``layout=1`` → True.
    * ``direction="reverse"`` operators, and stacks mixing direction counts or ``linear_before_reset``, give a
      :class:`~grukit.interop.chain.GRUChain` (same call, same outputs); otherwise a ``grukit.GRU``.

    W, R and B may be stored or computed from stored tensors (evaluated with onnx's reference runtime), not
    from graph inputs. ``nodes`` picks GRU operators by index (among the GRU operators) or node name and
    stacks them in that order without following the graph (their weights only; stored initial_h and
    sequence_lens are still refused).

    Args:
        path: the ONNX file.
        nodes: GRU operators to stack (indices among the GRU operators, or node names), or None to follow
            the graph.
        backend: the ``backend`` of the grukit layers (``"auto"``, ``"fused"`` or ``"torch"``).
        batch_first: the layout of the returned model's input and output; None takes the graph's.

    Returns:
        A ``grukit.GRU`` or a :class:`~grukit.interop.chain.GRUChain` in eval mode, called like the graph:
        ``model(input, hx, lengths)`` with input (T, B, I) — (B, T, I) if ``batch_first`` — returns
        output (T, B, D·H) (or batch-first) and h_n (S, B, H), S the number of directions over all layers.

    Raises:
        UserInputError: the file is missing, unreadable, has no GRU operator, or its graph is not one
            GRU chain grukit computes exactly (the breaking node named); a bad ``nodes`` selection.
        ImportError: the onnx package is not installed.

    Example:
        >>> import grukit, torch
        >>> p = grukit.export_onnx(grukit.GRU(3, 4, batch_first=True), "gru_doc.onnx")
        >>> grukit.from_onnx(p).batch_first
        True
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
    grus = [n for n in proto.graph.node if n.op_type == "GRU" and n.domain in ("", "ai.onnx")]
    if not grus:
        ops = sorted({n.op_type for n in proto.graph.node})
        raise UserInputError(
            f"{path} has no ONNX GRU operator in its main graph (operators found: {ops[:12]})"
        )
    g = _Graph(proto)
    follow = nodes is None
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
        node_groups = [[n] for n in picked]
    else:
        node_groups = _follow_chain(g, grus, path)
    count = iter(range(len(grus)))
    groups = [
        [
            _parse_gru(
                node, g.get, f"{path}: GRU operator {next(count)} ({node.name or 'unnamed'})"
            )
            for node in grp
        ]
        for grp in node_groups
    ]
    H0 = groups[0][0]["H"]
    for k, grp in enumerate(groups):
        for ly in grp:
            want_i = groups[0][0]["I"] if k == 0 else _width(groups[k - 1])
            if ly["H"] != H0 or ly["I"] != want_i:
                raise UserInputError(
                    f"{ly['where']} has hidden size {ly['H']} and input size {ly['I']}; the stack needs "
                    f"hidden size {H0} and input size {want_i}: the GRU operators do not form one stack "
                    f"(pick operators with nodes=[...])"
                )
    flat = [ly for grp in groups for ly in grp]
    _states(g, flat, path, follow)
    if follow:
        graph_bf = _check_flow(g, groups, path)
    else:
        graph_bf = flat[0]["layout"] == 1
    if batch_first is None:
        batch_first = graph_bf
    first = flat[0]
    dtype = np.float64 if first["W"].dtype == np.float64 else np.float32
    import torch

    tdtype = torch.float64 if dtype == np.float64 else torch.float32

    def directions(grp: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, bool]]:
        """(operator, index into its W/R/B, reads reversed) for each direction of one layer."""
        out = []
        for ly in grp:
            for d in range(ly["D"]):
                out.append((ly, d, d == 1 or ly["direction"] == "reverse"))
        return out

    def arrays(
        ly: dict[str, Any], d: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        b_ih = b_hh = None
        if ly["B"] is not None:
            b_ih, b_hh = ly["B"][d, : 3 * H0], ly["B"][d, 3 * H0 :]
        return from_framework(ly["W"][d], ly["R"][d], b_ih, b_hh, "onnx")

    layer_dirs = [directions(grp) for grp in groups]
    D0 = len(layer_dirs[0])
    plain = all(
        len(dirs) == D0
        and [rev for _, _, rev in dirs] == [False, True][:D0]
        and all(
            (ly["lbr"], ly["B"] is None) == (first["lbr"], first["B"] is None) for ly, _, _ in dirs
        )
        for dirs in layer_dirs
    )
    if plain:
        model = GRU(
            first["I"],
            H0,
            len(groups),
            bias=first["B"] is not None,
            batch_first=batch_first,
            bidirectional=D0 == 2,
            reset_after=first["lbr"],
            backend=backend,
            dtype=tdtype,
        )
        for k, dirs in enumerate(layer_dirs):
            for d, (ly, i, _) in enumerate(dirs):
                set_layer(model, k, d, *arrays(ly, i))
        return model.eval()
    specs = [
        LayerSpec(
            int(grp[0]["I"]),
            [DirectionSpec(rev, rev, ly["lbr"], ly["B"] is not None) for ly, _, rev in dirs],
            "concat",
        )
        for grp, dirs in zip(groups, layer_dirs)
    ]
    desc = " → ".join(
        " + ".join(f"GRU(direction={ly['direction']!r})" for ly in grp) for grp in groups
    )
    chain = GRUChain(
        GRUChainConfig(
            H0, specs, batch_first=batch_first, dtype=str(np.dtype(dtype)), source=f"ONNX {desc}"
        )
    )
    for k, dirs in enumerate(layer_dirs):
        for d, (ly, i, _) in enumerate(dirs):
            set_layer(chain.direction(k, d), 0, 0, *arrays(ly, i))
    return chain.eval()
