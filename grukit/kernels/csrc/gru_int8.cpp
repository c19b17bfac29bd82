// Streaming GRU steps (no autograd) with int8 weights: grukit.quantize(model, "int8") (issue 32).
//
// Built into the same library as gru_fused.cpp / gru_stream.cpp (grukit/kernels/_build.py SOURCES).
// One entry point runs one step of an L-layer unidirectional GRU at small batch:
//
//   grukit_step_i8(desc, B, x, h_in, h_out, y)
//
// with the same StepDesc layout as grukit_step (gru_stream.cpp) but 6 pointers per layer:
// w_ih (3H, K) int8, w_hh (3H, H) int8 (row-major, gates stacked r, z, n, values in [-127, 127]),
// s_ih (3H) and s_hh (3H) float32 per-row scales (the weight W[r][k] stands for s[r] · q[r][k]),
// b_ih, b_hh (3H) float32 or null. h_in / h_out (L, B, H) may alias; y (B, H) or null.
//
// What is rounded. Each matrix-vector product W v (v = x, h, or r ⊙ h for reset_after=False) quantizes
// its float32 input v dynamically, per vector (per batch row, per layer, per step):
//   amax = max_k |v_k|;  inv = 255 / amax (float32);  m_k = min(255, rint(|v_k| · inv))  (round half even);
//   sv = amax / 255 (float32);  v_k ≈ sign(v_k) · m_k · sv
// (an 8-bit magnitude and the sign: a step of amax/255). The products Σ_k q[r][k] · sign(v_k) · m_k are
// exact int32 sums (|q| ≤ 127, m ≤ 255: exact for K < 2^31 / 32385 = 66,000, checked by the caller), and
//   out[r] = fma(float(acc[r]), sv · s[r], b[r])      (float32; no bias: float(acc[r]) · (sv · s[r]))
// identically on every path, so the paths give the same bits. amax = 0 gives 0 (inv = 0, sv = 0); a NaN in v
// makes sv NaN (the outputs NaN, as float32 would), an infinity gives inv = 0 and sv = inf.
// State, gates and biases stay float32 (the gate math is gru_stream.cpp's, the shared exp of gru_simd.h).
//
// Paths (chosen at run time, whatever ISA level the library is built for):
//   kI8Vnni     AVX-512-VNNI vpdpbusd (u8 × s8 → s32): the magnitudes m are the u8 operand, the sign of v is
//               moved onto the weights (a masked negate of the weight bytes, q ∈ [-127, 127] so −q fits).
//   kI8Generic  portable code: int16 signed inputs times int8 weights in int32 (the compiler vectorizes it).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__x86_64__) || defined(_M_X64)
#define GRUKIT_I8_X86 1
#include <immintrin.h>
#else
#define GRUKIT_I8_X86 0
#endif

#include "gru_simd.h"

namespace {

enum { kI8Vnni = 0, kI8Generic = 1 };

struct StepDesc {
    int32_t L, I, H, path, reset_after;
    void* const* params;  // 6 per layer: w_ih, w_hh (int8), s_ih, s_hh (float), b_ih, b_hh (float or null)
};

// One quantized input vector: magnitudes (u8, zero padded to Kp), the sign as bits (one uint64 per 64 values)
// and as a signed int16 copy (the generic path), and its scale.
struct QVec {
    std::vector<uint8_t> mag;
    std::vector<uint64_t> neg;
    std::vector<int16_t> sq;
    float scale = 0.0f;
};

static inline int pad128(int K) { return (K + 127) & ~127; }

// The rounding described at the top; the same code for every path.
static void quantize_vec(const float* v, int K, bool want_sq, QVec& q) {
    const int Kp = pad128(K);
    if ((int)q.mag.size() < Kp) q.mag.resize(Kp), q.neg.resize(Kp / 64), q.sq.resize(Kp);
    float amax = 0.0f;
    bool nan = false;
    for (int k = 0; k < K; ++k) {
        const float a = std::fabs(v[k]);
        nan |= a != a;
        amax = a > amax ? a : amax;
    }
    const float inv = (amax > 0.0f && amax <= 3.4028234663852886e38f) ? 255.0f / amax : 0.0f;
    q.scale = nan ? NAN : amax / 255.0f;
    uint8_t* m = q.mag.data();
    for (int k = 0; k < K; ++k) {
        float r = std::nearbyint(std::fabs(v[k]) * inv);
        r = r < 255.0f ? r : 255.0f;  // NaN → 255 (the scale is NaN anyway)
        m[k] = (uint8_t)(int)r;
    }
    std::memset(m + K, 0, Kp - K);
    uint64_t* ng = q.neg.data();
    for (int c = 0; c < Kp / 64; ++c) {
        uint64_t bits = 0;
        const int k0 = c * 64, k1 = K - k0 < 64 ? K - k0 : 64;
        for (int j = 0; j < k1; ++j) bits |= (uint64_t)(std::signbit(v[k0 + j]) ? 1 : 0) << j;
        ng[c] = bits;
    }
    if (want_sq) {
        int16_t* s = q.sq.data();
        for (int k = 0; k < K; ++k) s[k] = std::signbit(v[k]) ? (int16_t)-m[k] : (int16_t)m[k];
    }
}

// The one formula turning an exact int32 sum into the output (both paths).
static inline float finish(int32_t acc, float sv, float sw, const float* bias, int r) {
    const float c = sv * sw;
    return bias ? std::fma((float)acc, c, bias[r]) : (float)acc * c;
}

// ------------------------------------------------------------------------------------------ generic
static void mv_i8_generic(int nout, int K, const int8_t* W, const QVec& q, const float* sw, const float* bias,
                          float* y) {
    const int16_t* xs = q.sq.data();
    int i = 0;
    for (; i + 4 <= nout; i += 4) {
        const int8_t *w0 = W + (long)i * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int k = 0; k < K; ++k) {
            const int32_t xv = xs[k];
            a0 += (int32_t)w0[k] * xv;
            a1 += (int32_t)w1[k] * xv;
            a2 += (int32_t)w2[k] * xv;
            a3 += (int32_t)w3[k] * xv;
        }
        y[i] = finish(a0, q.scale, sw[i], bias, i);
        y[i + 1] = finish(a1, q.scale, sw[i + 1], bias, i + 1);
        y[i + 2] = finish(a2, q.scale, sw[i + 2], bias, i + 2);
        y[i + 3] = finish(a3, q.scale, sw[i + 3], bias, i + 3);
    }
    for (; i < nout; ++i) {
        const int8_t* w0 = W + (long)i * K;
        int32_t a0 = 0;
        for (int k = 0; k < K; ++k) a0 += (int32_t)w0[k] * (int32_t)xs[k];
        y[i] = finish(a0, q.scale, sw[i], bias, i);
    }
}

// --------------------------------------------------------------------------------------------- VNNI
#if GRUKIT_I8_X86
#define TVNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vnni")))

// 16 int32 accumulators → one vector whose lane r is the (exact) sum of a[r]'s lanes.
TVNNI static inline __m512i reduce16i(const __m512i* a) {
    __m512i s1[8], s2[4], s3[2];
    for (int i = 0; i < 8; ++i)
        s1[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]),
                                 _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; ++i)
        s2[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(s1[2 * i], s1[2 * i + 1]),
                                 _mm512_unpackhi_epi64(s1[2 * i], s1[2 * i + 1]));
    for (int i = 0; i < 2; ++i)
        s3[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(s2[2 * i], s2[2 * i + 1], 0x88),
                                 _mm512_shuffle_i32x4(s2[2 * i], s2[2 * i + 1], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(s3[0], s3[1], 0x88), _mm512_shuffle_i32x4(s3[0], s3[1], 0xDD));
}

// One 64-value chunk of a row: acc += m · (±w), the weights negated where the input is negative.
TVNNI static inline __m512i dp_chunk(__m512i acc, __m512i xm, __mmask64 neg, __m512i w) {
    const __m512i ws = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
    return _mm512_dpbusd_epi32(acc, xm, ws);
}

// y (nout) = W (nout × K, int8, row stride K) · v + bias. Each 16-row block is read as two groups of 8 rows with
// two accumulators per row (chunks k and k + 64), as gru_stream.cpp's float32 path does.
TVNNI static void mv_i8_vnni(int nout, int K, const int8_t* W, const QVec& q, const float* sw, const float* bias,
                             float* y) {
    const uint8_t* xm = q.mag.data();
    const uint64_t* ng = q.neg.data();
    const int k128 = K & ~127, k64 = K & ~63;
    const __mmask64 tmask = (K & 63) ? (__mmask64)((1ull << (K & 63)) - 1) : 0;
    const __m512 sv = _mm512_set1_ps(q.scale);
    for (int i0 = 0; i0 < nout; i0 += 16) {
        const int nr = nout - i0 < 16 ? nout - i0 : 16;
        __m512i sums[16];
        for (int g0 = 0; g0 < 16; g0 += 8) {
            if (g0 >= nr) {
                for (int g = 0; g < 8; ++g) sums[g0 + g] = _mm512_setzero_si512();
                continue;
            }
            const int8_t* rows[8];
            for (int g = 0; g < 8; ++g) rows[g] = W + (long)(i0 + (g0 + g < nr ? g0 + g : nr - 1)) * K;
            __m512i a[8], b[8];
            for (int g = 0; g < 8; ++g) a[g] = b[g] = _mm512_setzero_si512();
            int k = 0;
            for (; k < k128; k += 128) {
                const __m512i x0 = _mm512_loadu_si512(xm + k), x1 = _mm512_loadu_si512(xm + k + 64);
                const __mmask64 n0 = (__mmask64)ng[k / 64], n1 = (__mmask64)ng[k / 64 + 1];
                for (int g = 0; g < 8; ++g) {
                    a[g] = dp_chunk(a[g], x0, n0, _mm512_loadu_si512(rows[g] + k));
                    b[g] = dp_chunk(b[g], x1, n1, _mm512_loadu_si512(rows[g] + k + 64));
                }
            }
            if (k < k64) {
                const __m512i x0 = _mm512_loadu_si512(xm + k);
                const __mmask64 n0 = (__mmask64)ng[k / 64];
                for (int g = 0; g < 8; ++g) a[g] = dp_chunk(a[g], x0, n0, _mm512_loadu_si512(rows[g] + k));
                k += 64;
            }
            if (tmask) {  // the magnitudes are zero padded, the weights masked
                const __m512i x0 = _mm512_loadu_si512(xm + k);
                const __mmask64 n0 = (__mmask64)ng[k / 64];
                for (int g = 0; g < 8; ++g)
                    b[g] = dp_chunk(b[g], x0, n0, _mm512_maskz_loadu_epi8(tmask, rows[g] + k));
            }
            for (int g = 0; g < 8; ++g) sums[g0 + g] = _mm512_add_epi32(a[g], b[g]);
        }
        const __m512i s = reduce16i(sums);
        const __mmask16 om = (__mmask16)(nr == 16 ? 0xFFFF : (1u << nr) - 1);
        const __m512 c = _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(om, sw + i0));
        const __m512 f = _mm512_cvtepi32_ps(s);
        const __m512 out = bias ? _mm512_fmadd_ps(f, c, _mm512_maskz_loadu_ps(om, bias + i0)) : _mm512_mul_ps(f, c);
        _mm512_mask_storeu_ps(y + i0, om, out);
    }
}

// quantize_vec's rounding with AVX-512 (the same IEEE operations, so the same bytes; no int16 copy).
TVNNI static void quantize_vec_512(const float* v, int K, QVec& q) {
    const int Kp = pad128(K);
    if ((int)q.mag.size() < Kp) q.mag.resize(Kp), q.neg.resize(Kp / 64), q.sq.resize(Kp);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    __m512 mx = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (int k = 0; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        const __m512 a = _mm512_and_ps(_mm512_maskz_loadu_ps(m, v + k), absmask);
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
        mx = _mm512_max_ps(mx, a);  // a NaN lane: mx keeps... whatever, the scale is NaN below
    }
    const float amax = _mm512_reduce_max_ps(mx);
    const float inv = (amax > 0.0f && amax <= 3.4028234663852886e38f) ? 255.0f / amax : 0.0f;
    q.scale = nan ? NAN : amax / 255.0f;
    const __m512 vinv = _mm512_set1_ps(inv), top = _mm512_set1_ps(255.0f);
    uint8_t* mg = q.mag.data();
    uint64_t* ng = q.neg.data();
    std::memset(ng, 0, sizeof(uint64_t) * (Kp / 64));
    for (int k = 0; k < Kp; k += 16) {
        const __mmask16 m = k >= K ? (__mmask16)0 : K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, v + k);
        __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_and_ps(x, absmask), vinv),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm512_min_ps(r, top);  // NaN → 255, as the scalar code
        _mm_storeu_si128((__m128i*)(mg + k), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
        ng[k / 64] |= (uint64_t)(_mm512_movepi32_mask(_mm512_castps_si512(x)) & m) << (k & 63);
    }
}

static bool has_vnni() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}
#else
static bool has_vnni() { return false; }
#endif

// ------------------------------------------------------------------------------------------ one step
struct Work {
    std::vector<float> gi, gh, rh;
    QVec qx, qh;
};
static thread_local Work g_work;

static void matvec(int path, int nout, int K, const int8_t* W, const QVec& q, const float* sw, const float* bias,
                   float* y) {
#if GRUKIT_I8_X86
    if (path == kI8Vnni) return mv_i8_vnni(nout, K, W, q, sw, bias, y);
#endif
    mv_i8_generic(nout, K, W, q, sw, bias, y);
}

// One layer, one batch row: x (K), h (H) → out (H) (out may alias h).
static void layer_row(int path, int K, int H, bool reset_after, const float* x, const float* h, void* const* p,
                      float* out) {
    Work& w = g_work;
    if ((int)w.gi.size() < 3 * H) w.gi.resize(3 * H), w.gh.resize(3 * H), w.rh.resize(H);
    float *gi = w.gi.data(), *gh = w.gh.data(), *rh = w.rh.data();
    const int8_t *w_ih = (const int8_t*)p[0], *w_hh = (const int8_t*)p[1];
    const float *s_ih = (const float*)p[2], *s_hh = (const float*)p[3];
    const float *b_ih = (const float*)p[4], *b_hh = (const float*)p[5];
    const bool sq = path != kI8Vnni;
    auto quant = [&](const float* v, int n, QVec& q) {
#if GRUKIT_I8_X86
        if (!sq) return quantize_vec_512(v, n, q);
#endif
        quantize_vec(v, n, sq, q);
    };
    quant(x, K, w.qx);
    matvec(path, 3 * H, K, w_ih, w.qx, s_ih, b_ih, gi);
    quant(h, H, w.qh);
    if (reset_after) {
        matvec(path, 3 * H, H, w_hh, w.qh, s_hh, b_hh, gh);
    } else {
        matvec(path, 2 * H, H, w_hh, w.qh, s_hh, b_hh, gh);
        grukit_simd::step_reset_times_h(H, gi, gh, h, rh);
        quant(rh, H, w.qx);  // x's quantization is no longer needed
        matvec(path, H, H, w_hh + 2 * (size_t)H * H, w.qx, s_hh + 2 * H, b_hh ? b_hh + 2 * H : nullptr, gh + 2 * H);
    }
    grukit_simd::step_gates(H, reset_after, gi, gh, h, out);  // gru_simd.h: gru_stream.cpp's gate math
}

}  // namespace

extern "C" {

// The best int8 path on this CPU (0: AVX-512-VNNI, 1: generic).
int grukit_step_i8_best_path() { return has_vnni() ? kI8Vnni : kI8Generic; }

// Whether this CPU can run an int8 path.
int grukit_step_i8_path_ok(int path) {
    if (path == kI8Vnni) return has_vnni() ? 1 : 0;
    return path == kI8Generic ? 1 : 0;
}

// The largest K (input or hidden size) whose int32 sums are exact: 127 · 255 · K < 2^31.
int grukit_step_i8_max_k() { return 66000; }

// One step of desc->L layers for B rows (see the top of this file). Returns 0, 1 for a path this CPU cannot
// run, 2 for a size above grukit_step_i8_max_k.
int grukit_step_i8(const StepDesc* d, int B, const float* x, const float* h_in, float* h_out, float* y) {
    if (!grukit_step_i8_path_ok(d->path)) return 1;
    const int path = d->path, H = d->H;
    if (d->I > grukit_step_i8_max_k() || H > grukit_step_i8_max_k()) return 2;
    const bool ra = d->reset_after != 0;
    grukit_simd::step_layers(d->L, d->I, H, B, 6, d->params, x, h_in, h_out, y,
                             [&](int K, const float* in, const float* hl, void* const* p, float* ol) {
                                 layer_row(path, K, H, ra, in, hl, p, ol);
                             });
    return 0;
}

}  // extern "C"
