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

#include "gru_abi.h"

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
    pack_any(N, K, B, sn, sk, P, nthreads, f2bf);
}

// dst (M rows of lda bf16, k contiguous) = src (M × K float32, element (m, k) at src[m·sm + k·sk]) rounded to
// nearest even (padding columns are the caller's). Blocked over k so transposed reads stay in cache.
void grukit_bf16_rows_f32(int M, int K, const float* src, long sm, long sk, uint16_t* dst, long lda, int nthreads) {
    enum { KB = 32 };
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)M * K < 1e6) nt = 1;
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

}  // extern "C"
