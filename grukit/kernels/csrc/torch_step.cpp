// The GRUCell streaming step's per-call checks and output allocation in C++ (a CPython extension built against
// torch's headers; grukit/kernels/torch_step.py builds it on first use where a compiler and the headers exist).
//
// It is not part of the kernel library (which builds without Python or torch headers): it calls that library's
// grukit_step (grukit_step_i8 for int8 weights) through a function pointer handed over at plan creation. One
// call of cell(plan, module, x, h) makes the checks that GRUCell.__call__ and StepPlan.cell make in Python, in
// the same order of meaning, and returns None whenever one fails (the caller then runs its Python path, which
// refuses bad input with its errors); it never raises for a call it declines. At H = 256, batch 1 the Python checks cost ~4 µs a step
// against a ~13 µs kernel (Zen 4): here they cost a fraction of a microsecond.
#include <Python.h>

#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstdint>
#include <vector>

namespace {

typedef int (*StepFn)(const void* desc, int B, const float* x, const float* h_in, float* h_out, float* y);

// Python objects read at every call (set once by init(); owned references)
struct Env {
    PyObject* is_tracing = nullptr;       // torch._C._is_tracing
    PyObject* any_autocast = nullptr;     // torch._C._is_any_autocast_enabled
    PyObject* dispatch_depth = nullptr;   // torch._C._len_torch_dispatch_stack
    PyObject* functorch_level = nullptr;  // torch._C._functorch.maybe_current_level
    PyObject* fwad = nullptr;             // torch.autograd.forward_ad (its _current_level)
    PyObject* onnx_globals = nullptr;     // .in_onnx_export
    PyObject* onnx_flags = nullptr;       // ._is_onnx_exporting
    PyObject* module_globals = nullptr;   // torch.nn.modules.module.__dict__ (the global hook dicts)
    PyObject* forward = nullptr;          // GRUCell.forward (a subclass overriding it runs the Python path)
    PyObject* calls = nullptr;            // grukit.kernels.fused.calls (a dict: "cell" counts the steps)
    PyObject* s_cell = nullptr;
    PyObject* s_level = nullptr;
    PyObject* s_in_export = nullptr;
    PyObject* s_exporting = nullptr;
    PyObject* s_forward = nullptr;
    PyObject* s_compiled = nullptr;
    PyObject* s_params = nullptr;
    PyObject* s_buffers = nullptr;
    PyObject* hook_names[4] = {};         // the module's own hook dicts
    PyObject* global_hook_names[4] = {};  // torch.nn.modules.module's
};
Env g_env;
bool g_ready = false;
PyObject* g_one = nullptr;

// gru_stream.cpp's and gru_int8.cpp's StepDesc (grukit.kernels.stream._Desc): sizes, the kernel path, 4 pointers
// per layer (int8 weights: 6, the scales after the weights)
struct StepDesc {
    int32_t L, I, H, path, reset_after;
    void* const* params;
};

// One plan: the weights' key (name, tensor object, version or -1, data pointer) and the native step's inputs,
// all owned here (the capsule outlives any Python object it was made from while a call runs without the GIL).
struct Key {
    std::vector<PyObject*> names, tensors;  // owned references (they keep the tensors' storage alive)
    std::vector<int64_t> versions;
    std::vector<const void*> ptrs;
};
struct Plan {
    Key params, buffers;  // the module's _parameters entries; int8 weights: their scales in _buffers
    std::vector<void*> native;  // the native order of the weight pointers (StepDesc.params)
    StepDesc desc;
    StepFn fn;
    PyObject* generation;  // the Python list whose item 0 set_path bumps; owned
    long gen;              // its value at plan creation
    int64_t I, H, max_b;
};

void destroy(Plan* p) {
    for (Key* k : {&p->params, &p->buffers}) {
        for (PyObject* o : k->names) Py_XDECREF(o);
        for (PyObject* o : k->tensors) Py_XDECREF(o);
    }
    Py_XDECREF(p->generation);
    delete p;
}

// a key from a tuple of (name, tensor, version or -1, data pointer) tuples; false (an error set) if malformed
bool read_key(PyObject* t, Key* k) {
    if (!PyTuple_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "plan: a key must be a tuple");
        return false;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); ++i) {
        PyObject* e = PyTuple_GET_ITEM(t, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 4 || !THPVariable_Check(PyTuple_GET_ITEM(e, 1))) {
            PyErr_SetString(PyExc_TypeError, "plan: key entries are (name, tensor, version, pointer)");
            return false;
        }
        Py_INCREF(PyTuple_GET_ITEM(e, 0));
        Py_INCREF(PyTuple_GET_ITEM(e, 1));
        k->names.push_back(PyTuple_GET_ITEM(e, 0));
        k->tensors.push_back(PyTuple_GET_ITEM(e, 1));
        k->versions.push_back(PyLong_AsLongLong(PyTuple_GET_ITEM(e, 2)));
        k->ptrs.push_back(PyLong_AsVoidPtr(PyTuple_GET_ITEM(e, 3)));
        if (PyErr_Occurred()) return false;
    }
    return true;
}

// every entry of the key still holds: the same object registered under its name in d, the same data pointer and
// version; with grad, none requires grad
bool key_holds(const Key& k, PyObject* d, bool grad) {
    for (size_t i = 0; i < k.names.size(); ++i) {
        PyObject* cur = PyDict_GetItemWithError(d, k.names[i]);
        if (cur != k.tensors[i]) {
            PyErr_Clear();
            return false;
        }
        const at::Tensor& w = THPVariable_Unpack(cur);
        if (w.const_data_ptr() != k.ptrs[i] || (k.versions[i] >= 0 && (int64_t)w._version() != k.versions[i]) ||
            (grad && w.requires_grad()))
            return false;
    }
    return true;
}
void plan_free(PyObject* capsule) {
    auto* p = static_cast<Plan*>(PyCapsule_GetPointer(capsule, "grukit.torch_step.Plan"));
    if (p) destroy(p);
}

// a new reference's truth, consumed; an error (null) counts as "yes", so the Python path decides
inline bool truthy(PyObject* r) {
    if (!r) {
        PyErr_Clear();
        return true;
    }
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t != 0;
}
// a builtin called with no arguments is truthy; an attribute is truthy
inline bool call_true(PyObject* f) { return truthy(PyObject_CallNoArgs(f)); }
inline bool attr_true(PyObject* o, PyObject* name) { return truthy(PyObject_GetAttr(o, name)); }
// a dict entry that is an empty dict (hooks registered make it non-empty; missing or not a dict: "no")
inline bool empty_dict_item(PyObject* d, PyObject* key) {
    PyObject* v = PyDict_GetItemWithError(d, key);  // borrowed
    if (!v) {
        PyErr_Clear();
        return false;
    }
    return PyDict_Check(v) && PyDict_GET_SIZE(v) == 0;
}

// Nothing captures or transforms this call (grukit.kernels.stream.eager_ok, but for torch.compiler.is_compiling,
// which the caller checks first).
bool eager_ok() {
    const Env& e = g_env;
    if (call_true(e.is_tracing) || call_true(e.any_autocast) || call_true(e.dispatch_depth)) return false;
    PyObject* lvl = PyObject_CallNoArgs(e.functorch_level);
    if (!lvl) {
        PyErr_Clear();
        return false;
    }
    const bool transform = lvl != Py_None;
    Py_DECREF(lvl);
    if (transform) return false;
    PyObject* fl = PyObject_GetAttr(e.fwad, e.s_level);
    if (!fl) {
        PyErr_Clear();
        return false;
    }
    const long level = PyLong_Check(fl) ? PyLong_AsLong(fl) : 0;
    Py_DECREF(fl);
    if (level >= 0) return false;
    return !(attr_true(e.onnx_globals, e.s_in_export) || attr_true(e.onnx_flags, e.s_exporting));
}

// nn.Module.__call__ would call forward(x, h) unchanged: no hooks anywhere, not compiled, forward not replaced.
// d: the module's __dict__.
bool plain_call(PyObject* module, PyObject* d) {
    const Env& e = g_env;
    if (_PyType_Lookup(Py_TYPE(module), e.s_forward) != e.forward) return false;
    for (PyObject* n : e.hook_names)
        if (!empty_dict_item(d, n)) return false;
    PyObject* compiled = PyDict_GetItemWithError(d, e.s_compiled);  // set on the instance by module.compile()
    if (!compiled) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return false;
        }
        compiled = _PyType_Lookup(Py_TYPE(module), e.s_compiled);  // else nn.Module's None
    }
    if (compiled != Py_None) return false;
    if (PyDict_GetItemWithError(d, e.s_forward)) return false;  // an instance attribute "forward"
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return false;
    }
    for (PyObject* n : e.global_hook_names)
        if (!empty_dict_item(e.module_globals, n)) return false;
    return true;
}

inline bool plain_float_cpu(PyObject* o) {
    if (Py_TYPE(o) != (PyTypeObject*)THPVariableClass) return false;  // type(o) is torch.Tensor
    const at::Tensor& t = THPVariable_Unpack(o);
    return t.scalar_type() == at::kFloat && t.layout() == at::kStrided && t.device().is_cpu() &&
           t.dim() == 2 && t.is_contiguous();
}

// init(env: tuple) -> None: the objects of Env in its field order
PyObject* init(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "init expects 10 objects");
        return nullptr;
    }
    Env& e = g_env;
    PyObject** slots[] = {&e.is_tracing, &e.any_autocast, &e.dispatch_depth, &e.functorch_level, &e.fwad,
                          &e.onnx_globals, &e.onnx_flags, &e.module_globals, &e.forward, &e.calls};
    for (int i = 0; i < 10; ++i) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    if (!PyDict_Check(e.module_globals) || !PyDict_Check(e.calls)) {
        PyErr_SetString(PyExc_TypeError, "init: module globals and calls must be dicts");
        return nullptr;
    }
    e.s_cell = PyUnicode_InternFromString("cell");
    e.s_level = PyUnicode_InternFromString("_current_level");
    e.s_in_export = PyUnicode_InternFromString("in_onnx_export");
    e.s_exporting = PyUnicode_InternFromString("_is_onnx_exporting");
    e.s_forward = PyUnicode_InternFromString("forward");
    e.s_compiled = PyUnicode_InternFromString("_compiled_call_impl");
    e.s_params = PyUnicode_InternFromString("_parameters");
    e.s_buffers = PyUnicode_InternFromString("_buffers");
    const char* own[4] = {"_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks"};
    const char* glob[4] = {"_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks",
                           "_global_backward_hooks"};
    for (int i = 0; i < 4; ++i) {
        e.hook_names[i] = PyUnicode_InternFromString(own[i]);
        e.global_hook_names[i] = PyUnicode_InternFromString(glob[i]);
    }
    if (!g_one) g_one = PyLong_FromLong(1);
    g_ready = true;
    Py_RETURN_NONE;
}

// plan(key, buffer_key, native, fn_addr, generation_list, I, H, max_b, L, path, reset_after) -> capsule.
// key / buffer_key: tuples of (name, tensor, version or -1, data pointer) for the module's _parameters and
// _buffers entries the step reads; native: the step's pointers in the kernel's order (None: null), 4 a layer
// (6 with buffers: int8 weights' scales).
PyObject* make_plan(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 11 || !PyTuple_Check(args[2]) || !PyList_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "plan(key, buffer_key, native, fn, generation, I, H, max_b, L, path, reset_after)");
        return nullptr;
    }
    auto* p = new Plan();
    if (!read_key(args[0], &p->params) || !read_key(args[1], &p->buffers)) {
        destroy(p);
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args[2]); ++i) {
        PyObject* o = PyTuple_GET_ITEM(args[2], i);
        p->native.push_back(o == Py_None ? nullptr : PyLong_AsVoidPtr(o));
    }
    p->fn = (StepFn)PyLong_AsVoidPtr(args[3]);
    Py_INCREF(args[4]);
    p->generation = args[4];
    p->gen = PyLong_AsLong(PyList_GET_ITEM(args[4], 0));
    p->I = PyLong_AsLongLong(args[5]);
    p->H = PyLong_AsLongLong(args[6]);
    p->max_b = PyLong_AsLongLong(args[7]);
    p->desc.L = (int32_t)PyLong_AsLong(args[8]);
    p->desc.I = (int32_t)p->I;
    p->desc.H = (int32_t)p->H;
    p->desc.path = (int32_t)PyLong_AsLong(args[9]);
    p->desc.reset_after = (int32_t)PyLong_AsLong(args[10]);
    p->desc.params = p->native.data();
    const size_t per = p->buffers.names.empty() ? 4 : 6;
    if (PyErr_Occurred() || !p->fn || p->native.size() != per * p->desc.L) {
        destroy(p);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "plan: a null function or not 4 (6) pointers a layer");
        return nullptr;
    }
    return PyCapsule_New(p, "grukit.torch_step.Plan", plan_free);
}

// cell(plan, module, x, h) -> a fresh h' (B, H), or None when the call is not one this path takes
PyObject* cell_impl(PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 4 || !g_ready) Py_RETURN_NONE;
    auto* p = static_cast<Plan*>(PyCapsule_GetPointer(args[0], "grukit.torch_step.Plan"));
    if (!p) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *module = args[1], *xo = args[2], *ho = args[3];
    if (!plain_float_cpu(xo) || !plain_float_cpu(ho)) Py_RETURN_NONE;
    const at::Tensor& x = THPVariable_Unpack(xo);
    const at::Tensor& h = THPVariable_Unpack(ho);
    const int64_t B = x.size(0);
    if (x.size(1) != p->I || B <= 0 || B > p->max_b || h.size(0) != B || h.size(1) != p->H) Py_RETURN_NONE;
    if (PyLong_AsLong(PyList_GET_ITEM(p->generation, 0)) != p->gen) {  // set_path since the plan was built
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    struct Ref {  // an owned reference, released on every return
        PyObject* o;
        ~Ref() { Py_XDECREF(o); }
    } dict{PyObject_GenericGetDict(module, nullptr)};
    if (!dict.o || !PyDict_Check(dict.o)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (!plain_call(module, dict.o) || !eager_ok()) Py_RETURN_NONE;
    // the weights: the same tensor objects still registered, same data pointer and version
    PyObject* params = PyDict_GetItemWithError(dict.o, g_env.s_params);
    PyObject* buffers = params ? PyDict_GetItemWithError(dict.o, g_env.s_buffers) : nullptr;
    if (!params || !PyDict_Check(params) || !buffers || !PyDict_Check(buffers)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const bool grad = at::GradMode::is_enabled();
    if (grad && (x.requires_grad() || h.requires_grad())) Py_RETURN_NONE;
    if (!key_holds(p->params, params, grad) || !key_holds(p->buffers, buffers, grad)) Py_RETURN_NONE;
    at::Tensor out = at::empty({B, p->H}, x.options());
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = p->fn(&p->desc, (int)B, x.const_data_ptr<float>(), h.const_data_ptr<float>(), out.mutable_data_ptr<float>(),
               nullptr);
    Py_END_ALLOW_THREADS
    if (rc != 0) Py_RETURN_NONE;
    // fused.calls["cell"] += 1
    PyObject* c = PyDict_GetItemWithError(g_env.calls, g_env.s_cell);
    if (c && PyLong_Check(c)) {
        PyObject* c1 = PyNumber_Add(c, g_one);
        if (c1) PyDict_SetItem(g_env.calls, g_env.s_cell, c1), Py_DECREF(c1);
    }
    PyErr_Clear();
    return THPVariable_Wrap(std::move(out));
}

PyObject* cell(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    try {
        return cell_impl(args, nargs);
    } catch (const std::exception&) {  // e.g. a weight swapped for a tensor without storage: the Python path
        PyErr_Clear();
        Py_RETURN_NONE;
    }
}

PyMethodDef methods[] = {
    {"init", (PyCFunction)(void (*)(void))init, METH_FASTCALL, "init(*objects): the Python state read per call"},
    {"plan", (PyCFunction)(void (*)(void))make_plan, METH_FASTCALL, "plan(...) -> a capsule for cell()"},
    {"cell", (PyCFunction)(void (*)(void))cell, METH_FASTCALL, "cell(plan, module, x, h) -> h' or None"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_grukit_torch_step", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__grukit_torch_step() { return PyModule_Create(&module_def); }
