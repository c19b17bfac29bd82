// Fused GRU recurrence on CPU: forward and backward loops for float32 and float64.
//
// Built into the wheel by CMakeLists.txt (one library per x86-64 ISA level, chosen at load time) or at first
// use by grukit/kernels/_build.py, and loaded with ctypes: every entry point takes raw pointers, so no torch
// or Python headers are needed to build it. OpenMP is optional (without it the loops run single-threaded).
//
// Convention (torch layout, gates stacked r, z, n; W_hh is (3H, H) row-major):
//   r = σ(gi_r + W_hr h [+ b_hr]),  z = σ(gi_z + W_hz h [+ b_hz])
//   reset_after:  n = tanh(gi_n + r ⊙ (W_hn h + b_hn))
//   otherwise:    n = tanh(gi_n + W_hn (r ⊙ h))            (b_hn folded into gi_n by the caller)
//   h' = n + z ⊙ (h − n)
// The caller computes gi = x W_ihᵀ + b_ih (+ the foldable parts of b_hh) for all steps with one GEMM.
//
// Per step the loop does one recurrent matrix product (two for reset_after=False) and one fused elementwise
// pass. Matrix products go either to the BLAS sgemm_/dgemm_ the caller hands us (torch's MKL; large
// batches) or to a hand-written matrix-vector kernel on weights packed once per call (small batches), in
// which case the whole time loop runs inside one OpenMP region with barriers between phases.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#else  // built without OpenMP (e.g. Apple clang): every parallel region runs on the calling thread
static inline int omp_get_thread_num() { return 0; }
static inline int omp_get_num_threads() { return 1; }
#endif

#include "gru_abi.h"
#include "gru_simd.h"

namespace {

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vfi __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(64)));
typedef int64_t vdi __attribute__((vector_size(64)));

template <class T> struct V;
template <> struct V<float> {
    typedef vf v;
    typedef vfi vi;
    enum { L = 16 };
};
template <> struct V<double> {
    typedef vd v;
    typedef vdi vi;
    enum { L = 8 };
};

template <class T> using vec = typename V<T>::v;

template <class T> static inline vec<T> bcast(T a) { return a - (vec<T>){}; }  // compiles to one broadcast
template <class T> static inline vec<T> ld(const T* p) {
    vec<T> r;
    std::memcpy(&r, p, sizeof(r));
    return r;
}
template <class T> static inline void st(T* p, vec<T> a) { std::memcpy(p, &a, sizeof(a)); }
template <class T> static inline vec<T> ldn(const T* p, int n) {  // first n lanes, the rest zero
    if (__builtin_expect(n == V<T>::L, 1)) return ld<T>(p);
    vec<T> r = bcast<T>(0);
    for (int i = 0; i < n; ++i) r[i] = p[i];
    return r;
}
template <class T> static inline void stn(T* p, vec<T> a, int n) {
    if (__builtin_expect(n == V<T>::L, 1)) return st<T>(p, a);
    for (int i = 0; i < n; ++i) p[i] = a[i];
}

static inline vf vexp(vf x) { return grukit_simd::exp16(x); }  // gru_simd.h
static inline vd vexp(vd x) {
    const vd hi = bcast<double>(708.0), lo = bcast<double>(-708.0);
    x = x > hi ? hi : x;
    x = x < lo ? lo : x;
    const vd magic = bcast<double>(6755399441055744.0);  // 1.5·2^52
    vd kf = (x * 1.4426950408889634074 + magic) - magic;
    vd r = x - kf * 6.93147180369123816490e-01 - kf * 1.90821492927058770002e-10;
    static const double c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                               1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,
                               1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,        0.5,
                               1.0,                1.0};
    vd p = bcast<double>(c[0]);
    for (int i = 1; i < 14; ++i) p = p * r + c[i];
    vdi ki = __builtin_convertvector(kf, vdi);
    vdi bits = (ki + 1023) << 52;
    vd scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}
template <class T> static inline vec<T> vsigmoid(vec<T> x) { return (T)1 / ((T)1 + vexp(-x)); }
template <class T> static inline vec<T> vtanh(vec<T> x) { return (T)1 - (T)2 / ((T)1 + vexp(x + x)); }

static inline void split(int n, int tid, int nt, int* lo, int* hi) {
    int q = n / nt, rem = n % nt;
    *lo = tid * q + (tid < rem ? tid : rem);
    *hi = *lo + q + (tid < rem ? 1 : 0);
}

// Fortran BLAS gemm (column-major), e.g. MKL's sgemm_/dgemm_ exported by libtorch_cpu.
typedef void (*sgemm_t)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                        const int*, const float*, const int*, const float*, float*, const int*);
typedef void (*dgemm_t)(const char*, const char*, const int*, const int*, const int*, const double*,
                        const double*, const int*, const double*, const int*, const double*, double*, const int*);

// MKL's packed-GEMM interface (cblas_sgemm_pack_get_size / _pack / _compute), when the caller found it:
// the recurrent weight is packed once per call instead of inside every per-step sgemm.
typedef size_t (*pack_size_t)(int ident, int m, int n, int k);
typedef void (*pack_t)(int layout, int ident, int trans, int m, int n, int k, float alpha, const float* src, int ld,
                       float* dest);
typedef void (*compute_t)(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                          const float* b, int ldb, float beta, float* c, int ldc);
static pack_size_t g_pack_size = nullptr;
static pack_t g_pack = nullptr;
static compute_t g_compute = nullptr;
enum { kColMajor = 102, kNoTrans = 111, kTrans = 112, kPacked = 151, kAMatrix = 161 };

template <class T> struct Gemm;
template <> struct Gemm<float> {
    typedef sgemm_t fn;
};
template <> struct Gemm<double> {
    typedef dgemm_t fn;
};

// Y (B × nout, row stride ldy) = X (B × nin, row stride ldx) · Mᵀ, with M(i, k) = src[i·rs + k·cs].
template <class T> struct Lin {
    enum { L = V<T>::L, NB = 4 * V<T>::L };
    const T* src;
    long rs, cs;
    bool transposed;  // M = Wᵀ for a row-major W (nin × nout) with row stride cs; else M row-major, stride rs
    int nout, nin, nblk;
    T* packed;  // [nblk][nin][NB], zero padded; null when the BLAS runs this product
    float* mkl;  // MKL-packed weight (float only), or null

    void init(const T* s, long r, long c, int no, int ni, bool tr) {
        src = s, rs = r, cs = c, nout = no, nin = ni, transposed = tr;
        nblk = (nout + NB - 1) / NB;
        packed = nullptr;
        mkl = nullptr;
    }
    // Pack for MKL's sgemm_compute with n = B columns; false (plain gemm then) when unavailable.
    bool pack_mkl(int B) {
        if (sizeof(T) != sizeof(float) || !g_pack_size || !g_pack || !g_compute || nout == 0 || nin == 0) return false;
        size_t bytes = g_pack_size(kAMatrix, nout, B, nin);
        if (bytes == 0) return false;
        mkl = (float*)std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!mkl) return false;
        int ld = transposed ? (int)cs : (int)rs;
        g_pack(kColMajor, kAMatrix, transposed ? kNoTrans : kTrans, nout, B, nin, 1.0f, (const float*)src, ld, mkl);
        return true;
    }
    bool pack() {
        size_t bytes = sizeof(T) * (size_t)nblk * (size_t)(nin > 0 ? nin : 1) * NB;
        bytes = (bytes + 63) / 64 * 64;
        packed = (T*)std::aligned_alloc(64, bytes);
        if (!packed) return false;
        for (int b = 0; b < nblk; ++b)
            for (int k = 0; k < nin; ++k) {
                T* dst = packed + ((size_t)b * nin + k) * NB;
                for (int j = 0; j < NB; ++j) {
                    int i = b * NB + j;
                    dst[j] = i < nout ? src[(long)i * rs + (long)k * cs] : (T)0;
                }
            }
        return true;
    }
    ~Lin() {
        std::free(packed);
        std::free(mkl);
    }

    // Hand-written matrix-vector products on the packed weights, blocks split among threads.
    void apply_packed(int B, const T* X, int ldx, T* Y, int ldy, int tid, int nt) const {
        int lo, hi;
        split(nblk, tid, nt, &lo, &hi);
        for (int blk = lo; blk < hi; ++blk) {
            const T* P = packed + (size_t)blk * nin * NB;
            int ncol = nout - blk * NB < NB ? nout - blk * NB : NB;
            for (int b = 0; b < B; ++b) {
                const T* x = X + (size_t)b * ldx;
                vec<T> a0 = bcast<T>(0), a1 = a0, a2 = a0, a3 = a0;
                const T* p = P;
                for (int k = 0; k < nin; ++k, p += NB) {
                    vec<T> xk = bcast<T>(x[k]);
                    a0 += ld<T>(p) * xk;
                    a1 += ld<T>(p + L) * xk;
                    a2 += ld<T>(p + 2 * L) * xk;
                    a3 += ld<T>(p + 3 * L) * xk;
                }
                T* y = Y + (size_t)b * ldy + blk * NB;
                if (ncol == NB) {
                    st<T>(y, a0), st<T>(y + L, a1), st<T>(y + 2 * L, a2), st<T>(y + 3 * L, a3);
                } else {
                    alignas(64) T tmp[NB];
                    st<T>(tmp, a0), st<T>(tmp + L, a1), st<T>(tmp + 2 * L, a2), st<T>(tmp + 3 * L, a3);
                    std::memcpy(y, tmp, sizeof(T) * ncol);
                }
            }
        }
    }
    void apply_blas(typename Gemm<T>::fn gemm, int B, const T* X, int ldx, T* Y, int ldy) const {
        const T one = 1, zero = 0;
        int m = nout, n = B, k = nin, lx = ldx, lyy = ldy;
        if (mkl) {
            g_compute(kColMajor, kPacked, kNoTrans, m, n, k, mkl, m, (const float*)X, lx, 0.0f, (float*)Y, lyy);
            return;
        }
        if (!transposed) {  // M row-major with ld rs: Yᵀ = M · Xᵀ
            int la = (int)rs;
            gemm("T", "N", &m, &n, &k, &one, src, &la, X, &lx, &zero, Y, &lyy);
        } else {  // M = Wᵀ with W (nin × nout) row-major, ld cs
            int la = (int)cs;
            gemm("N", "N", &m, &n, &k, &one, src, &la, X, &lx, &zero, Y, &lyy);
        }
    }
};

// Runs `nph` phases per step for T steps. Packed mode: one OpenMP region for the whole loop, a barrier
// after each phase. BLAS mode: matrix phases on the calling thread (the BLAS threads itself), elementwise
// phases in a short OpenMP region when there is enough work for several threads.
template <class S> static void run_loop(S& s, int T, int nph, bool packed, int nt) {
    // Threads synchronise at every phase of every step: only worth it when a step has enough work (on an
    // oversubscribed machine a barrier can cost a whole scheduler time slice).
    if (packed && (double)s.B * 3.0 * s.H * s.H < 98304.0) nt = 1;
    if (packed) {
        if (nt <= 1) {
            for (int step = 0; step < T; ++step)
                for (int k = 0; k < nph; ++k) s.phase(k, step, 0, 1);
            return;
        }
#pragma omp parallel num_threads(nt)
        {
            int tid = omp_get_thread_num(), n = omp_get_num_threads();
            for (int step = 0; step < T; ++step)
                for (int k = 0; k < nph; ++k) {
                    s.phase(k, step, tid, n);
#pragma omp barrier
                }
        }
        return;
    }
    for (int step = 0; step < T; ++step)
        for (int k = 0; k < nph; ++k) {
            if (s.is_matrix(k) || nt <= 1 || (long)s.B * s.H < 32768) {
                s.phase(k, step, 0, 1);
            } else {
#pragma omp parallel num_threads(nt)
                s.phase(k, step, omp_get_thread_num(), omp_get_num_threads());
            }
        }
}

// The reset_after gate backward for units j..j+n of one (step, batch row): dh (its carried and matrix parts) plus
// that row of dout (drow, or null) and of the previous state (hp_row) gives the pre-activation gradients dar,
// daz, dan (written to dgi's row) and dar, daz, dan ⊙ r (dgh's row), and dh ⊙ z is carried to the step before
// in dc. A masked-out step (valid false) writes zeros and carries dh unchanged. Shared by the elementwise pass
// (modes 1, 2) and the fused gate backward (mode 3); when `d` is given it receives the four rows' values for the
// bias sums. Returns valid.
template <class T>
static inline bool gate_backward_after(bool valid, vec<T> dh, const T* drow, const T* gates, const T* hp_row, T* dgi,
                                       T* dgh, T* dc, size_t row, int H, int j, int n, vec<T>* d = nullptr) {
    T* a = dgi + row * 3 * H;
    T* c = dgh + row * 3 * H;
    if (!valid) {
        vec<T> zero = bcast<T>(0);
        stn<T>(a + j, zero, n), stn<T>(a + H + j, zero, n), stn<T>(a + 2 * H + j, zero, n);
        stn<T>(c + j, zero, n), stn<T>(c + H + j, zero, n), stn<T>(c + 2 * H + j, zero, n);
        stn<T>(dc, dh, n);
        return false;
    }
    if (drow) dh += ldn<T>(drow + j, n);
    const T* g = gates + row * 4 * H;
    vec<T> r = ldn<T>(g + j, n), z = ldn<T>(g + H + j, n), nn = ldn<T>(g + 2 * H + j, n);
    vec<T> hn = ldn<T>(g + 3 * H + j, n), hp = ldn<T>(hp_row + j, n);
    vec<T> dz = dh * (hp - nn);
    vec<T> dan = dh * ((T)1 - z) * ((T)1 - nn * nn);
    vec<T> dar = dan * hn * r * ((T)1 - r);
    vec<T> daz = dz * z * ((T)1 - z);
    stn<T>(a + j, dar, n), stn<T>(a + H + j, daz, n), stn<T>(a + 2 * H + j, dan, n);
    stn<T>(c + j, dar, n), stn<T>(c + H + j, daz, n), stn<T>(c + 2 * H + j, dan * r, n);
    stn<T>(dc, dh * z, n);
    if (d) d[0] = dar, d[1] = daz, d[2] = dan, d[3] = dan * r;
    return true;
}

// Where backward finds the state before each step: the saved hprev (T, B, H), or, when the forward saved none
// (no lengths: every step's output is its new state), the output of the step before in the walk's direction,
// and h0 for the first step.
template <class T> struct Prev {
    const T *hprev, *out, *h0;
    int T_, B, H, reverse;
    const T* row(int t, int b) const {
        if (hprev) return hprev + ((size_t)t * B + b) * H;
        if (t == (reverse ? T_ - 1 : 0)) return h0 + (size_t)b * H;
        return out + ((size_t)(reverse ? t + 1 : t - 1) * B + b) * H;
    }
};

// The output gradient as the backward loops read it: row (t, b) of H contiguous values at p + t·st + b·sb (the
// strides may be 0: a gradient broadcast along steps or rows, e.g. from out.sum()); p null: no output gradient.
template <class T> struct Dout {
    const T* p;
    long st, sb;
    const T* row(int t, int b) const { return p ? p + (size_t)t * st + (size_t)b * sb : nullptr; }
};

template <class T> struct Common {
    enum { L = V<T>::L };
    int T_, B, H;
    Dout<T> dout;  // backward only
    const int64_t* lengths;
    int reverse;
    bool packed;
    typename Gemm<T>::fn gemm;
    int t_of(int step) const { return reverse ? T_ - 1 - step : step; }
    bool valid(int t, int b) const { return lengths == nullptr || t < lengths[b]; }
    // Elementwise work is split over (row, chunk of L columns) pairs.
    int nchunks() const { return (H + L - 1) / L; }
    void mm(const Lin<T>& lin, const T* X, int ldx, T* Y, int ldy, int tid, int nt) const {
        if (packed)
            lin.apply_packed(B, X, ldx, Y, ldy, tid, nt);
        else
            lin.apply_blas(gemm, B, X, ldx, Y, ldy);
    }
};

// ------------------------------------------------------------------------------------------------ forward
template <class T> struct Fwd : Common<T> {
    using Common<T>::L;
    const T *gi, *bhn;
    T *out, *h, *hprev, *gates, *gh, *scratch;  // h: the running state (B, H); gates (T, B, 4H) or scratch
    bool reset_after, save;
    Lin<T> w_all, w_rz, w_n;

    bool is_matrix(int k) const { return (k & 1) == 0; }
    void phase(int k, int step, int tid, int nt) {
        const int H = this->H, B = this->B;
        int t = this->t_of(step);
        if (reset_after) {
            if (k == 0) this->mm(w_all, h, H, gh, 3 * H, tid, nt);
            else ew_after(t, tid, nt);
        } else {
            if (k == 0) this->mm(w_rz, h, H, gh, 3 * H, tid, nt);
            else if (k == 1) ew_rz(t, tid, nt);
            else if (k == 2) this->mm(w_n, gslot(t, 0) + 3 * H, 4 * H, gh + 2 * H, 3 * H, tid, nt);
            else ew_n(t, tid, nt);
        }
        (void)B;
    }
    // gates/hprev rows of step t (the per-call scratch when nothing is saved)
    T* gslot(int t, int b) const { return save ? gates + ((size_t)t * this->B + b) * 4 * this->H : scratch + (size_t)b * 4 * this->H; }

    void ew_after(int t, int tid, int nt) {
        const int H = this->H, nc = this->nchunks();
        int lo, hi;
        split(this->B * nc, tid, nt, &lo, &hi);
        for (int w = lo; w < hi; ++w) {
            int b = w / nc, j = (w % nc) * L, n = H - j < L ? H - j : L;
            const T* g = gi + ((size_t)t * this->B + b) * 3 * H;
            const T* q = gh + (size_t)b * 3 * H;
            T* hb = h + (size_t)b * H + j;
            T* o = out + ((size_t)t * this->B + b) * H + j;
            T* gs = gslot(t, b);
            vec<T> hv = ldn<T>(hb, n);
            if (hprev) stn<T>(hprev + ((size_t)t * this->B + b) * H + j, hv, n);
            if (!this->valid(t, b)) {
                stn<T>(o, bcast<T>(0), n);
                if (save) {
                    vec<T> zero = bcast<T>(0);
                    stn<T>(gs + j, zero, n), stn<T>(gs + H + j, zero, n), stn<T>(gs + 2 * H + j, zero, n);
                    stn<T>(gs + 3 * H + j, zero, n);
                }
                continue;
            }
            vec<T> r = vsigmoid<T>(ldn<T>(g + j, n) + ldn<T>(q + j, n));
            vec<T> z = vsigmoid<T>(ldn<T>(g + H + j, n) + ldn<T>(q + H + j, n));
            vec<T> hn = ldn<T>(q + 2 * H + j, n);
            if (bhn) hn += ldn<T>(bhn + j, n);
            vec<T> nn = vtanh<T>(ldn<T>(g + 2 * H + j, n) + r * hn);
            vec<T> hnew = nn + z * (hv - nn);
            stn<T>(o, hnew, n);
            stn<T>(hb, hnew, n);
            if (save) stn<T>(gs + j, r, n), stn<T>(gs + H + j, z, n), stn<T>(gs + 2 * H + j, nn, n), stn<T>(gs + 3 * H + j, hn, n);
        }
    }
    void ew_rz(int t, int tid, int nt) {  // reset_after=False, first pass: r, z and r ⊙ h
        const int H = this->H, nc = this->nchunks();
        int lo, hi;
        split(this->B * nc, tid, nt, &lo, &hi);
        for (int w = lo; w < hi; ++w) {
            int b = w / nc, j = (w % nc) * L, n = H - j < L ? H - j : L;
            const T* g = gi + ((size_t)t * this->B + b) * 3 * H;
            const T* q = gh + (size_t)b * 3 * H;
            T* gs = gslot(t, b);
            vec<T> hv = ldn<T>(h + (size_t)b * H + j, n);
            if (hprev) stn<T>(hprev + ((size_t)t * this->B + b) * H + j, hv, n);
            if (!this->valid(t, b)) {  // r = 0 makes r ⊙ h = 0; the second pass keeps the state
                vec<T> zero = bcast<T>(0);
                stn<T>(gs + j, zero, n), stn<T>(gs + H + j, zero, n), stn<T>(gs + 3 * H + j, zero, n);
                continue;
            }
            vec<T> r = vsigmoid<T>(ldn<T>(g + j, n) + ldn<T>(q + j, n));
            vec<T> z = vsigmoid<T>(ldn<T>(g + H + j, n) + ldn<T>(q + H + j, n));
            stn<T>(gs + j, r, n), stn<T>(gs + H + j, z, n), stn<T>(gs + 3 * H + j, r * hv, n);
        }
    }
    void ew_n(int t, int tid, int nt) {  // reset_after=False, second pass: n and the new state
        const int H = this->H, nc = this->nchunks();
        int lo, hi;
        split(this->B * nc, tid, nt, &lo, &hi);
        for (int w = lo; w < hi; ++w) {
            int b = w / nc, j = (w % nc) * L, n = H - j < L ? H - j : L;
            const T* g = gi + ((size_t)t * this->B + b) * 3 * H;
            const T* q = gh + (size_t)b * 3 * H;
            T* gs = gslot(t, b);
            T* hb = h + (size_t)b * H + j;
            T* o = out + ((size_t)t * this->B + b) * H + j;
            if (!this->valid(t, b)) {
                stn<T>(o, bcast<T>(0), n);
                if (save) stn<T>(gs + 2 * H + j, bcast<T>(0), n);
                continue;
            }
            vec<T> hv = ldn<T>(hb, n);
            vec<T> z = ldn<T>(gs + H + j, n);
            vec<T> nn = vtanh<T>(ldn<T>(g + 2 * H + j, n) + ldn<T>(q + 2 * H + j, n));
            vec<T> hnew = nn + z * (hv - nn);
            stn<T>(o, hnew, n);
            stn<T>(hb, hnew, n);
            stn<T>(gs + 2 * H + j, nn, n);
        }
    }
};

// ----------------------------------------------------------------------------------------------- backward
template <class T> struct Bwd : Common<T> {
    using Common<T>::L;
    Prev<T> prev;
    const T* gates;
    T *dgi, *dgh, *dhc, *mv, *drh;  // dhc: direct part of dh; mv: matrix part (B, H); drh (B, H)
    bool reset_after;
    // Bias gradients (db non-null): each thread sums its rows' dgi (and dgh) values of a step into its own dbs
    // slot in T, then adds them into its dbt slot (double) at the end of the step; backward() adds the slots.
    double *db, *dbt;  // db (4H): dar, daz, dan, and dan ⊙ r (reset_after) summed; dbt: nthreads × 4H
    T* dbs;            // nthreads × (4H + L)
    int nslots;
    inline void addb(T* acc, int o, int n, vec<T> v) const { stn<T>(acc + o, ldn<T>(acc + o, n) + v, n); }
    T* sums(int tid) const { return db ? dbs + (size_t)tid * (4 * this->H + L) : nullptr; }
    void flush(int tid) const {
        if (!db) return;
        T* a = sums(tid);
        double* d = dbt + (size_t)tid * 4 * this->H;
        for (int i = 0; i < 4 * this->H; ++i) d[i] += a[i], a[i] = 0;
    }
    Lin<T> wt_all, wt_rz, wt_n;

    bool is_matrix(int k) const { return (k & 1) == 1; }
    void phase(int k, int step, int tid, int nt) {
        const int H = this->H;
        int t = this->t_of(T_last() - step);
        if (reset_after) {
            if (k == 0) ew_after(t, tid, nt);
            else this->mm(wt_all, dgh + (size_t)t * this->B * 3 * H, 3 * H, mv, H, tid, nt);
        } else {
            if (k == 0) ew_n(t, tid, nt);
            else if (k == 1) this->mm(wt_n, dgi + (size_t)t * this->B * 3 * H + 2 * H, 3 * H, drh, H, tid, nt);
            else if (k == 2) ew_rz(t, tid, nt);
            else this->mm(wt_rz, dgi + (size_t)t * this->B * 3 * H, 3 * H, mv, H, tid, nt);
        }
    }
    int T_last() const { return this->T_ - 1; }

    void ew_after(int t, int tid, int nt) {
        const int H = this->H, nc = this->nchunks();
        int lo, hi;
        split(this->B * nc, tid, nt, &lo, &hi);
        T* acc = sums(tid);
        for (int w = lo; w < hi; ++w) {
            int b = w / nc, j = (w % nc) * L, n = H - j < L ? H - j : L;
            size_t row = (size_t)t * this->B + b;
            T* dc = dhc + (size_t)b * H + j;
            vec<T> dh = ldn<T>(dc, n) + ldn<T>(mv + (size_t)b * H + j, n);
            vec<T> d[4];
            if (gate_backward_after<T>(this->valid(t, b), dh, this->dout.row(t, b), gates, prev.row(t, b), dgi, dgh,
                                       dc, row, H, j, n, d) &&
                acc)
                addb(acc, j, n, d[0]), addb(acc, H + j, n, d[1]), addb(acc, 2 * H + j, n, d[2]),
                    addb(acc, 3 * H + j, n, d[3]);
        }
        flush(tid);
    }
    void ew_n(int t, int tid, int nt) {  // reset_after=False, first pass: everything but the reset gate
        const int H = this->H, nc = this->nchunks();
        int lo, hi;
        split(this->B * nc, tid, nt, &lo, &hi);
        T* acc = sums(tid);
        for (int w = lo; w < hi; ++w) {
            int b = w / nc, j = (w % nc) * L, n = H - j < L ? H - j : L;
            size_t row = (size_t)t * this->B + b;
            T* dc = dhc + (size_t)b * H + j;
            vec<T> dh = ldn<T>(dc, n) + ldn<T>(mv + (size_t)b * H + j, n);
            T* a = dgi + row * 3 * H;
            if (!this->valid(t, b)) {
                vec<T> zero = bcast<T>(0);
                stn<T>(a + j, zero, n), stn<T>(a + H + j, zero, n), stn<T>(a + 2 * H + j, zero, n);
                stn<T>(dc, dh, n);
                continue;
            }
            if (const T* dr = this->dout.row(t, b)) dh += ldn<T>(dr + j, n);
            const T* g = gates + row * 4 * H;
            vec<T> z = ldn<T>(g + H + j, n), nn = ldn<T>(g + 2 * H + j, n);
            vec<T> hp = ldn<T>(prev.row(t, b) + j, n);
            vec<T> dz = dh * (hp - nn);
            vec<T> dan = dh * ((T)1 - z) * ((T)1 - nn * nn);
            vec<T> daz = dz * z * ((T)1 - z);
            stn<T>(a + H + j, daz, n), stn<T>(a + 2 * H + j, dan, n);
            stn<T>(dc, dh * z, n);
            if (acc) addb(acc, H + j, n, daz), addb(acc, 2 * H + j, n, dan);
        }
    }
    void ew_rz(int t, int tid, int nt) {  // reset_after=False, second pass: the reset gate, d(r ⊙ h)
        const int H = this->H, nc = this->nchunks();
        int lo, hi;
        split(this->B * nc, tid, nt, &lo, &hi);
        T* acc = sums(tid);
        for (int w = lo; w < hi; ++w) {
            int b = w / nc, j = (w % nc) * L, n = H - j < L ? H - j : L;
            if (!this->valid(t, b)) continue;
            size_t row = (size_t)t * this->B + b;
            T* dc = dhc + (size_t)b * H + j;
            const T* g = gates + row * 4 * H;
            vec<T> r = ldn<T>(g + j, n), hp = ldn<T>(prev.row(t, b) + j, n);
            vec<T> d = ldn<T>(drh + (size_t)b * H + j, n);
            stn<T>(dc, ldn<T>(dc, n) + d * r, n);
            vec<T> dar = d * hp * r * ((T)1 - r);
            stn<T>(dgi + row * 3 * H + j, dar, n);
            if (acc) addb(acc, j, n, dar);
        }
        flush(tid);
    }
};

template <class T> static T* alloc(size_t n) {
    size_t bytes = (sizeof(T) * (n ? n : 1) + 63) / 64 * 64;
    T* p = (T*)std::aligned_alloc(64, bytes);
    if (p) std::memset(p, 0, bytes);
    return p;
}

// ------------------------------------------------------------------ forward, mode 3: GEMM + gates in one pass
// reset_after only, batches above the matrix-vector range. W_hh is packed once per call into panels of U = one
// vector's worth of hidden units with their three gate rows side by side: P[p][k][g][u] = W_hh[g·H + p·U + u][k]
// (zero beyond H). A tile of MR batch rows × one panel accumulates gh_r, gh_z, gh_n for those U units in 3·MR
// registers over k, then applies the gates right there (no gh buffer, no second pass over memory) and writes
// the new state into the other of two state buffers (other tiles still read the old one this step).
template <class T> struct Fused3 {
    enum { L = V<T>::L, U = V<T>::L, MRMAX = 8 };
    int T_, B, H, np;
    const T *gi, *bhn, *P;
    const int64_t* lengths;
    int reverse;
    T *out, *hprev, *gates, *hA, *hB;
    bool save;

    template <int MR> void tile(int t, int p, int b0, const T* hc, T* hx) const {
        vec<T> acc[MR][3];
        for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = acc[r][2] = bcast<T>(0);
        const T* w = P + (size_t)p * H * 3 * U;
        const T* x = hc + (size_t)b0 * H;
        for (int k = 0; k < H; ++k, w += 3 * U) {
            vec<T> w0 = ld<T>(w), w1 = ld<T>(w + L), w2 = ld<T>(w + 2 * L);
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                vec<T> xk = bcast<T>(x[(size_t)r * H + k]);
                acc[r][0] += w0 * xk, acc[r][1] += w1 * xk, acc[r][2] += w2 * xk;
            }
        }
        const int j = p * U, n = H - j < U ? H - j : U;
        for (int r = 0; r < MR; ++r) {
            const int b = b0 + r;
            const size_t row = (size_t)t * B + b;
            const T* g = gi + row * 3 * H;
            vec<T> hv = ldn<T>(hc + (size_t)b * H + j, n);
            if (hprev) stn<T>(hprev + row * H + j, hv, n);
            T* gs = save ? gates + row * 4 * H : nullptr;
            if (lengths && t >= lengths[b]) {
                stn<T>(out + row * H + j, bcast<T>(0), n);
                stn<T>(hx + (size_t)b * H + j, hv, n);
                if (save) {
                    vec<T> zero = bcast<T>(0);
                    stn<T>(gs + j, zero, n), stn<T>(gs + H + j, zero, n), stn<T>(gs + 2 * H + j, zero, n);
                    stn<T>(gs + 3 * H + j, zero, n);
                }
                continue;
            }
            vec<T> rg = vsigmoid<T>(ldn<T>(g + j, n) + acc[r][0]);
            vec<T> zg = vsigmoid<T>(ldn<T>(g + H + j, n) + acc[r][1]);
            vec<T> hn = acc[r][2];
            if (bhn) hn += ldn<T>(bhn + j, n);
            vec<T> nn = vtanh<T>(ldn<T>(g + 2 * H + j, n) + rg * hn);
            vec<T> hnew = nn + zg * (hv - nn);
            stn<T>(out + row * H + j, hnew, n);
            stn<T>(hx + (size_t)b * H + j, hnew, n);
            if (save) stn<T>(gs + j, rg, n), stn<T>(gs + H + j, zg, n), stn<T>(gs + 2 * H + j, nn, n), stn<T>(gs + 3 * H + j, hn, n);
        }
    }
    void step(int s, int tid, int nt) const {
        const int t = reverse ? T_ - 1 - s : s;
        const T* hc = (s & 1) ? hB : hA;
        T* hx = (s & 1) ? hA : hB;
        int lo, hi;
        split(np, tid, nt, &lo, &hi);
        for (int p = lo; p < hi; ++p) {
            int b0 = 0;
            for (; b0 + MRMAX <= B; b0 += MRMAX) tile<MRMAX>(t, p, b0, hc, hx);
            switch (B - b0) {
                case 7: tile<7>(t, p, b0, hc, hx); break;
                case 6: tile<6>(t, p, b0, hc, hx); break;
                case 5: tile<5>(t, p, b0, hc, hx); break;
                case 4: tile<4>(t, p, b0, hc, hx); break;
                case 3: tile<3>(t, p, b0, hc, hx); break;
                case 2: tile<2>(t, p, b0, hc, hx); break;
                case 1: tile<1>(t, p, b0, hc, hx); break;
                default: break;
            }
        }
    }
};

// P (np × H × 3U) from W_hh (3H × H row-major), zero padded past H
template <class T> static T* pack3(const T* w_hh, int H, int* np_out) {
    enum { U = V<T>::L };
    int np = (H + U - 1) / U;
    T* P = alloc<T>((size_t)np * H * 3 * U);
    if (!P) return nullptr;
    for (int p = 0; p < np; ++p)
        for (int k = 0; k < H; ++k) {
            T* d = P + ((size_t)p * H + k) * 3 * U;
            for (int g = 0; g < 3; ++g)
                for (int u = 0; u < U; ++u) {
                    int i = p * U + u;
                    d[g * U + u] = i < H ? w_hh[((size_t)g * H + i) * H + k] : (T)0;
                }
        }
    *np_out = np;
    return P;
}

template <class T>
static int forward3(int T_, int B, int H, const T* gi, const T* bhn, const T* w_hh, const T* h0,
                    const int64_t* lengths, int reverse, T* out, T* hn, T* hprev, T* gates, int nthreads) {
    Fused3<T> s;
    s.T_ = T_, s.B = B, s.H = H, s.gi = gi, s.bhn = bhn, s.lengths = lengths, s.reverse = reverse;
    s.out = out, s.hprev = hprev, s.gates = gates, s.save = gates != nullptr;
    T* P = pack3<T>(w_hh, H, &s.np);
    T* other = alloc<T>((size_t)B * H);
    if (!P || !other) {
        std::free(P), std::free(other);
        return 1;
    }
    s.P = P, s.hA = hn, s.hB = other;
    std::memcpy(hn, h0, sizeof(T) * (size_t)B * H);
    int nt = nthreads;
    if ((double)B * 3.0 * H * H < 98304.0 || s.np < 2) nt = 1;  // see run_loop: a barrier per step must pay
    if (nt <= 1) {
        for (int step = 0; step < T_; ++step) s.step(step, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int tid = omp_get_thread_num(), n = omp_get_num_threads();
            for (int step = 0; step < T_; ++step) {
                s.step(step, tid, n);
#pragma omp barrier
            }
        }
    }
    if (T_ & 1) std::memcpy(hn, other, sizeof(T) * (size_t)B * H);  // the last step wrote the second buffer
    std::free(P);
    std::free(other);
    return 0;
}

// ----------------------------------------------------------------- backward, mode 3: GEMM + gates in one pass
// reset_after only. Walking back, the product mv = dgh_t · W_hh (B × 3H · 3H × H) for a tile of MR batch rows ×
// NP panels of U hidden units is accumulated in registers, and its epilogue at once runs the elementwise pass of
// step t−1 for those rows and units (dh = direct part + mv + dout; it needs only those units' saved gates), so
// dh never goes through memory. Packed weight: Q[p][kk][u] = W_hh[kk][p·U + u] (zero beyond H).
template <class T> struct Bwd3 {
    enum { L = V<T>::L, U = V<T>::L, MRMAX = 8, NPMAX = 3 };
    int T_, B, H, np;
    const T *Q, *gates;
    Dout<T> dout;
    Prev<T> prev;
    const int64_t* lengths;
    int reverse;
    T *dgi, *dgh, *dhc, *dh0;
    double* db;  // (4H): the bias gradients dar, daz, dan, dan ⊙ r summed over steps and rows, or null
    T* dbs;      // (4H + U): this step's sums over the rows, in T; added into db (double) once per step
    // Each thread owns whole panels of units for the whole walk, so its sums need no synchronisation.
    inline void addb(int j, int n, vec<T> v) const { stn<T>(dbs + j, ldn<T>(dbs + j, n) + v, n); }
    void flush(int p_lo, int p_hi) const {  // db += dbs, dbs = 0 for the units of panels p_lo..p_hi−1
        const int j0 = p_lo * U, j1 = p_hi * U < H ? p_hi * U : H;
        for (int s4 = 0; s4 < 4; ++s4)
            for (int j = j0; j < j1; ++j) db[s4 * H + j] += dbs[s4 * H + j], dbs[s4 * H + j] = 0;
    }

    // the elementwise step at time t for row b, units j..j+n, with mvv the matrix part of dh
    inline void ew(int t, int b, int j, int n, vec<T> mvv) const {
        const int H = this->H;
        const size_t row = (size_t)t * B + b;
        T* dc = dhc + (size_t)b * H + j;
        vec<T> dh = ldn<T>(dc, n) + mvv;
        vec<T> d[4];
        if (!gate_backward_after<T>(!(lengths && t >= lengths[b]), dh, dout.row(t, b), gates, prev.row(t, b), dgi,
                                    dgh, dc, row, H, j, n, d))
            return;
        if (db) addb(j, n, d[0]), addb(H + j, n, d[1]), addb(2 * H + j, n, d[2]), addb(3 * H + j, n, d[3]);
    }
    // tile: rows b0..b0+MR, panels p0..p0+NP; dgh of time tsrc is the left factor; the epilogue runs the
    // elementwise step at time tdst (tdst < 0: the last product, dh0 = direct part + mv)
    template <int MR, int NP> void tile(int tsrc, int tdst, int p0, int b0) const {
        const int H = this->H, K = 3 * H;
        vec<T> acc[MR][NP];
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NP; ++c) acc[r][c] = bcast<T>(0);
        const T* x = dgh + ((size_t)tsrc * B + b0) * K;
        const size_t ps = (size_t)K * U;
        const T* q = Q + (size_t)p0 * ps;
        for (int k = 0; k < K; ++k, q += U) {
            vec<T> w[NP];
            for (int c = 0; c < NP; ++c) w[c] = ld<T>(q + c * ps);
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                vec<T> xk = bcast<T>(x[(size_t)r * K + k]);
                for (int c = 0; c < NP; ++c) acc[r][c] += w[c] * xk;
            }
        }
        for (int c = 0; c < NP; ++c) {
            const int j = (p0 + c) * U, n = H - j < U ? H - j : U;
            for (int r = 0; r < MR; ++r) {
                if (tdst >= 0) {
                    ew(tdst, b0 + r, j, n, acc[r][c]);
                } else {
                    T* d = dh0 + (size_t)(b0 + r) * H + j;
                    stn<T>(d, ldn<T>(dhc + (size_t)(b0 + r) * H + j, n) + acc[r][c], n);
                }
            }
        }
    }
    template <int NP> void rows(int tsrc, int tdst, int p0) const {
        int b0 = 0;
        for (; b0 + MRMAX <= B; b0 += MRMAX) tile<MRMAX, NP>(tsrc, tdst, p0, b0);
        switch (B - b0) {
            case 7: tile<7, NP>(tsrc, tdst, p0, b0); break;
            case 6: tile<6, NP>(tsrc, tdst, p0, b0); break;
            case 5: tile<5, NP>(tsrc, tdst, p0, b0); break;
            case 4: tile<4, NP>(tsrc, tdst, p0, b0); break;
            case 3: tile<3, NP>(tsrc, tdst, p0, b0); break;
            case 2: tile<2, NP>(tsrc, tdst, p0, b0); break;
            case 1: tile<1, NP>(tsrc, tdst, p0, b0); break;
            default: break;
        }
    }
    int t_of(int s) const { return reverse ? T_ - 1 - s : s; }
    // walk index w = 0..T_: w = 0 is the plain elementwise step at the last time; w ≥ 1 the product of the
    // time handled at w−1 fused with the elementwise step of the next time back (or dh0 at w = T_)
    void walk(int w, int tid, int nt) const {
        const int ng = (np + NPMAX - 1) / NPMAX;
        int lo, hi;
        split(ng, tid, nt, &lo, &hi);
        if (db && w > 0) flush(lo * NPMAX, hi * NPMAX < np ? hi * NPMAX : np);  // the sums of step w−1
        if (w == 0) {
            const int t = t_of(T_ - 1);
            for (int gp = lo; gp < hi; ++gp)
                for (int p = gp * NPMAX; p < np && p < (gp + 1) * NPMAX; ++p) {
                    const int j = p * U, n = H - j < U ? H - j : U;
                    for (int b = 0; b < B; ++b) ew(t, b, j, n, bcast<T>(0));
                }
            return;
        }
        const int tsrc = t_of(T_ - w), tdst = w < T_ ? t_of(T_ - 1 - w) : -1;
        for (int gp = lo; gp < hi; ++gp) {
            const int p0 = gp * NPMAX, left = np - p0;
            if (left >= 3) rows<3>(tsrc, tdst, p0);
            else if (left == 2) rows<2>(tsrc, tdst, p0);
            else rows<1>(tsrc, tdst, p0);
        }
    }
};

template <class T>
static int backward3(int T_, int B, int H, const T* w_hh, const int64_t* lengths, int reverse, Dout<T> dout,
                     const T* dhn, Prev<T> prev, const T* gates, T* dgi, T* dgh, T* dh0, double* db,
                     int nthreads) {
    enum { U = V<T>::L };
    Bwd3<T> s;
    s.T_ = T_, s.B = B, s.H = H, s.lengths = lengths, s.reverse = reverse, s.dout = dout, s.prev = prev;
    s.gates = gates, s.dgi = dgi, s.dgh = dgh, s.dh0 = dh0, s.db = db;
    s.np = (H + U - 1) / U;
    if (db) std::memset(db, 0, sizeof(double) * 4 * (size_t)H);
    T* dbs = db ? alloc<T>((size_t)4 * H + U) : nullptr;  // alloc zeroes
    s.dbs = dbs;
    const int K = 3 * H;
    T* Q = alloc<T>((size_t)s.np * K * U);
    T* dhc = alloc<T>((size_t)B * H);
    if (!Q || !dhc || (db && !dbs)) {
        std::free(Q), std::free(dhc), std::free(dbs);
        return 1;
    }
    for (int p = 0; p < s.np; ++p)
        for (int k = 0; k < K; ++k)
            for (int u = 0; u < U; ++u) {
                int i = p * U + u;
                Q[((size_t)p * K + k) * U + u] = i < H ? w_hh[(size_t)k * H + i] : (T)0;
            }
    if (dhn) std::memcpy(dhc, dhn, sizeof(T) * (size_t)B * H);
    s.Q = Q, s.dhc = dhc;
    int nt = nthreads;
    const int ng = (s.np + Bwd3<T>::NPMAX - 1) / Bwd3<T>::NPMAX;
    if ((double)B * 3.0 * H * H < 98304.0 || ng < 2) nt = 1;
    if (nt <= 1) {
        for (int w = 0; w <= T_; ++w) s.walk(w, 0, 1);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int tid = omp_get_thread_num(), n = omp_get_num_threads();
            for (int w = 0; w <= T_; ++w) {
                s.walk(w, tid, n);
#pragma omp barrier
            }
        }
    }
    std::free(Q);
    std::free(dhc);
    std::free(dbs);
    return 0;
}

// mode: 1 = packed matrix-vector kernel, 2 = BLAS (gemm must be non-null), 3 = the fused GEMM + gates
// kernel above (reset_after only)
template <class T>
static int forward(int T_, int B, int H, const T* gi, const T* bhn, const T* w_hh, const T* h0,
                   const int64_t* lengths, int reverse, int reset_after, T* out, T* hn, T* hprev, T* gates,
                   int nthreads, int mode, typename Gemm<T>::fn gemm) {
    if (mode == 3 && reset_after)
        return forward3<T>(T_, B, H, gi, bhn, w_hh, h0, lengths, reverse, out, hn, hprev, gates, nthreads);
    Fwd<T> s;
    s.T_ = T_, s.B = B, s.H = H, s.lengths = lengths, s.reverse = reverse;
    s.packed = mode == 1 || gemm == nullptr;
    s.gemm = gemm;
    s.gi = gi, s.bhn = bhn, s.out = out, s.h = hn, s.hprev = hprev, s.gates = gates;
    s.reset_after = reset_after != 0;
    s.save = gates != nullptr;
    std::memcpy(hn, h0, sizeof(T) * (size_t)B * H);
    s.w_all.init(w_hh, H, 1, 3 * H, H, false);
    s.w_rz.init(w_hh, H, 1, 2 * H, H, false);
    s.w_n.init(w_hh + (size_t)2 * H * H, H, 1, H, H, false);
    s.gh = alloc<T>((size_t)B * 3 * H);
    s.scratch = alloc<T>((size_t)B * 4 * H);
    bool ok = s.gh && s.scratch;
    if (ok && s.packed) ok = s.reset_after ? s.w_all.pack() : (s.w_rz.pack() && s.w_n.pack());
    if (ok && !s.packed) {
        if (s.reset_after) s.w_all.pack_mkl(B);
        else s.w_rz.pack_mkl(B), s.w_n.pack_mkl(B);
    }
    if (ok) run_loop(s, T_, s.reset_after ? 2 : 4, s.packed, nthreads);
    std::free(s.gh);
    std::free(s.scratch);
    return ok ? 0 : 1;
}

// dout: rows of H contiguous values, row (t, b) at dout + t·sdt + b·sdb (strides may be 0). db (4H doubles, may
// be null) receives the bias gradients: the sums over steps and rows of dar, daz, dan and (reset_after) dan ⊙ r.
template <class T>
static int backward(int T_, int B, int H, const T* w_hh, const int64_t* lengths, int reverse, int reset_after,
                    const T* dout, long sdt, long sdb, const T* dhn, const T* hprev, const T* out, const T* h0,
                    const T* gates, T* dgi, T* dgh, T* dh0, double* db, int nthreads, int mode,
                    typename Gemm<T>::fn gemm) {
    const Prev<T> prev{hprev, out, h0, T_, B, H, reverse};
    const Dout<T> drows{dout, sdt, sdb};
    if (mode == 3 && reset_after)
        return backward3<T>(T_, B, H, w_hh, lengths, reverse, drows, dhn, prev, gates, dgi, dgh, dh0, db,
                            nthreads);
    Bwd<T> s;
    s.T_ = T_, s.B = B, s.H = H, s.lengths = lengths, s.reverse = reverse;
    s.packed = mode == 1 || gemm == nullptr;
    s.gemm = gemm;
    s.dout = drows, s.prev = prev, s.gates = gates, s.dgi = dgi, s.dgh = dgh;
    s.db = db, s.nslots = nthreads > 1 ? nthreads : 1;
    s.reset_after = reset_after != 0;
    // dh (B × H) = dgh (B × 3H) · W_hh: M = W_hhᵀ, M(i, k) = w_hh[k·H + i]
    s.wt_all.init(w_hh, 1, H, H, 3 * H, true);
    s.wt_rz.init(w_hh, 1, H, H, 2 * H, true);
    s.wt_n.init(w_hh + (size_t)2 * H * H, 1, H, H, H, true);
    s.dhc = alloc<T>((size_t)B * H);
    s.mv = alloc<T>((size_t)B * H);
    s.drh = alloc<T>((size_t)B * H);
    s.dbs = db ? alloc<T>((size_t)s.nslots * (4 * H + V<T>::L)) : nullptr;  // alloc zeroes
    s.dbt = db ? alloc<double>((size_t)s.nslots * 4 * H) : nullptr;
    bool ok = s.dhc && s.mv && s.drh && (!db || (s.dbs && s.dbt));
    if (ok && dhn) std::memcpy(s.dhc, dhn, sizeof(T) * (size_t)B * H);
    if (ok && s.packed) ok = s.reset_after ? s.wt_all.pack() : (s.wt_rz.pack() && s.wt_n.pack());
    if (ok && !s.packed) {
        if (s.reset_after) s.wt_all.pack_mkl(B);
        else s.wt_rz.pack_mkl(B), s.wt_n.pack_mkl(B);
    }
    if (ok) {
        run_loop(s, T_, s.reset_after ? 2 : 4, s.packed, nthreads);
        for (size_t i = 0; i < (size_t)B * H; ++i) dh0[i] = s.dhc[i] + s.mv[i];
        if (db) {
            for (int i = 0; i < 4 * H; ++i) db[i] = 0;
            for (int k = 0; k < s.nslots; ++k)
                for (int i = 0; i < 4 * H; ++i) db[i] += s.dbt[(size_t)k * 4 * H + i];
        }
    }
    std::free(s.dhc);
    std::free(s.mv);
    std::free(s.drh);
    std::free(s.dbs);
    std::free(s.dbt);
    return ok ? 0 : 1;
}

// y (nout) = W (nout × nin, row stride ldw) · x (+ b): dot products on the unpacked weights, 4 rows at once.
template <class T> static void mv_rows(int nout, int nin, const T* W, int ldw, const T* x, const T* bias, T* y) {
    enum { L = V<T>::L };
    int i = 0;
    for (; i + 4 <= nout; i += 4) {
        const T *w0 = W + (size_t)i * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        vec<T> a0 = bcast<T>(0), a1 = a0, a2 = a0, a3 = a0;
        int k = 0;
        for (; k + L <= nin; k += L) {
            vec<T> xv = ld<T>(x + k);
            a0 += ld<T>(w0 + k) * xv, a1 += ld<T>(w1 + k) * xv, a2 += ld<T>(w2 + k) * xv, a3 += ld<T>(w3 + k) * xv;
        }
        if (k < nin) {
            int n = nin - k;
            vec<T> xv = ldn<T>(x + k, n);
            a0 += ldn<T>(w0 + k, n) * xv, a1 += ldn<T>(w1 + k, n) * xv, a2 += ldn<T>(w2 + k, n) * xv,
                a3 += ldn<T>(w3 + k, n) * xv;
        }
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int l = 0; l < L; ++l) s0 += a0[l], s1 += a1[l], s2 += a2[l], s3 += a3[l];
        y[i] = s0 + (bias ? bias[i] : 0), y[i + 1] = s1 + (bias ? bias[i + 1] : 0);
        y[i + 2] = s2 + (bias ? bias[i + 2] : 0), y[i + 3] = s3 + (bias ? bias[i + 3] : 0);
    }
    for (; i < nout; ++i) {
        const T* w = W + (size_t)i * ldw;
        T s = 0;
        for (int k = 0; k < nin; ++k) s += w[k] * x[k];
        y[i] = s + (bias ? bias[i] : 0);
    }
}

// One step without autograd (streaming): x (B, I), h (B, H) → out (B, H); out may alias h. scratch holds
// 7H per row. At batch 1 (or without a BLAS) dot products on the unpacked weights; else two GEMMs per step.
template <class T>
static void cell(int B, int I, int H, const T* x, const T* h, const T* w_ih, const T* w_hh, const T* b_ih,
                 const T* b_hh, int reset_after, T* out, T* scratch, typename Gemm<T>::fn gemm) {
    enum { L = V<T>::L };
    T* GI = scratch;                        // (B, 3H)
    T* GH = scratch + (size_t)B * 3 * H;    // (B, 3H)
    T* RH = scratch + (size_t)B * 6 * H;    // (B, H)
    const bool blas = gemm != nullptr && B > 1;
    const T one = 1, zero = 0;
    // y (B × n) = X (B × k, ld ldx) · Wᵀ (W n × k row-major, ld ldw) + bias
    auto lin = [&](int n, int k, const T* W, int ldw, const T* X, int ldx, const T* bias, T* Y, int ldy) {
        if (blas) {
            gemm("T", "N", &n, &B, &k, &one, W, &ldw, X, &ldx, &zero, Y, &ldy);
            if (bias)
                for (int b = 0; b < B; ++b)
                    for (int j = 0; j < n; ++j) Y[(size_t)b * ldy + j] += bias[j];
        } else {
            for (int b = 0; b < B; ++b) mv_rows<T>(n, k, W, ldw, X + (size_t)b * ldx, bias, Y + (size_t)b * ldy);
        }
    };
    lin(3 * H, I, w_ih, I, x, I, b_ih, GI, 3 * H);
    if (reset_after) {
        lin(3 * H, H, w_hh, H, h, H, b_hh, GH, 3 * H);
    } else {
        lin(2 * H, H, w_hh, H, h, H, b_hh, GH, 3 * H);
        for (int b = 0; b < B; ++b)
            for (int j = 0; j < H; j += L) {
                int n = H - j < L ? H - j : L;
                const T *gi = GI + (size_t)b * 3 * H, *gh = GH + (size_t)b * 3 * H;
                vec<T> r = vsigmoid<T>(ldn<T>(gi + j, n) + ldn<T>(gh + j, n));
                stn<T>(RH + (size_t)b * H + j, r * ldn<T>(h + (size_t)b * H + j, n), n);
            }
        lin(H, H, w_hh + (size_t)2 * H * H, H, RH, H, b_hh ? b_hh + 2 * H : nullptr, GH + 2 * H, 3 * H);
    }
    for (int b = 0; b < B; ++b) {
        const T *gi = GI + (size_t)b * 3 * H, *gh = GH + (size_t)b * 3 * H, *hb = h + (size_t)b * H;
        T* ob = out + (size_t)b * H;
        for (int j = 0; j < H; j += L) {
            int n = H - j < L ? H - j : L;
            vec<T> r = vsigmoid<T>(ldn<T>(gi + j, n) + ldn<T>(gh + j, n));
            vec<T> z = vsigmoid<T>(ldn<T>(gi + H + j, n) + ldn<T>(gh + H + j, n));
            vec<T> a = reset_after ? ldn<T>(gi + 2 * H + j, n) + r * ldn<T>(gh + 2 * H + j, n)
                                   : ldn<T>(gi + 2 * H + j, n) + ldn<T>(gh + 2 * H + j, n);
            vec<T> nn = vtanh<T>(a);
            vec<T> hv = ldn<T>(hb + j, n);
            stn<T>(ob + j, nn + z * (hv - nn), n);
        }
    }
}

}  // namespace

extern "C" {

int grukit_abi_version() { return GRUKIT_ABI_VERSION; }

// Whether the library runs its loops on OpenMP threads.
int grukit_has_openmp() {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

// The instruction-set level this library was compiled for (GRUKIT_ISA from the build, e.g. "x86-64-v3").
#ifndef GRUKIT_ISA
#define GRUKIT_ISA "unknown"
#endif
const char* grukit_isa() { return GRUKIT_ISA; }

// The best x86-64 level this CPU runs: 4, 3, 2, 1 (baseline x86-64), 0 on other architectures.
int grukit_cpu_level() {
#if defined(__x86_64__) && (defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__)))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    if (__builtin_cpu_supports("x86-64-v2")) return 2;
    return 1;
#elif defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

// Hand over MKL's packed-GEMM entry points (any may be null: plain gemm is used then).
void grukit_set_mkl_pack(void* size, void* pack, void* compute) {
    g_pack_size = (pack_size_t)size, g_pack = (pack_t)pack, g_compute = (compute_t)compute;
}

#define GRUKIT_DEFINE(SUF, T)                                                                                   \
    int grukit_fwd_##SUF(int T_, int B, int H, const T* gi, const T* bhn, const T* w_hh, const T* h0,         \
                         const int64_t* lengths, int reverse, int reset_after, T* out, T* hn, T* hprev,       \
                         T* gates, int nthreads, int mode, void* gemm) {                                     \
        return forward<T>(T_, B, H, gi, bhn, w_hh, h0, lengths, reverse, reset_after, out, hn, hprev, gates,  \
                          nthreads, mode, (Gemm<T>::fn)gemm);                                                 \
    }                                                                                                         \
    int grukit_bwd_##SUF(int T_, int B, int H, const T* w_hh, const int64_t* lengths, int reverse,             \
                         int reset_after, const T* dout, long sdt, long sdb, const T* dhn, const T* hprev,     \
                         const T* out, const T* h0, const T* gates, T* dgi, T* dgh, T* dh0, double* db,        \
                         int nthreads, int mode, void* gemm) {                                                \
        return backward<T>(T_, B, H, w_hh, lengths, reverse, reset_after, dout, sdt, sdb, dhn, hprev, out, h0,    \
                           gates, dgi, dgh, dh0, db, nthreads, mode, (Gemm<T>::fn)gemm);                       \
    }                                                                                                         \
    void grukit_cell_##SUF(int B, int I, int H, const T* x, const T* h, const T* w_ih, const T* w_hh,         \
                           const T* b_ih, const T* b_hh, int reset_after, T* out, T* scratch, void* gemm) {  \
        cell<T>(B, I, H, x, h, w_ih, w_hh, b_ih, b_hh, reset_after, out, scratch, (Gemm<T>::fn)gemm);         \
    }                                                                                                         \
    /* Streaming: one step of an L-layer unidirectional GRU, state h (L, B, H) updated in place; params     \
       holds 4 pointers per layer (w_ih, w_hh, b_ih, b_hh; biases may be null). */                            \
    void grukit_stream_##SUF(int L, int B, int I, int H, const T* x, T* h, void* const* params,               \
                             int reset_after, T* scratch, void* gemm) {                                       \
        const T* in = x;                                                                                      \
        int in_size = I;                                                                                      \
        for (int l = 0; l < L; ++l) {                                                                         \
            T* hl = h + (size_t)l * B * H;                                                                    \
            cell<T>(B, in_size, H, in, hl, (const T*)params[4 * l], (const T*)params[4 * l + 1],              \
                    (const T*)params[4 * l + 2], (const T*)params[4 * l + 3], reset_after, hl, scratch,       \
                    (Gemm<T>::fn)gemm);                                                                       \
            in = hl, in_size = H;                                                                             \
        }                                                                                                     \
    }                                                                                                         \
    /* The "GEMM floor" of the benchmarks: the same per-step products alone, in a C loop (no elementwise). */ \
    void grukit_gemm_loop_##SUF(int calls, int transa, int m, int n, int k, const T* A, int lda, const T* B,   \
                                long stride_b, int ldb, T* C, long stride_c, int ldc, void* gemm) {          \
        const T one = 1, zero = 0;                                                                            \
        for (int i = 0; i < calls; ++i)                                                                       \
            ((Gemm<T>::fn)gemm)(transa ? "T" : "N", "N", &m, &n, &k, &one, A, &lda, B + i * stride_b, &ldb,    \
                                &zero, C + i * stride_c, &ldc);                                               \
    }

GRUKIT_DEFINE(f32, float)
GRUKIT_DEFINE(f64, double)

}  // extern "C"
