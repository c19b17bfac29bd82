// bfloat16 GEMM with float32 accumulation and float32 output, for training under
// torch.autocast("cpu", dtype=torch.bfloat16) (grukit/kernels/bf16.py): C (M × N) = A (M × K) · Bᵀ (+ bias) (+ C).
//
// torch's bf16 matmul rounds its output to bf16, and MKL's cblas_gemm_bf16bf16f32 measured no faster than fp32
// sgemm on AMD Zen 4 (it does not use AVX-512-BF16 there), so this is grukit's own: B is packed once into panels
// of 16 columns whose k values sit in pairs (the layout _mm512_dpbf16_ps reads: lane j = (B[j][k], B[j][k+1])),
// A is read in place (rows of bf16 with k contiguous, K rounded up to even and zero padded), and a tile of
// MR rows × NP panels accumulates in MR·NP registers. K is blocked (KC values) so the panels being reused stay
// in cache. Paths (grukit_bf16_best_path): 1 = AVX-512-BF16 (vdpbf16ps), 0 = portable code that widens each
// bf16 to float32 (exact) and accumulates in float32 — same products, another summation order.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <cstdlib>

#include "gru_abi.h"
#include "gru_bf16_cvt.h"
#include "gru_simd.h"

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num() { return 0; }
static inline int omp_get_num_threads() { return 1; }
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define GRUKIT_BF_X86 1
#include <immintrin.h>
#define TBF __attribute__((target("avx512f,avx512bw,avx512dq,avx512bf16")))
#else
#define GRUKIT_BF_X86 0
#endif

namespace {

enum { PU = 16, KC = 512 };  // units per panel, k values per block (even)

inline float bf2f(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f2bf(float f) {  // round to nearest even (NaN stays a quiet NaN)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

inline void split(int n, int tid, int nt, int* lo, int* hi) {
    int q = n / nt, r = n % nt;
    *lo = tid * q + (tid < r ? tid : r);
    *hi = *lo + q + (tid < r ? 1 : 0);
}

#if GRUKIT_BF_X86
template <int MR, int NP>
TBF void tile(int kk0, int kk1, const uint16_t* A, long lda, const uint16_t* P, long pstride, float* C, long ldc,
              int ncols, const float* bias, bool load) {
    __m512 acc[MR][NP];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NP; ++j) {
            const int n = ncols - j * PU;
            const __mmask16 m = n >= PU ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1);
            __m512 v = load ? _mm512_maskz_loadu_ps(m, C + (size_t)r * ldc + j * PU) : _mm512_setzero_ps();
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j * PU));
            acc[r][j] = v;
        }
    const uint16_t* p = P + (size_t)kk0 * 2 * PU;
    for (int kk = kk0; kk < kk1; ++kk, p += 2 * PU) {
        __m512bh w[NP];
        for (int j = 0; j < NP; ++j) w[j] = (__m512bh)_mm512_loadu_si512((const void*)(p + j * pstride));
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            int32_t a2;
            std::memcpy(&a2, A + (size_t)r * lda + 2 * (size_t)kk, 4);
            __m512bh a = (__m512bh)_mm512_set1_epi32(a2);
            for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], w[j], a);
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < NP; ++j) {
            const int n = ncols - j * PU;
            if (n <= 0) break;
            const __mmask16 m = n >= PU ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
            _mm512_mask_storeu_ps(C + (size_t)r * ldc + j * PU, m, acc[r][j]);
        }
}

template <int NP>
TBF void rows(int M, int kk0, int kk1, const uint16_t* A, long lda, const uint16_t* P, long pstride, float* C,
              long ldc, int ncols, const float* bias, bool load) {
    int m = 0;
    for (; m + 8 <= M; m += 8) tile<8, NP>(kk0, kk1, A + (size_t)m * lda, lda, P, pstride, C + (size_t)m * ldc, ldc, ncols, bias, load);
    switch (M - m) {
#define GRUKIT_BF_CASE(R) \
    case R: tile<R, NP>(kk0, kk1, A + (size_t)m * lda, lda, P, pstride, C + (size_t)m * ldc, ldc, ncols, bias, load); break;
        GRUKIT_BF_CASE(7) GRUKIT_BF_CASE(6) GRUKIT_BF_CASE(5) GRUKIT_BF_CASE(4) GRUKIT_BF_CASE(3) GRUKIT_BF_CASE(2)
        GRUKIT_BF_CASE(1)
#undef GRUKIT_BF_CASE
        default: break;
    }
}

TBF void gemm_dp(int M, int N, int K, const uint16_t* A, long lda, const uint16_t* P, float* C, long ldc,
                 const float* bias, int accumulate, int nthreads) {
    const int Kp = (K + 1) & ~1, np = (N + PU - 1) / PU;
    const long pstride = (long)Kp * PU;  // one panel
    // a thread owns rows [lo, hi) in blocks of MB rows; the panels are walked in groups of 3 (≤ 3·16 columns)
    const int MB = 64;
    const int nmb = (M + MB - 1) / MB;
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)M * N * K < 2e6 || nmb < 2) nt = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int lo, hi;
        split(nmb, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int k0 = 0; k0 < Kp; k0 += KC) {
            const int kk0 = k0 / 2, kk1 = (k0 + KC < Kp ? k0 + KC : Kp) / 2;
            const bool load = accumulate || k0 > 0;
            for (int b = lo; b < hi; ++b) {
                const int m0 = b * MB, mr = M - m0 < MB ? M - m0 : MB;
                for (int p = 0; p < np; p += 3) {
                    const int left = np - p, ncols = N - p * PU;
                    const float* bb = (bias && k0 == 0) ? bias + p * PU : nullptr;
                    const uint16_t* Pp = P + (size_t)p * pstride;
                    float* Cp = C + (size_t)m0 * ldc + p * PU;
                    const uint16_t* Ap = A + (size_t)m0 * lda;
                    if (left >= 3) rows<3>(mr, kk0, kk1, Ap, lda, Pp, pstride, Cp, ldc, ncols, bb, load);
                    else if (left == 2) rows<2>(mr, kk0, kk1, Ap, lda, Pp, pstride, Cp, ldc, ncols, bb, load);
                    else rows<1>(mr, kk0, kk1, Ap, lda, Pp, pstride, Cp, ldc, ncols, bb, load);
                }
            }
        }
    }
}

bool has_dp() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16");
}
#else
bool has_dp() { return false; }
#endif

// ------------------------------------------------------------------------------------------------------------
// The recurrent forward in bfloat16 (reset_after, batches above the matrix-vector range): the fp32 kernel's
// mode 3 (csrc/gru_fused.cpp, Fused3) with W_hh packed as bf16 pairs, P[p][kk][g][u][2] = W_hh[g·H + p·16 + u]
// [2kk + {0,1}], and the state's bf16 copy (written by the epilogue that writes the fp32 state) as the left
// factor. The products accumulate in fp32; the state, the gates and everything saved stay fp32.
#if GRUKIT_BF_X86
typedef grukit_simd::f32x16 vf;
inline vf vbc(float a) { return a - (vf){}; }
inline vf vld(const float* p, int n) {
    vf r = vbc(0.f);
    if (n == PU) std::memcpy(&r, p, sizeof(r));
    else for (int i = 0; i < n; ++i) r[i] = p[i];
    return r;
}
inline void vst(float* p, vf a, int n) {
    if (n == PU) std::memcpy(p, &a, sizeof(a));
    else for (int i = 0; i < n; ++i) p[i] = a[i];
}
inline vf vsig(vf x) { return 1.f / (1.f + grukit_simd::exp16(-x)); }
inline vf vtanh_(vf x) { return 1.f - 2.f / (1.f + grukit_simd::exp16(x + x)); }
TBF inline void vst_bf(uint16_t* p, vf a, int n) {
    __m256i b = (__m256i)_mm512_cvtneps_pbh((__m512)a);
    uint16_t tmp[PU];
    std::memcpy(tmp, &b, sizeof(tmp));
    std::memcpy(p, tmp, sizeof(uint16_t) * n);
}

struct Fwd3bf {
    enum { MRMAX = 8 };
    int T_, B, H, Hp, np;
    const float *gi, *bhn;
    const uint16_t* P;
    const int64_t* lengths;
    int reverse;
    float *out, *hprev, *gates, *hA, *hB;
    uint16_t *bA, *bB;  // bf16 copies of hA, hB (B × Hp)
    bool save;

    template <int MR> TBF void tile(int t, int p, int b0, const float* hc, float* hx, const uint16_t* bc, uint16_t* bx) const {
        __m512 acc[MR][3];
        for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_ps();
        const uint16_t* w = P + (size_t)p * Hp * 3 * PU;
        const uint16_t* x = bc + (size_t)b0 * Hp;
        for (int kk = 0; kk < Hp / 2; ++kk, w += 6 * PU) {
            __m512bh w0 = (__m512bh)_mm512_loadu_si512((const void*)w);
            __m512bh w1 = (__m512bh)_mm512_loadu_si512((const void*)(w + 2 * PU));
            __m512bh w2 = (__m512bh)_mm512_loadu_si512((const void*)(w + 4 * PU));
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                int32_t a2;
                std::memcpy(&a2, x + (size_t)r * Hp + 2 * kk, 4);
                __m512bh a = (__m512bh)_mm512_set1_epi32(a2);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], w0, a);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], w1, a);
                acc[r][2] = _mm512_dpbf16_ps(acc[r][2], w2, a);
            }
        }
        const int j = p * PU, n = H - j < PU ? H - j : PU;
        for (int r = 0; r < MR; ++r) {
            const int b = b0 + r;
            const size_t row = (size_t)t * B + b;
            const float* g = gi + row * 3 * H;
            vf hv = vld(hc + (size_t)b * H + j, n);
            if (hprev) vst(hprev + row * H + j, hv, n);
            float* gs = save ? gates + row * 4 * H : nullptr;
            if (lengths && t >= lengths[b]) {
                vst(out + row * H + j, vbc(0.f), n);
                vst(hx + (size_t)b * H + j, hv, n);
                vst_bf(bx + (size_t)b * Hp + j, hv, n);
                if (save) for (int q = 0; q < 4; ++q) vst(gs + q * H + j, vbc(0.f), n);
                continue;
            }
            vf rg = vsig(vld(g + j, n) + (vf)acc[r][0]);
            vf zg = vsig(vld(g + H + j, n) + (vf)acc[r][1]);
            vf hn = (vf)acc[r][2];
            if (bhn) hn += vld(bhn + j, n);
            vf nn = vtanh_(vld(g + 2 * H + j, n) + rg * hn);
            vf hnew = nn + zg * (hv - nn);
            vst(out + row * H + j, hnew, n);
            vst(hx + (size_t)b * H + j, hnew, n);
            vst_bf(bx + (size_t)b * Hp + j, hnew, n);
            if (save) vst(gs + j, rg, n), vst(gs + H + j, zg, n), vst(gs + 2 * H + j, nn, n), vst(gs + 3 * H + j, hn, n);
        }
    }
    TBF void step(int s, int tid, int nt) const {
        const int t = reverse ? T_ - 1 - s : s;
        const float* hc = (s & 1) ? hB : hA;
        float* hx = (s & 1) ? hA : hB;
        const uint16_t* bc = (s & 1) ? bB : bA;
        uint16_t* bx = (s & 1) ? bA : bB;
        int lo, hi;
        split(np, tid, nt, &lo, &hi);
        for (int p = lo; p < hi; ++p) {
            int b0 = 0;
            for (; b0 + MRMAX <= B; b0 += MRMAX) tile<MRMAX>(t, p, b0, hc, hx, bc, bx);
            switch (B - b0) {
#define GRUKIT_BF_FCASE(R) case R: tile<R>(t, p, b0, hc, hx, bc, bx); break;
                GRUKIT_BF_FCASE(7) GRUKIT_BF_FCASE(6) GRUKIT_BF_FCASE(5) GRUKIT_BF_FCASE(4) GRUKIT_BF_FCASE(3)
                GRUKIT_BF_FCASE(2) GRUKIT_BF_FCASE(1)
#undef GRUKIT_BF_FCASE
                default: break;
            }
        }
    }
};

uint16_t* alloc16(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, n * 2 + 64) != 0) return nullptr;
    std::memset(p, 0, n * 2 + 64);
    return (uint16_t*)p;
}
float* allocf(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, n * 4 + 64) != 0) return nullptr;
    std::memset(p, 0, n * 4 + 64);
    return (float*)p;
}

TBF int forward3_bf16(int T_, int B, int H, const float* gi, const float* bhn, const float* w_hh, const float* h0,
                      const int64_t* lengths, int reverse, float* out, float* hn, float* hprev, float* gates,
                      int nthreads) {
    Fwd3bf s;
    s.T_ = T_, s.B = B, s.H = H, s.Hp = (H + 1) & ~1, s.np = (H + PU - 1) / PU;
    s.gi = gi, s.bhn = bhn, s.lengths = lengths, s.reverse = reverse;
    s.out = out, s.hprev = hprev, s.gates = gates, s.save = gates != nullptr;
    const int Hp = s.Hp;
    uint16_t* P = alloc16((size_t)s.np * Hp * 3 * PU);
    float* other = allocf((size_t)B * H);
    uint16_t* bA = alloc16((size_t)B * Hp);
    uint16_t* bB = alloc16((size_t)B * Hp);
    if (!P || !other || !bA || !bB) {
        std::free(P), std::free(other), std::free(bA), std::free(bB);
        return 1;
    }
    for (int p = 0; p < s.np; ++p)
        for (int k = 0; k < Hp; ++k) {
            uint16_t* d = P + ((size_t)p * Hp + (k & ~1)) * 3 * PU + (k & 1);
            for (int g = 0; g < 3; ++g)
                for (int u = 0; u < PU; ++u) {
                    const int i = p * PU + u;
                    d[(g * PU + u) * 2] = (i < H && k < H) ? f2bf(w_hh[((size_t)g * H + i) * H + k]) : (uint16_t)0;
                }
        }
    for (int b = 0; b < B; ++b)
        for (int k = 0; k < H; ++k) bA[(size_t)b * Hp + k] = f2bf(h0[(size_t)b * H + k]);
    s.P = P, s.hA = hn, s.hB = other, s.bA = bA, s.bB = bB;
    std::memcpy(hn, h0, sizeof(float) * (size_t)B * H);
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)B * 3.0 * H * H < 98304.0 || s.np < 2) nt = 1;
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
    if (T_ & 1) std::memcpy(hn, other, sizeof(float) * (size_t)B * H);
    std::free(P), std::free(other), std::free(bA), std::free(bB);
    return 0;
}
// The recurrent backward in bfloat16 (reset_after): the fp32 kernel's mode 3 (Bwd3 in csrc/gru_fused.cpp) with
// the product mv = dgh_t · W_hh taken on bf16 operands: W_hh packed as pairs along its 3H rows,
// Q[p][kk][u][2] = W_hh[2kk + {0,1}][p·16 + u], and a bf16 copy of each step's dgh rows (written by the epilogue
// that writes the fp32 dgh, double-buffered by walk parity). Everything else — dh, the gate derivatives, dgi,
// dgh, the bias sums — is fp32 as in the fp32 kernel.
struct Bwd3bf {
    enum { MRMAX = 8, NPMAX = 3 };
    int T_, B, H, K, Kp, np;
    const uint16_t* Q;
    const float* gates;
    const float* dout;
    long sdt, sdb;
    const float *hprev, *outp, *h0;
    const int64_t* lengths;
    int reverse;
    float *dgi, *dgh, *dhc, *dh0;
    uint16_t* gb[2];  // bf16 dgh rows of the step walked last / now (B × Kp)
    double* db;
    float* dbs;
    const float* prow(int t, int b) const {
        if (hprev) return hprev + ((size_t)t * B + b) * H;
        if (t == (reverse ? T_ - 1 : 0)) return h0 + (size_t)b * H;
        return outp + ((size_t)(reverse ? t + 1 : t - 1) * B + b) * H;
    }
    void addb(int j, int n, vf v) const { vst(dbs + j, vld(dbs + j, n) + v, n); }
    void flush(int p_lo, int p_hi) const {
        const int j0 = p_lo * PU, j1 = p_hi * PU < H ? p_hi * PU : H;
        for (int s4 = 0; s4 < 4; ++s4)
            for (int j = j0; j < j1; ++j) db[s4 * H + j] += dbs[s4 * H + j], dbs[s4 * H + j] = 0;
    }
    TBF void ew(int t, int b, int j, int n, vf mvv, uint16_t* gbx) const {
        const size_t row = (size_t)t * B + b;
        float* dc = dhc + (size_t)b * H + j;
        vf dh = vld(dc, n) + mvv;
        float* a = dgi + row * 3 * H;
        float* c = dgh + row * 3 * H;
        uint16_t* cb = gbx + (size_t)b * Kp;
        if (lengths && t >= lengths[b]) {
            const vf zero = vbc(0.f);
            for (int q = 0; q < 3; ++q) vst(a + q * H + j, zero, n), vst(c + q * H + j, zero, n), vst_bf(cb + q * H + j, zero, n);
            vst(dc, dh, n);
            return;
        }
        if (dout) dh += vld(dout + (size_t)t * sdt + (size_t)b * sdb + j, n);
        const float* g = gates + row * 4 * H;
        vf r = vld(g + j, n), z = vld(g + H + j, n), nn = vld(g + 2 * H + j, n);
        vf hn = vld(g + 3 * H + j, n), hp = vld(prow(t, b) + j, n);
        vf dz = dh * (hp - nn);
        vf dan = dh * (1.f - z) * (1.f - nn * nn);
        vf dar = dan * hn * r * (1.f - r);
        vf daz = dz * z * (1.f - z);
        vf danr = dan * r;
        vst(a + j, dar, n), vst(a + H + j, daz, n), vst(a + 2 * H + j, dan, n);
        vst(c + j, dar, n), vst(c + H + j, daz, n), vst(c + 2 * H + j, danr, n);
        vst_bf(cb + j, dar, n), vst_bf(cb + H + j, daz, n), vst_bf(cb + 2 * H + j, danr, n);
        vst(dc, dh * z, n);
        if (db) addb(j, n, dar), addb(H + j, n, daz), addb(2 * H + j, n, dan), addb(3 * H + j, n, danr);
    }
    template <int MR, int NP> TBF void tile(int tdst, int p0, int b0, const uint16_t* gbc, uint16_t* gbx) const {
        __m512 acc[MR][NP];
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NP; ++c) acc[r][c] = _mm512_setzero_ps();
        const uint16_t* x = gbc + (size_t)b0 * Kp;
        const size_t ps = (size_t)Kp * PU;
        const uint16_t* q = Q + (size_t)p0 * ps;
        for (int kk = 0; kk < Kp / 2; ++kk, q += 2 * PU) {
            __m512bh w[NP];
            for (int c = 0; c < NP; ++c) w[c] = (__m512bh)_mm512_loadu_si512((const void*)(q + c * ps));
#pragma GCC unroll 8
            for (int r = 0; r < MR; ++r) {
                int32_t a2;
                std::memcpy(&a2, x + (size_t)r * Kp + 2 * kk, 4);
                __m512bh a = (__m512bh)_mm512_set1_epi32(a2);
                for (int c = 0; c < NP; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], w[c], a);
            }
        }
        for (int c = 0; c < NP; ++c) {
            const int j = (p0 + c) * PU, n = H - j < PU ? H - j : PU;
            for (int r = 0; r < MR; ++r) {
                if (tdst >= 0) {
                    ew(tdst, b0 + r, j, n, (vf)acc[r][c], gbx);
                } else {
                    float* d = dh0 + (size_t)(b0 + r) * H + j;
                    vst(d, vld(dhc + (size_t)(b0 + r) * H + j, n) + (vf)acc[r][c], n);
                }
            }
        }
    }
    template <int NP> TBF void rows(int tdst, int p0, const uint16_t* gbc, uint16_t* gbx) const {
        int b0 = 0;
        for (; b0 + MRMAX <= B; b0 += MRMAX) tile<MRMAX, NP>(tdst, p0, b0, gbc, gbx);
        switch (B - b0) {
#define GRUKIT_BF_BCASE(R) case R: tile<R, NP>(tdst, p0, b0, gbc, gbx); break;
            GRUKIT_BF_BCASE(7) GRUKIT_BF_BCASE(6) GRUKIT_BF_BCASE(5) GRUKIT_BF_BCASE(4) GRUKIT_BF_BCASE(3)
            GRUKIT_BF_BCASE(2) GRUKIT_BF_BCASE(1)
#undef GRUKIT_BF_BCASE
            default: break;
        }
    }
    int t_of(int s) const { return reverse ? T_ - 1 - s : s; }
    TBF void walk(int w, int tid, int nt) const {
        const int ng = (np + NPMAX - 1) / NPMAX;
        int lo, hi;
        split(ng, tid, nt, &lo, &hi);
        if (db && w > 0) flush(lo * NPMAX, hi * NPMAX < np ? hi * NPMAX : np);
        uint16_t* gbx = gb[w & 1];
        const uint16_t* gbc = gb[(w + 1) & 1];
        if (w == 0) {
            const int t = t_of(T_ - 1);
            for (int gp = lo; gp < hi; ++gp)
                for (int p = gp * NPMAX; p < np && p < (gp + 1) * NPMAX; ++p) {
                    const int j = p * PU, n = H - j < PU ? H - j : PU;
                    for (int b = 0; b < B; ++b) ew(t, b, j, n, vbc(0.f), gbx);
                }
            return;
        }
        const int tdst = w < T_ ? t_of(T_ - 1 - w) : -1;
        for (int gp = lo; gp < hi; ++gp) {
            const int p0 = gp * NPMAX, left = np - p0;
            if (left >= 3) rows<3>(tdst, p0, gbc, gbx);
            else if (left == 2) rows<2>(tdst, p0, gbc, gbx);
            else rows<1>(tdst, p0, gbc, gbx);
        }
    }
};

TBF int backward3_bf16(int T_, int B, int H, const float* w_hh, const int64_t* lengths, int reverse,
                       const float* dout, long sdt, long sdb, const float* dhn, const float* hprev, const float* outp,
                       const float* h0, const float* gates, float* dgi, float* dgh, float* dh0, double* db,
                       int nthreads) {
    Bwd3bf s;
    s.T_ = T_, s.B = B, s.H = H, s.K = 3 * H, s.Kp = (3 * H + 1) & ~1, s.np = (H + PU - 1) / PU;
    s.lengths = lengths, s.reverse = reverse, s.dout = dout, s.sdt = sdt, s.sdb = sdb;
    s.hprev = hprev, s.outp = outp, s.h0 = h0, s.gates = gates, s.dgi = dgi, s.dgh = dgh, s.dh0 = dh0, s.db = db;
    const int Kp = s.Kp;
    if (db) std::memset(db, 0, sizeof(double) * 4 * (size_t)H);
    float* dbs = db ? allocf((size_t)4 * H + PU) : nullptr;
    uint16_t* Q = alloc16((size_t)s.np * Kp * PU);
    float* dhc = allocf((size_t)B * H);
    uint16_t* g0 = alloc16((size_t)B * Kp);
    uint16_t* g1 = alloc16((size_t)B * Kp);
    if (!Q || !dhc || !g0 || !g1 || (db && !dbs)) {
        std::free(Q), std::free(dhc), std::free(dbs), std::free(g0), std::free(g1);
        return 1;
    }
    for (int p = 0; p < s.np; ++p)
        for (int k = 0; k < Kp; ++k)
            for (int u = 0; u < PU; ++u) {
                const int i = p * PU + u;
                Q[((size_t)p * Kp + (k & ~1)) * PU + 2 * u + (k & 1)] =
                    (i < H && k < s.K) ? f2bf(w_hh[(size_t)k * H + i]) : (uint16_t)0;
            }
    if (dhn) std::memcpy(dhc, dhn, sizeof(float) * (size_t)B * H);
    s.Q = Q, s.dhc = dhc, s.dbs = dbs, s.gb[0] = g0, s.gb[1] = g1;
    int nt = nthreads < 1 ? 1 : nthreads;
    const int ng = (s.np + Bwd3bf::NPMAX - 1) / Bwd3bf::NPMAX;
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
    std::free(Q), std::free(dhc), std::free(dbs), std::free(g0), std::free(g1);
    return 0;
}
#endif

void gemm_generic(int M, int N, int K, const uint16_t* A, long lda, const uint16_t* P, float* C, long ldc,
                  const float* bias, int accumulate, int nthreads) {
    const int Kp = (K + 1) & ~1;
    const long pstride = (long)Kp * PU;
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)M * N * K < 2e6) nt = 1;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int m = 0; m < M; ++m) {
        float acc[PU];
        for (int n0 = 0; n0 < N; n0 += PU) {
            const uint16_t* p = P + (size_t)(n0 / PU) * pstride;
            for (int u = 0; u < PU; ++u) acc[u] = 0.f;
            for (int kk = 0; kk < Kp / 2; ++kk, p += 2 * PU) {
                const float a0 = bf2f(A[(size_t)m * lda + 2 * kk]), a1 = bf2f(A[(size_t)m * lda + 2 * kk + 1]);
                for (int u = 0; u < PU; ++u) acc[u] += a0 * bf2f(p[2 * u]) + a1 * bf2f(p[2 * u + 1]);
            }
            for (int u = 0; u < PU && n0 + u < N; ++u) {
                float v = acc[u];
                if (bias) v += bias[n0 + u];
                float* c = C + (size_t)m * ldc + n0 + u;
                *c = accumulate ? *c + v : v;
            }
        }
    }
}

template <class S, class C>
void pack_any(int N, int K, const S* B, long sn, long sk, uint16_t* P, int nthreads, C cvt) {
    const int Kp = (K + 1) & ~1, np = (N + PU - 1) / PU;
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)N * K < 1e6) nt = 1;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int p = 0; p < np; ++p) {
        uint16_t* d = P + (size_t)p * Kp * PU;
        for (int k = 0; k < Kp; ++k) {
            uint16_t* dk = d + (size_t)(k >> 1) * 2 * PU + (k & 1);
            for (int u = 0; u < PU; ++u) {
                const int n = p * PU + u;
                dk[2 * u] = (n < N && k < K) ? cvt(B[(size_t)n * sn + (size_t)k * sk]) : (uint16_t)0;
            }
        }
    }
}

#if GRUKIT_BF_X86
// Vector forms of the two float32 → bf16 conversions (AVX-512-BF16 vcvtne2ps2bf16: nearest even; it treats
// subnormal inputs as zero, a difference far below a bf16 unit at the values a GRU multiplies).
// pack, B with unit n stride: rows k, k+1 of 16 units → one 32-value panel line [u][2]
TBF void pack_f32_unit_n(int N, int K, const float* B, long sk, uint16_t* P, int p_lo, int p_hi) {
    const int Kp = (K + 1) & ~1;
    alignas(64) static const uint16_t idx_[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                   8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_load_si512((const void*)idx_);
    // Blocked over k: a block's rows are read across every panel while they are in cache. Panel by panel
    // over all of k, a transposed operand (a gradient (T·B) × 3H read as 3H × T·B) was read 64 bytes per
    // row from thousands of rows and pages for each panel: ~4× slower. Same values, same order per panel.
    enum { KB = 64 };
    for (int k0 = 0; k0 < Kp; k0 += KB) {
        const int k1 = k0 + KB < Kp ? k0 + KB : Kp;
        for (int p = p_lo; p < p_hi; ++p) {
            const int n0 = p * PU, nn = N - n0 < PU ? N - n0 : PU;
            const __mmask16 m = nn >= PU ? (__mmask16)0xFFFF : (__mmask16)((1u << nn) - 1);
            uint16_t* d = P + (size_t)p * Kp * PU + (size_t)k0 * PU;
            for (int k = k0; k < k1; k += 2, d += 2 * PU) {
                __m512 a = _mm512_maskz_loadu_ps(m, B + (size_t)k * sk + n0);
                __m512 b = k + 1 < K ? _mm512_maskz_loadu_ps(m, B + (size_t)(k + 1) * sk + n0) : _mm512_setzero_ps();
                __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // [a0..a15, b0..b15]
                _mm512_storeu_si512((void*)d, _mm512_permutexvar_epi16(idx, v));
            }
        }
    }
}
// rows, unit k stride: 32 values per instruction
TBF void rows_f32_unit_k(int K, const float* s, uint16_t* d) {
    int k = 0;
    for (; k + 32 <= K; k += 32)
        _mm512_storeu_si512((void*)(d + k), (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16), _mm512_loadu_ps(s + k)));
    for (; k < K; ++k) d[k] = f2bf(s[k]);
}
#endif
}  // namespace

extern "C" {

// 1 when the AVX-512-BF16 path runs on this CPU, else 0 (the portable path)
int grukit_bf16_best_path() { return has_dp() ? 1 : 0; }

// uint16 elements grukit_bf16_pack writes for an N × K operand
long grukit_bf16_packed_size(int N, int K) { return (long)((N + PU - 1) / PU) * PU * ((K + 1) & ~1); }

// Pack B (N × K, element (n, k) at B[n·sn + k·sk]; bf16 bits, or float32 rounded to nearest even with the _f32
// form) into panels: P[p][kk][u][2] = B[p·16+u][2kk + {0,1}] (zero past N and K).
void grukit_bf16_pack(int N, int K, const uint16_t* B, long sn, long sk, uint16_t* P, int nthreads) {
    pack_any(N, K, B, sn, sk, P, nthreads, [](uint16_t v) { return v; });
}
void grukit_bf16_pack_f32(int N, int K, const float* B, long sn, long sk, uint16_t* P, int nthreads) {
#if GRUKIT_BF_X86
    if (sn == 1 && has_dp()) {
        const int np = (N + PU - 1) / PU;
        int nt = nthreads < 1 ? 1 : nthreads;
        if ((double)N * K < 1e6) nt = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int lo, hi;
            split(np, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
            pack_f32_unit_n(N, K, B, sk, P, lo, hi);
        }
        return;
    }
#endif
    pack_any(N, K, B, sn, sk, P, nthreads, f2bf);
}

// dst (M rows of lda bf16, k contiguous) = src (M × K float32, element (m, k) at src[m·sm + k·sk]) rounded to
// nearest even (padding columns are the caller's). Blocked over k so transposed reads stay in cache. path: -1 the
// best this CPU runs; 0 the portable loop, one value at a time; 1 a vector path, which must exist for these
// strides on this CPU: a transposed source (sm = 1) takes csrc/gru_bf16_cvt.cpp's AVX-512 conversion (the
// portable loop's bits), unit k stride AVX-512-BF16's vcvtne2ps2bf16 (subnormal inputs become zero). Returns 0,
// or 2 when path 1 has no vector path to take.
int grukit_bf16_rows_f32(int M, int K, const float* src, long sm, long sk, uint16_t* dst, long lda, int nthreads,
                         int path) {
    enum { KB = 32 };
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)M * K < 1e6) nt = 1;
    if (path != 0 && sm == 1 && sk != 1 && grukit_bf16cvt::rows_unit_m_ok()) {
        grukit_bf16cvt::rows_unit_m(M, K, src, sk, dst, lda, nthreads);
        return 0;
    }
#if GRUKIT_BF_X86
    if (path != 0 && sk == 1 && has_dp()) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int m = 0; m < M; ++m) rows_f32_unit_k(K, src + (size_t)m * sm, dst + (size_t)m * lda);
        return 0;
    }
#endif
    if (path == 1) return 2;
    const int nkb = (K + KB - 1) / KB;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int b = 0; b < nkb; ++b) {
        const int k0 = b * KB, k1 = k0 + KB < K ? k0 + KB : K;
        for (int m = 0; m < M; ++m) {
            const float* s = src + (size_t)m * sm;
            uint16_t* d = dst + (size_t)m * lda;
            for (int k = k0; k < k1; ++k) d[k] = f2bf(s[(size_t)k * sk]);
        }
    }
    return 0;
}

// C (M × N, row stride ldc) = A (M × K bf16, row stride lda ≥ K rounded up to even, zero padded) · Bᵀ, B packed by
// grukit_bf16_pack, plus bias (N floats, or null), plus C itself when accumulate. path: 1 = AVX-512-BF16 (must be
// available), 0 = portable; -1 = the best this CPU runs.
int grukit_bf16_gemm(int M, int N, int K, const uint16_t* A, long lda, const uint16_t* P, float* C, long ldc,
                     const float* bias, int accumulate, int nthreads, int path) {
    if (lda < ((K + 1) & ~1)) return 3;
    if (path < 0) path = has_dp() ? 1 : 0;
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) {
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
                float* c = C + (size_t)m * ldc + n;
                *c = (accumulate ? *c : 0.f) + (bias ? bias[n] : 0.f);
            }
        return 0;
    }
#if GRUKIT_BF_X86
    if (path == 1) {
        if (!has_dp()) return 2;
        gemm_dp(M, N, K, A, lda, P, C, ldc, bias, accumulate, nthreads);
        return 0;
    }
#else
    if (path == 1) return 2;
#endif
    gemm_generic(M, N, K, A, lda, P, C, ldc, bias, accumulate, nthreads);
    return 0;
}

// The reset_after forward loop with bf16 recurrent products (see Fwd3bf): the arguments of grukit_fwd_f32 in
// mode 3, less the BLAS ones. Returns 0, 1 (out of memory) or 2 (no AVX-512-BF16 on this CPU).
int grukit_fwd3_bf16(int T_, int B, int H, const float* gi, const float* bhn, const float* w_hh, const float* h0,
                     const int64_t* lengths, int reverse, float* out, float* hn, float* hprev, float* gates,
                     int nthreads) {
#if GRUKIT_BF_X86
    if (!has_dp()) return 2;
    return forward3_bf16(T_, B, H, gi, bhn, w_hh, h0, lengths, reverse, out, hn, hprev, gates, nthreads);
#else
    return 2;
#endif
}

// The reset_after backward loop with bf16 recurrent products (see Bwd3bf): grukit_bwd_f32's arguments in mode 3
// for reset_after, less reset_after and the BLAS ones. Returns 0, 1 (out of memory) or 2 (no AVX-512-BF16).
int grukit_bwd3_bf16(int T_, int B, int H, const float* w_hh, const int64_t* lengths, int reverse, const float* dout,
                     long sdt, long sdb, const float* dhn, const float* hprev, const float* out, const float* h0,
                     const float* gates, float* dgi, float* dgh, float* dh0, double* db, int nthreads) {
#if GRUKIT_BF_X86
    if (!has_dp()) return 2;
    return backward3_bf16(T_, B, H, w_hh, lengths, reverse, dout, sdt, sdb, dhn, hprev, out, h0, gates, dgi, dgh,
                          dh0, db, nthreads);
#else
    return 2;
#endif
}

}  // extern "C"
