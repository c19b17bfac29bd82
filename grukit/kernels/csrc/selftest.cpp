// C-level self-test of the kernel library, for builds that cannot run Python/torch (e.g. aarch64 under qemu in
// CI). Compiled together with gru_fused.cpp and gru_stream.cpp and a header of cases that .ci/selftest_cases.py
// wrote from the float64 reference (grukit.reference): compares the kernel's outputs with the reference's.
//
// Paths covered (no torch, so no BLAS pointer: every matrix product is the kernel's own code):
//   grukit_fwd_f32 / _f64, mode 1 (matrix-vector loop on packed weights) and mode 3 (the gate kernel,
//   reset_after=True), with and without biases, both reset placements;
//   grukit_cell_f32 (one step, own matrix-vector code);
//   grukit_step on the f32-generic path (the streaming step), all steps of each case;
//   grukit_step_i8 on the int8-generic path (int8 weights, inputs rounded to 8 bits), the first step.
// Exit status 0 when every comparison is within docs/conventions.md's tolerances (float32 1e-5, float64 1e-10).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

struct Case {
    int T, B, I, H, reset_after;
    const double *x, *w_ih, *w_hh, *b_ih, *b_hh, *h0, *out, *hn;
    const double *q_ih, *s_ih, *q_hh, *s_hh, *i8_h1;  // int8 weights, their scales, the int8 step's h1
};
#include GRUKIT_SELFTEST_CASES

extern "C" {
int grukit_abi_version();
const char* grukit_isa();
int grukit_fwd_f32(int, int, int, const float*, const float*, const float*, const float*, const int64_t*, int, int,
                   float*, float*, float*, float*, int, int, void*);
int grukit_fwd_f64(int, int, int, const double*, const double*, const double*, const double*, const int64_t*, int,
                   int, double*, double*, double*, double*, int, int, void*);
void grukit_cell_f32(int, int, int, const float*, const float*, const float*, const float*, const float*,
                     const float*, int, float*, float*, void*);
int grukit_step(const void*, int, const float*, const float*, float*, float*);
int grukit_step_i8(const void*, int, const float*, const float*, float*, float*);
}

struct StepDesc {
    int32_t L, I, H, path, reset_after;
    void* const* params;
};

static int g_fail = 0;

template <class T>
static void check(const char* what, int k, const std::vector<T>& got, const double* want, double tol) {
    double err = 0;
    for (size_t i = 0; i < got.size(); ++i) err = std::fmax(err, std::fabs((double)got[i] - want[i]));
    bool ok = err <= tol;
    if (!ok) g_fail = 1;
    std::printf("%-34s case %d  max|err| %.3g  %s\n", what, k, err, ok ? "ok" : "FAIL");
}

template <class T>
static std::vector<T> cvt(const double* p, size_t n) {
    return std::vector<T>(p, p + n);
}

// gi (T·B, 3H) = x W_ihᵀ + b_ih + (b_hh's r and z rows; all of b_hh for reset_after=False), as the Python side does
template <class T>
static std::vector<T> input_projection(const Case& c) {
    const int H = c.H, n = c.T * c.B;
    std::vector<T> gi((size_t)n * 3 * H);
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < 3 * H; ++j) {
            double s = c.b_ih[j] + ((j < 2 * H || !c.reset_after) ? c.b_hh[j] : 0.0);
            for (int i = 0; i < c.I; ++i) s += c.x[(size_t)r * c.I + i] * c.w_ih[(size_t)j * c.I + i];
            gi[(size_t)r * 3 * H + j] = (T)s;
        }
    return gi;
}

template <class T, class F>
static void run_forward(const Case& c, int k, int mode, F fwd, double tol, const char* name) {
    const int T_ = c.T, B = c.B, H = c.H;
    std::vector<T> gi = input_projection<T>(c), w_hh = cvt<T>(c.w_hh, (size_t)3 * H * H),
                   h0 = cvt<T>(c.h0, (size_t)B * H), bhn = cvt<T>(c.b_hh + 2 * H, H);
    std::vector<T> out((size_t)T_ * B * H), hn((size_t)B * H);
    int rc = fwd(T_, B, H, gi.data(), c.reset_after ? bhn.data() : nullptr, w_hh.data(), h0.data(), nullptr, 0,
                 c.reset_after, out.data(), hn.data(), nullptr, nullptr, 2, mode, nullptr);
    if (rc != 0) {
        std::printf("%s case %d: rc %d\n", name, k, rc);
        g_fail = 1;
        return;
    }
    check(name, k, out, c.out, tol);
    check(name, k, hn, c.hn, tol);
}

int main() {
    std::printf("grukit kernel self-test: ABI %d, ISA %s\n", grukit_abi_version(), grukit_isa());
    const int n = (int)(sizeof(kCases) / sizeof(kCases[0]));
    for (int k = 0; k < n; ++k) {
        const Case& c = kCases[k];
        const int B = c.B, I = c.I, H = c.H;
        run_forward<float>(c, k, 1, grukit_fwd_f32, 1e-5, "fwd f32 mode 1 (matvec)");
        run_forward<double>(c, k, 1, grukit_fwd_f64, 1e-10, "fwd f64 mode 1 (matvec)");
        if (c.reset_after) {
            run_forward<float>(c, k, 3, grukit_fwd_f32, 1e-5, "fwd f32 mode 3 (gate kernel)");
            run_forward<double>(c, k, 3, grukit_fwd_f64, 1e-10, "fwd f64 mode 3 (gate kernel)");
        }
        // one step with the cell: step 0 from h0
        std::vector<float> x0 = cvt<float>(c.x, (size_t)B * I), h0 = cvt<float>(c.h0, (size_t)B * H);
        std::vector<float> wi = cvt<float>(c.w_ih, (size_t)3 * H * I), wh = cvt<float>(c.w_hh, (size_t)3 * H * H);
        std::vector<float> bi = cvt<float>(c.b_ih, 3 * H), bh = cvt<float>(c.b_hh, 3 * H);
        std::vector<float> h1((size_t)B * H), scratch((size_t)7 * B * H);
        grukit_cell_f32(B, I, H, x0.data(), h0.data(), wi.data(), wh.data(), bi.data(), bh.data(), c.reset_after,
                        h1.data(), scratch.data(), nullptr);
        check("cell f32 (step 0)", k, h1, c.out, 1e-5);
        // the streaming step (f32-generic path = 1), every step
        void* params[4] = {wi.data(), wh.data(), bi.data(), bh.data()};
        StepDesc d{1, I, H, 1, c.reset_after, params};
        std::vector<float> h = h0, outs((size_t)c.T * B * H);
        for (int t = 0; t < c.T; ++t) {
            std::vector<float> xt = cvt<float>(c.x + (size_t)t * B * I, (size_t)B * I);
            if (grukit_step(&d, B, xt.data(), h.data(), h.data(), outs.data() + (size_t)t * B * H) != 0) {
                std::printf("step: path refused\n");
                g_fail = 1;
            }
        }
        check("step f32-generic (all steps)", k, outs, c.out, 1e-5);
        // int8 weights on the int8-generic path (code 1), the first step
        std::vector<int8_t> qi((size_t)3 * H * I), qh((size_t)3 * H * H);
        for (size_t i = 0; i < qi.size(); ++i) qi[i] = (int8_t)c.q_ih[i];
        for (size_t i = 0; i < qh.size(); ++i) qh[i] = (int8_t)c.q_hh[i];
        std::vector<float> si = cvt<float>(c.s_ih, 3 * H), sh = cvt<float>(c.s_hh, 3 * H), g((size_t)B * H);
        void* p8[6] = {qi.data(), qh.data(), si.data(), sh.data(), bi.data(), bh.data()};
        StepDesc d8{1, I, H, 1, c.reset_after, p8};
        if (grukit_step_i8(&d8, B, x0.data(), h0.data(), g.data(), nullptr) != 0) {
            std::printf("int8 step: path refused\n");
            g_fail = 1;
        }
        check("step int8-generic (step 0)", k, g, c.i8_h1, 1e-5);
    }
    std::printf("%s\n", g_fail ? "SELF-TEST FAILED" : "self-test passed");
    return g_fail;
}
