// Streaming GRU steps (no autograd) for float32 weights and for bfloat16 weights with float32 state.
//
// Built into the same library as gru_fused.cpp (grukit/kernels/_build.py compiles the list of sources).
// One entry point runs one step of an L-layer unidirectional GRU at small batch:
//
//   grukit_step(desc, B, x, h_in, h_out, y)
//
// where desc points to a StepDesc (sizes, the kernel path and 4 weight pointers per layer), x (B, I),
// h_in / h_out (L, B, H) (they may alias: the Streamer updates its state in place) and y (B, H) or null,
// a second copy of the top layer's new state. Weights are read in torch's layout (W_ih (3H, K) and W_hh
// (3H, H) row-major, gates stacked r, z, n), nothing is packed: a changed weight is seen at the next call.
//
// Matrix-vector products work on 16 rows at a time: accumulator vectors per row over the row's contiguous
// weights, then a transposing reduction turns the 16 rows' vectors into 16 outputs. Paths,
// chosen at run time (whatever ISA level the library is built for, each AVX-512 path carries its own target;
// on non-x86 builds only the portable paths exist):
//   kF32Avx512   float32 weights, AVX-512F.
//   kF32Generic  float32 weights, portable vector code (whatever the compiler targets: AVX2, ...).
//   kBf16Dp      bfloat16 weights, AVX-512-BF16 _mm512_dpbf16_ps. The dot product's input (x or h, float32)
//                is split into two bfloat16 numbers hi + lo (hi = bf16(v), lo = bf16(v − hi)); the products
//                bf16 × bf16 are exact in float32, so the result is the float32 input times the bf16 weight
//                up to the rounding of lo: a relative error of about 2^-16 on the input, well below the
//                2^-8 of the weight rounding itself.
//   kBf16Avx512  bfloat16 weights converted to float32 by shifts (AVX-512F/BW), float32 FMAs.
//   kBf16Generic bfloat16 weights converted by shifts in portable vector code.
// State and accumulation are float32 on every path; biases are float32.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__x86_64__) || defined(_M_X64)
#define GRUKIT_X86 1
#include <immintrin.h>
#else
#define GRUKIT_X86 0  // aarch64 and others: the portable paths only
#endif

#include "gru_simd.h"

namespace {

enum Path { kF32Avx512 = 0, kF32Generic = 1, kBf16Dp = 2, kBf16Avx512 = 3, kBf16Generic = 4 };

struct StepDesc {
    int32_t L, I, H, path, reset_after;
    void* const* params;  // 4 per layer: w_ih, w_hh (float or uint16 bf16 bits), b_ih, b_hh (float or null)
};

typedef float v8 __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));


#if GRUKIT_X86
// --------------------------------------------------------------------------------- AVX-512 helpers
#define T512 __attribute__((target("avx512f,avx512bw,avx512dq")))
#define T512BF __attribute__((target("avx512f,avx512bw,avx512dq,avx512bf16")))

// 16 accumulators → one vector whose lane r is the sum of a[r]'s lanes.
T512 static inline __m512 reduce16(const __m512* a) {
    __m512 s1[8], s2[4], s3[2];
    for (int i = 0; i < 8; ++i)
        s1[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; ++i) {
        __m512d p = _mm512_castps_pd(s1[2 * i]), q = _mm512_castps_pd(s1[2 * i + 1]);
        s2[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p, q)), _mm512_castpd_ps(_mm512_unpackhi_pd(p, q)));
    }
    // s2[i]: 128-bit lane q holds the partial sums of rows 4i..4i+3 over quarter q of the vector
    for (int i = 0; i < 2; ++i)
        s3[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s2[2 * i], s2[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(s2[2 * i], s2[2 * i + 1], 0xDD));
    // s3[i]: lanes [rows 8i..8i+3 (quarters 0+1), rows 8i..8i+3 (2+3), rows 8i+4.. (0+1), rows 8i+4.. (2+3)]
    // → [rows 0-3, rows 4-7, rows 8-11, rows 12-15], each the sum of its two halves
    return _mm512_add_ps(_mm512_shuffle_f32x4(s3[0], s3[1], 0x88), _mm512_shuffle_f32x4(s3[0], s3[1], 0xDD));
}

// y (nout) = W (nout × K, row stride ldw, float32) · x (K) + bias.
// Each 16-row block is read as two groups of 8 rows, two accumulators per row (k and k + 16): 8 concurrent
// streams through the weights read faster from L2/L3 here than 16 (Zen 4, H = 512: ~40 µs against ~45 µs for
// W_hh), and the two chains per row hide the FMA latency. rev: the 16-row blocks last to first (the same sums
// in the same order within each row, so the same bits; see layer_row).
T512 static void mv_f32_avx512(int nout, int K, const float* W, long ldw, const float* x, const float* bias, float* y,
                               bool rev) {
    const int k32 = K & ~31, k16 = K & ~15;
    const __mmask16 kmask = (__mmask16)((1u << (K & 15)) - 1);
    const int nblk = (nout + 15) / 16;
    for (int ib = 0; ib < nblk; ++ib) {
        const int i0 = 16 * (rev ? nblk - 1 - ib : ib);
        const int nr = nout - i0 < 16 ? nout - i0 : 16;
        __m512 sums[16];
        for (int g0 = 0; g0 < 16; g0 += 8) {
            if (g0 >= nr) {  // a short last block: the second group has no rows
                for (int g = 0; g < 8; ++g) sums[g0 + g] = _mm512_setzero_ps();
                continue;
            }
            const float* rows[8];
            for (int g = 0; g < 8; ++g) rows[g] = W + (long)(i0 + (g0 + g < nr ? g0 + g : nr - 1)) * ldw;
            __m512 a[8], b[8];
            for (int g = 0; g < 8; ++g) a[g] = b[g] = _mm512_setzero_ps();
            int k = 0;
            for (; k < k32; k += 32) {
                const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
                for (int g = 0; g < 8; ++g) {
                    a[g] = _mm512_fmadd_ps(_mm512_loadu_ps(rows[g] + k), x0, a[g]);
                    b[g] = _mm512_fmadd_ps(_mm512_loadu_ps(rows[g] + k + 16), x1, b[g]);
                }
            }
            if (k < k16) {
                const __m512 x0 = _mm512_loadu_ps(x + k);
                for (int g = 0; g < 8; ++g) a[g] = _mm512_fmadd_ps(_mm512_loadu_ps(rows[g] + k), x0, a[g]);
                k += 16;
            }
            if (kmask) {
                const __m512 x0 = _mm512_maskz_loadu_ps(kmask, x + k);
                for (int g = 0; g < 8; ++g) b[g] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(kmask, rows[g] + k), x0, b[g]);
            }
            for (int g = 0; g < 8; ++g) sums[g0 + g] = _mm512_add_ps(a[g], b[g]);
        }
        __m512 s = reduce16(sums);
        __mmask16 om = (__mmask16)(nr == 16 ? 0xFFFF : (1u << nr) - 1);
        if (bias) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(om, bias + i0));
        _mm512_mask_storeu_ps(y + i0, om, s);
    }
}

// bf16 weights (uint16 bits), input given as hi/lo bf16 pairs: xs = [hi (Kp), lo (Kp)], Kp = K rounded up to 32.
// Groups of 8 rows as in mv_f32_avx512; the hi and lo products go to separate accumulators (two independent
// dpbf16 chains per row instead of one chain of two).
T512BF static void mv_bf16_dp(int nout, int K, const uint16_t* W, long ldw, const uint16_t* xs, int Kp,
                              const float* bias, float* y) {
    const int kfull = K & ~31;
    const __mmask32 kmask = (__mmask32)((K & 31) ? ((1u << (K & 31)) - 1) : 0);
    for (int i0 = 0; i0 < nout; i0 += 16) {
        const int nr = nout - i0 < 16 ? nout - i0 : 16;
        __m512 sums[16];
        for (int g0 = 0; g0 < 16; g0 += 8) {
            if (g0 >= nr) {
                for (int g = 0; g < 8; ++g) sums[g0 + g] = _mm512_setzero_ps();
                continue;
            }
            const uint16_t* rows[8];
            for (int g = 0; g < 8; ++g) rows[g] = W + (long)(i0 + (g0 + g < nr ? g0 + g : nr - 1)) * ldw;
            __m512 a[8], b[8];
            for (int g = 0; g < 8; ++g) a[g] = b[g] = _mm512_setzero_ps();
            int k = 0;
            for (; k < kfull; k += 32) {
                const __m512bh xh = (__m512bh)_mm512_loadu_si512(xs + k), xl = (__m512bh)_mm512_loadu_si512(xs + Kp + k);
                for (int g = 0; g < 8; ++g) {
                    const __m512bh w = (__m512bh)_mm512_loadu_si512(rows[g] + k);
                    a[g] = _mm512_dpbf16_ps(a[g], w, xh);
                    b[g] = _mm512_dpbf16_ps(b[g], w, xl);
                }
            }
            if (kmask) {  // xs is zero padded up to Kp, the weights are masked
                const __m512bh xh = (__m512bh)_mm512_loadu_si512(xs + k), xl = (__m512bh)_mm512_loadu_si512(xs + Kp + k);
                for (int g = 0; g < 8; ++g) {
                    const __m512bh w = (__m512bh)_mm512_maskz_loadu_epi16(kmask, rows[g] + k);
                    a[g] = _mm512_dpbf16_ps(a[g], w, xh);
                    b[g] = _mm512_dpbf16_ps(b[g], w, xl);
                }
            }
            for (int g = 0; g < 8; ++g) sums[g0 + g] = _mm512_add_ps(a[g], b[g]);
        }
        __m512 s = reduce16(sums);
        __mmask16 om = (__mmask16)(nr == 16 ? 0xFFFF : (1u << nr) - 1);
        if (bias) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(om, bias + i0));
        _mm512_mask_storeu_ps(y + i0, om, s);
    }
}

// bf16 weights converted by shifts; input deinterleaved: xs = [even (Kh), odd (Kh)], Kh = K/2 rounded up to 16
T512 static void mv_bf16_cvt512(int nout, int K, const uint16_t* W, long ldw, const float* xs, int Kh,
                                const float* bias, float* y) {
    const int kfull = K & ~31;
    const __mmask32 kmask = (__mmask32)((K & 31) ? ((1u << (K & 31)) - 1) : 0);
    const __m512i himask = _mm512_set1_epi32((int)0xFFFF0000u);
    for (int i0 = 0; i0 < nout; i0 += 16) {
        int nr = nout - i0 < 16 ? nout - i0 : 16;
        const uint16_t* rows[16];
        for (int r = 0; r < 16; ++r) rows[r] = W + (long)(i0 + (r < nr ? r : nr - 1)) * ldw;
        __m512 acc[16];
        for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
        for (int k = 0; k < K; k += 32) {  // xs is zero padded up to Kh, the weights are masked
            __m512 xe = _mm512_loadu_ps(xs + k / 2), xo = _mm512_loadu_ps(xs + Kh + k / 2);
            const bool tail = k >= kfull;
            for (int r = 0; r < 16; ++r) {
                __m512i w = tail ? _mm512_maskz_loadu_epi16(kmask, rows[r] + k) : _mm512_loadu_si512(rows[r] + k);
                __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
                __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(w, himask));
                acc[r] = _mm512_fmadd_ps(wo, xo, _mm512_fmadd_ps(we, xe, acc[r]));
            }
        }
        __m512 s = reduce16(acc);
        __mmask16 om = (__mmask16)(nr == 16 ? 0xFFFF : (1u << nr) - 1);
        if (bias) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(om, bias + i0));
        _mm512_mask_storeu_ps(y + i0, om, s);
    }
}

#endif  // GRUKIT_X86

// ------------------------------------------------------------------------------ portable fallbacks
static inline float bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
}
static inline v8 ld8f(const float* p) {
    v8 r;
    std::memcpy(&r, p, sizeof(r));
    return r;
}
static inline v8 ld8bf(const uint16_t* p) {  // 8 bf16 → 8 float32 by a shift
    v8h h;
    std::memcpy(&h, p, sizeof(h));
    v8u u = __builtin_convertvector(h, v8u) << 16;
    v8 r;
    std::memcpy(&r, &u, sizeof(r));
    return r;
}
static inline float hsum8(v8 a) {
    float s = 0;
    for (int l = 0; l < 8; ++l) s += a[l];
    return s;
}

// 4 rows at a time, 8-lane vectors (one AVX2 register), scalar tail; WT is float or uint16_t (bf16 bits).
template <class WT> static inline v8 ld8w(const WT* p);
template <> inline v8 ld8w<float>(const float* p) { return ld8f(p); }
template <> inline v8 ld8w<uint16_t>(const uint16_t* p) { return ld8bf(p); }
static inline float wval(const float* p) { return *p; }
static inline float wval(const uint16_t* p) { return bf2f(*p); }

template <class WT>
static void mv_generic(int nout, int K, const WT* W, long ldw, const float* x, const float* bias, float* y) {
    int i = 0;
    for (; i < nout; i += 4) {
        int nr = nout - i < 4 ? nout - i : 4;
        const WT* w[4];
        for (int r = 0; r < 4; ++r) w[r] = W + (long)(i + (r < nr ? r : nr - 1)) * ldw;
        v8 a[4] = {};
        int k = 0;
        for (; k + 8 <= K; k += 8) {
            v8 xv = ld8f(x + k);
            for (int r = 0; r < 4; ++r) a[r] += ld8w<WT>(w[r] + k) * xv;
        }
        float s[4];
        for (int r = 0; r < 4; ++r) {
            s[r] = hsum8(a[r]);
            for (int kk = k; kk < K; ++kk) s[r] += wval(w[r] + kk) * x[kk];
        }
        for (int r = 0; r < nr; ++r) y[i + r] = s[r] + (bias ? bias[i + r] : 0.0f);
    }
}

#if GRUKIT_X86
static bool has_avx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"); }
static bool has_bf16() { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
#else
static bool has_avx512() { return false; }
static bool has_bf16() { return false; }
#endif

// ------------------------------------------------------------------------------------------ one step
struct Work {
    std::vector<float> gi, gh, rh, xf;
    std::vector<uint16_t> xb;
};
static thread_local Work g_work;

static inline uint16_t f2bf_rne(float f) {  // round to nearest even (NaN kept quiet)
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// y (nout) = W (nout × K) · v (K) + bias on the chosen path; v is float32. rev: the float32 AVX-512 path
// reads the rows last to first (same bits); the other paths ignore it.
static void matvec(int path, int nout, int K, const void* W, const float* v, const float* bias, float* y,
                   bool rev = false) {
    Work& w = g_work;
    switch (path) {
#if GRUKIT_X86
        case kF32Avx512:
            mv_f32_avx512(nout, K, (const float*)W, K, v, bias, y, rev);
            return;
#endif
        case kF32Generic:
            mv_generic<float>(nout, K, (const float*)W, K, v, bias, y);
            return;
#if GRUKIT_X86
        case kBf16Dp: {
            int Kp = (K + 31) & ~31;
            if ((int)w.xb.size() < 2 * Kp) w.xb.resize(2 * Kp);
            uint16_t* xs = w.xb.data();
            for (int k = 0; k < K; ++k) {
                uint16_t hi = f2bf_rne(v[k]);
                xs[k] = hi;
                xs[Kp + k] = f2bf_rne(v[k] - bf2f(hi));
            }
            for (int k = K; k < Kp; ++k) xs[k] = xs[Kp + k] = 0;
            mv_bf16_dp(nout, K, (const uint16_t*)W, K, xs, Kp, bias, y);
            return;
        }
        case kBf16Avx512: {
            int Kh = (((K + 1) / 2) + 15) & ~15;
            if ((int)w.xf.size() < 2 * Kh) w.xf.resize(2 * Kh);
            float* xs = w.xf.data();
            std::memset(xs, 0, sizeof(float) * 2 * Kh);
            for (int k = 0; k < K; ++k) xs[(k & 1) * Kh + k / 2] = v[k];
            mv_bf16_cvt512(nout, K, (const uint16_t*)W, K, xs, Kh, bias, y);
            return;
        }
#endif
        default:
            mv_generic<uint16_t>(nout, K, (const uint16_t*)W, K, v, bias, y);
            return;
    }
}

// One layer, one batch row: x (K), h (H) → out (H) (out may alias h).
// rev (reset_after only): W_hh then W_ih, each last row first. Passes over a layer's weights alternate
// direction (grukit_step), so each pass starts on the rows the previous one read last, which are the likeliest
// still in L1/L2: a plain cyclic walk over ~1 MB of weights finds little of them cached when whatever runs
// between steps has evicted part (H = 256, I = 64, batch 1: 13.5 against 14.0 µs a step, Zen 4).
static void layer_row(int path, int K, int H, bool reset_after, const float* x, const float* h, void* const* p,
                      float* out, bool rev) {
    Work& w = g_work;
    if ((int)w.gi.size() < 3 * H) w.gi.resize(3 * H), w.gh.resize(3 * H), w.rh.resize(H);
    float *gi = w.gi.data(), *gh = w.gh.data(), *rh = w.rh.data();
    const float *b_ih = (const float*)p[2], *b_hh = (const float*)p[3];
    const size_t esz = path <= kF32Generic ? sizeof(float) : sizeof(uint16_t);
    if (reset_after && rev) {
        matvec(path, 3 * H, H, p[1], h, b_hh, gh, true);
        matvec(path, 3 * H, K, p[0], x, b_ih, gi, true);
    } else if (reset_after) {
        matvec(path, 3 * H, K, p[0], x, b_ih, gi);
        matvec(path, 3 * H, H, p[1], h, b_hh, gh);
    } else {
        matvec(path, 3 * H, K, p[0], x, b_ih, gi);
        matvec(path, 2 * H, H, p[1], h, b_hh, gh);
        grukit_simd::step_reset_times_h(H, gi, gh, h, rh);
        matvec(path, H, H, (const char*)p[1] + esz * 2 * (size_t)H * H, rh, b_hh ? b_hh + 2 * H : nullptr, gh + 2 * H);
    }
    grukit_simd::step_gates(H, reset_after, gi, gh, h, out);  // gru_simd.h, shared with gru_int8.cpp
}

}  // namespace

extern "C" {

// The best path for a weight type (0: float32, 1: bfloat16) on this CPU.
int grukit_step_best_path(int bf16) {
    if (bf16) return has_bf16() ? kBf16Dp : (has_avx512() ? kBf16Avx512 : kBf16Generic);
    return has_avx512() ? kF32Avx512 : kF32Generic;
}

// Whether this CPU can run a path.
int grukit_step_path_ok(int path) {
    switch (path) {
        case kF32Avx512:
        case kBf16Avx512:
            return has_avx512();
        case kBf16Dp:
            return has_bf16();
        case kF32Generic:
        case kBf16Generic:
            return 1;
        default:
            return 0;
    }
}

// One step of desc->L layers for B rows: x (B, I), h_in (L, B, H) → h_out (L, B, H) (may alias h_in) and y (B, H) the top
// layer's new state (null: not written). Returns 0, or 1 for a path this CPU cannot run.
int grukit_step(const StepDesc* d, int B, const float* x, const float* h_in, float* h_out, float* y) {
    if (!grukit_step_path_ok(d->path)) return 1;
    const int path = d->path, H = d->H, L = d->L;
    const bool ra = d->reset_after != 0;
    // the pass over each layer's weights for row b of this call is pass number passes + b of this thread:
    // even passes read forward, odd ones backward (layer_row)
    static thread_local unsigned passes = 0;
    const unsigned first = passes;
    passes += (unsigned)B;
    int n = 0;  // step_layers calls row() for b = 0..B−1, layers 0..L−1 within each
    grukit_simd::step_layers(L, d->I, H, B, 4, d->params, x, h_in, h_out, y,
                             [&](int K, const float* in, const float* hl, void* const* p, float* ol) {
                                 const bool rev = ((first + (unsigned)(n++ / L)) & 1u) != 0;
                                 layer_row(path, K, H, ra, in, hl, p, ol, rev);
                             });
    return 0;
}

}  // extern "C"
