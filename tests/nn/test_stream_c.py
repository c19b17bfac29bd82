"""GRUCell's streaming step through the C++ checks (grukit.kernels.torch_step): it runs exactly the calls the
Python checks take and declines every other one (the Python path then runs or raises).

Which path ran is seen by counting the Python ones (StepPlan.cell, GRUCell._forward): a call the C++ path
took runs neither. Numbers are checked against the float64 reference.
"""

import numpy as np
import pytest
import torch
from support import numpy_params, randomize

import grukit
from grukit import reference
from grukit.nn import cell as cell_mod

stream = pytest.importorskip("grukit.kernels.stream")
torch_step = pytest.importorskip("grukit.kernels.torch_step")
if torch_step.load() is None:
    pytest.skip(f"no C++ checks here: {torch_step.status()['error']}", allow_module_level=True)


@pytest.fixture
def python_calls(monkeypatch):
    """A counter of the calls that ran a Python path (the plan's Python checks or the general path)."""
    n = [0]

    def counting(fn):
        def method(*a, **k):
            n[0] += 1
            return fn(*a, **k)

        return method

    monkeypatch.setattr(stream.StepPlan, "cell", counting(stream.StepPlan.cell))
    monkeypatch.setattr(grukit.GRUCell, "_forward", counting(grukit.GRUCell._forward))
    return lambda: n[0]


@pytest.fixture
def path_guard():
    yield
    stream.set_path("f32-auto")


def ref_cell(cell, x, h):
    p = numpy_params(cell)
    out, _ = reference.gru_cell(
        x.detach().double().numpy(),
        h.detach().double().numpy(),
        p["weight_ih"],
        p["weight_hh"],
        p.get("bias_ih"),
        p.get("bias_hh"),
        cell.reset_after,
    )
    return out


def close(a, b, atol=1e-5):
    np.testing.assert_allclose(a.detach().numpy(), b, atol=atol, rtol=0)


def ready(cell, B=1):
    """A cell with a plan that uses the C++ checks (built by one inference call)."""
    with torch.no_grad():
        cell(torch.randn(B, cell.input_size), torch.randn(B, cell.hidden_size))
    assert cell._step_plan is not None and cell._step_plan._c
    return cell


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("B", [1, 3])
def test_c_path_matches_python_path_and_reference(reset_after, bias, B, python_calls):
    cell = ready(randomize(grukit.GRUCell(37, 45, bias=bias, reset_after=reset_after)), B)
    x, h = torch.randn(B, 37), torch.randn(B, 45)
    n0 = python_calls()
    with torch.no_grad():
        a = cell(x, h)
        b = cell(x, h)
    with torch.inference_mode():
        c = cell(x, h)
    assert python_calls() == n0  # all three through the C++ path
    assert c.is_inference() and not a.is_inference()  # allocated as torch would in each mode
    assert a.data_ptr() != b.data_ptr() and torch.equal(a, b) and torch.equal(a, c)
    close(a, ref_cell(cell, x, h))
    cell._step_plan._c = False  # the Python checks: the same native step, the same bits
    with torch.no_grad():
        assert torch.equal(cell(x, h), a)
    assert python_calls() == n0 + 1


def test_c_path_declines_what_the_python_path_must_handle(python_calls):
    cell = ready(randomize(grukit.GRUCell(4, 6)))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    want = ref_cell(cell, x, h)

    def declined(call):
        n = python_calls()
        out = call()
        return python_calls() > n, out

    with torch.no_grad():
        d, out = declined(lambda: cell(x, h))
        assert not d
        close(out, want)
        for name, call in [
            ("h None", lambda: cell(x)),
            ("unbatched", lambda: cell(x[0], h[0])),
            ("keywords", lambda: cell(x, h=h)),
            ("x not contiguous", lambda: cell(torch.randn(4, 2).t(), h)),
            ("x a Parameter", lambda: cell(torch.nn.Parameter(x), h)),
            ("batch above max_batch", lambda: cell(torch.randn(5, 4), torch.randn(5, 6))),
        ]:
            d, out = declined(call)
            assert d, name
        for name, call in [
            ("x float64", lambda: cell(x.double(), h)),
            ("wrong input size", lambda: cell(torch.randn(2, 5), h)),
            ("h batch mismatch", lambda: cell(x, torch.randn(3, 6))),
            ("h wrong size", lambda: cell(x, torch.randn(2, 7))),
        ]:
            n = python_calls()
            with pytest.raises((TypeError, ValueError)):  # the Python path's errors
                call()
            assert python_calls() > n, name
    # autograd needed: x or h requires grad, or the weights in grad mode
    x2 = x.clone().requires_grad_()
    d, out = declined(lambda: cell(x2, h))
    assert d and out.grad_fn is not None
    d, out = declined(lambda: cell(x, h))  # grad mode, the parameters require grad
    assert d and out.grad_fn is not None
    with torch.no_grad():
        d, out = declined(lambda: cell(x2, h))
    assert not d and out.grad_fn is None
    cell.requires_grad_(False)  # only an input requires grad
    for args in ((x2, h), (x, h.clone().requires_grad_())):
        d, out = declined(lambda: cell(*args))
        assert d and out.grad_fn is not None
        close(out, want)
    cell.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        d, out = declined(lambda: cell(x, h))
    assert d
    close(out, want)
    with torch.no_grad():
        d, out = declined(lambda: torch.vmap(lambda xx: cell(xx, h[:1]))(x.unsqueeze(1)))
        assert d
        close(out.squeeze(1), ref_cell(cell, x, h[:1].expand(2, 6)))
        import torch.autograd.forward_ad as fwad

        with fwad.dual_level():
            dual = fwad.make_dual(x, torch.ones_like(x))
            d, out = declined(lambda: cell(dual, h))
            assert d and fwad.unpack_dual(out).tangent is not None
        traced = torch.jit.trace(cell, (x, h), check_trace=False)
        assert any(n.kind().startswith("aten::") for n in traced.graph.nodes())
        close(traced(x * 3, h), ref_cell(cell, x * 3, h))

        from torch.utils._python_dispatch import TorchDispatchMode

        ops = []

        class Seen(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                ops.append(func)
                return func(*args, **(kwargs or {}))

        with Seen():
            d, out = declined(lambda: cell(x, h))
        assert d and ops
        close(out, want)
        # and after all of that, the C++ path again
        d, out = declined(lambda: cell(x, h))
        assert not d
        close(out, want)


def test_c_path_sees_every_weight_change(python_calls, path_guard):
    cell = ready(randomize(grukit.GRUCell(4, 6)))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    changes = [
        ("in place", lambda: cell.weight_hh.mul_(0.5)),
        ("replaced data", lambda: setattr(cell.weight_ih, "data", torch.randn(18, 4))),
        ("new parameter", lambda: setattr(cell, "bias_hh", torch.nn.Parameter(torch.randn(18)))),
        (
            "load_state_dict",
            lambda: cell.load_state_dict(randomize(grukit.GRUCell(4, 6), seed=3).state_dict()),
        ),
        ("set_path", lambda: stream.set_path("f32-generic")),
        ("double", lambda: cell.double()),
    ]
    for name, change in changes:
        with torch.no_grad():
            cell(
                x.to(cell.weight_hh.dtype), h.to(cell.weight_hh.dtype)
            )  # a plan for the weights now
            plan = cell._step_plan
            change()
            n = python_calls()
            xx, hh = x.to(cell.weight_hh.dtype), h.to(cell.weight_hh.dtype)
            out = cell(xx, hh)
        assert python_calls() > n, name  # the C++ path declined; the Python one rebuilt the plan
        close(out.float(), ref_cell(cell, xx, hh))
        if name != "double":
            assert cell._step_plan is not plan and cell._step_plan._c, name
    with torch.no_grad():
        cell.float()
        cell(x, h)
        cell.weight_hh.requires_grad_(True)
        n = python_calls()
        cell(x, h)  # no_grad: the C++ path even though the weights require grad
        assert python_calls() == n
    out = cell(x, h)
    assert python_calls() > n and out.grad_fn is not None


def test_c_path_runs_hooks_and_overridden_forwards(python_calls):
    cell = ready(randomize(grukit.GRUCell(4, 6)))
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    want = ref_cell(cell, x, h)
    with torch.no_grad():
        seen = []
        hd = cell.register_forward_pre_hook(lambda m, a: seen.append("pre"))
        close(cell(x, h), want)
        hd.remove()
        hd = cell.register_forward_hook(lambda m, a, out: out * 2)
        close(cell(x, h), 2 * want)
        hd.remove()
        g = torch.nn.modules.module.register_module_forward_pre_hook(
            lambda m, a: seen.append("global")
        )
        try:
            close(cell(x, h), want)
        finally:
            g.remove()
        assert "pre" in seen and "global" in seen
        cell.forward = lambda x, h=None: torch.zeros(3)
        assert cell(x, h).shape == (3,)
        del cell.forward
        n = python_calls()
        close(cell(x, h), want)
        assert python_calls() == n  # back on the C++ path

    class Doubled(grukit.GRUCell):
        def forward(self, x, h=None):
            return 2 * super().forward(x, h)

    sub = Doubled(4, 6)
    sub.load_state_dict(cell.state_dict())
    with torch.no_grad():
        sub(x, h)
        close(sub(x, h), 2 * want)
    compiled = ready(randomize(grukit.GRUCell(4, 6)))
    compiled.compile(backend="eager")
    with torch.no_grad():
        n = python_calls()
        close(compiled(x, h), ref_cell(compiled, x, h))
    assert python_calls() > n


def test_python_path_when_disabled(monkeypatch):
    """GRUKIT_TORCH_STEP=0 (or no compiler): plans keep the Python checks."""
    monkeypatch.setattr(torch_step, "_tried", False)
    monkeypatch.setattr(torch_step, "_mod", None)
    monkeypatch.setenv("GRUKIT_TORCH_STEP", "0")
    assert torch_step.load() is None and "GRUKIT_TORCH_STEP" in torch_step.status()["error"]
    cell = randomize(grukit.GRUCell(4, 6))
    x, h = torch.randn(1, 4), torch.randn(1, 6)
    with torch.no_grad():
        cell(x, h)
        assert cell._step_plan is not None and cell._step_plan._c is False
        close(cell(x, h), ref_cell(cell, x, h))
    assert cell_mod._USE_C[0]


def test_first_call_does_not_wait_for_the_build(monkeypatch, tmp_path, python_calls):
    """Where the extension is not cached, the first streaming call starts its build in the background and
    runs the Python checks; once it has loaded, the cell's plan is rebuilt and takes the C++ path."""
    import shutil
    import threading

    built = torch_step._path()  # the module built above (this test copies it as its "build")
    release, started = threading.Event(), threading.Event()

    def slow_compile(path):
        started.set()
        assert release.wait(30)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built, path)

    monkeypatch.setattr(torch_step, "_tried", False)
    monkeypatch.setattr(torch_step, "_mod", None)
    monkeypatch.setattr(torch_step, "_path", lambda: tmp_path / built.name)
    monkeypatch.setattr(torch_step, "_compile", slow_compile)
    cell = randomize(grukit.GRUCell(37, 45))
    x, h = torch.randn(1, 37), torch.randn(1, 45)
    with torch.no_grad():
        close(cell(x, h), ref_cell(cell, x, h))  # answered while the build waits
        assert started.wait(30) and torch_step.status()["building"]
        assert cell._step_plan is not None and cell._step_plan._c is None  # asks again once built
        n = python_calls()
        close(cell(x, h), ref_cell(cell, x, h))
        assert python_calls() == n + 1  # still the Python checks
        thread = torch_step._thread
        release.set()
        thread.join(30)
        assert torch_step.status() == {"loaded": True, "building": False, "error": None}
        close(cell(x, h), ref_cell(cell, x, h))  # the stale plan is rebuilt, with the C++ checks
        assert cell._step_plan._c
        n = python_calls()
        close(cell(x, h), ref_cell(cell, x, h))
        assert python_calls() == n  # the C++ path ran


@pytest.mark.parametrize("cxx", ["/nonexistent", "false"])
def test_a_failed_build_leaves_nothing_in_the_cache(monkeypatch, tmp_path, cxx):
    """No compiler (nothing is created) or a compile that fails (what it made is removed): the Python checks,
    and the cache as it was (the wheel check of .ci/run asserts an empty cache after the kernel tests)."""
    import shutil

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setattr(torch_step, "_tried", False)
    monkeypatch.setattr(torch_step, "_mod", None)
    monkeypatch.setenv("GRUKIT_CACHE_DIR", str(cache))
    monkeypatch.setenv("CXX", shutil.which(cxx) or cxx)
    assert torch_step.load() is None
    assert torch_step.status()["error"]
    assert list(cache.iterdir()) == []


@pytest.mark.slow
def test_a_process_that_exits_during_the_build_still_caches_it(tmp_path):
    """A short script whose first streaming step started the background build and which exited before it
    ended: the build still lands in the cache (the compiler's child renames it), whole, for the next process.
    The "compiler" here copies the module built above after a pause."""
    import os
    import subprocess
    import sys
    import time

    fake = tmp_path / "cxx"
    fake.write_text(
        "#!/bin/sh\n"
        'while [ "$#" -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        f'sleep 2; cp "{torch_step._path()}" "$out"\n'
    )
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    target = cache / "torch_step" / "k" / torch_step._path().name
    env = {k: v for k, v in os.environ.items() if k != "GRUKIT_TORCH_STEP"}
    script = (
        "import torch, grukit, pathlib\n"
        "from grukit.kernels import torch_step\n"
        f"torch_step._command = lambda out: [{str(fake)!r}, '-o', out]\n"
        f"torch_step._path = lambda: pathlib.Path({str(target)!r})\n"
        "c = grukit.GRUCell(4, 6)\n"
        "with torch.no_grad(): c(torch.randn(1, 4), torch.randn(1, 6))\n"
        "assert torch_step.status()['building'], torch_step.status()\n"
        "import time; time.sleep(1)\n"  # exit 1 s into the 2 s build
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    deadline = time.monotonic() + 30
    found: list = []
    while time.monotonic() < deadline and not found:
        found = list(cache.glob("torch_step/*/_grukit_torch_step*.so"))
        time.sleep(0.2)
    assert found and found[0].read_bytes() == torch_step._path().read_bytes()
    assert not list(cache.glob("torch_step/*/*.part"))


def ref_int8(cell, x, h):
    """grukit.reference.int8 on the cell's stored int8 weights and float32 scales."""
    from grukit.reference import int8

    def w(n):
        q = getattr(cell, n).detach().double().numpy()
        return q * cell._buffers[n + "_scale"].double().numpy()[:, None]

    return int8.gru_cell(
        x.numpy(),
        h.numpy(),
        w("weight_ih"),
        w("weight_hh"),
        cell.bias_ih.detach().double().numpy(),
        cell.bias_hh.detach().double().numpy(),
        cell.reset_after,
    )


def test_a_cached_build_loaded_by_the_first_call_serves_that_call(monkeypatch):
    """The extension cached but not loaded yet (a new process): the first call loads it in its own thread and
    is answered by the plan it built, with the int8 step's numbers (a plan made stale by the load fell back to
    the general path once, whose int8 numbers differ by ~1e-2)."""
    monkeypatch.setattr(torch_step, "_tried", False)
    monkeypatch.setattr(torch_step, "_mod", None)
    cell = grukit.quantize(randomize(grukit.GRUCell(130, 33), seed=2), "int8")
    x, h = torch.randn(2, 130), torch.randn(2, 33)
    with torch.no_grad():
        got = cell(x, h)
    assert torch_step.status()["loaded"] and cell._step_plan._c
    np.testing.assert_allclose(got.numpy(), ref_int8(cell, x, h), atol=1e-5, rtol=0)


@pytest.mark.parametrize("B", [1, 6])
def test_int8_cell_through_the_c_path_sees_its_scales(B, python_calls):
    """int8 weights (grukit.quantize): the C++ path runs the int8 step and also keys on the scale buffers."""
    cell = ready(grukit.quantize(randomize(grukit.GRUCell(37, 45)), "int8"), B)
    x, h = torch.randn(B, 37), torch.randn(B, 45)
    n0 = python_calls()
    with torch.no_grad():
        a = cell(x, h)
    assert python_calls() == n0
    np.testing.assert_allclose(a.numpy(), ref_int8(cell, x, h), atol=1e-5, rtol=0)
    # a new scale tensor (not an in-place edit): the C++ path must not read the old one it still holds
    cell._buffers["weight_hh_scale"] = cell.weight_hh_scale * 2
    with torch.no_grad():
        b = cell(x, h)
    assert python_calls() > n0
    np.testing.assert_allclose(b.numpy(), ref_int8(cell, x, h), atol=1e-5, rtol=0)
    assert not torch.allclose(a, b, atol=1e-3)
    with torch.no_grad():
        n1 = python_calls()
        assert torch.equal(cell(x, h), b)  # the rebuilt plan, on the C++ path again
    assert python_calls() == n1
    x2 = x.clone().requires_grad_()
    with pytest.raises(RuntimeError, match="inference only"):
        cell(x2, h)  # the Python path's refusal
