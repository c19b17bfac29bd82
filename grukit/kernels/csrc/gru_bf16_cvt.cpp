// float32 → bfloat16 rows of a transposed operand with AVX-512 (F, BW), for the autocast-bf16 backward's left
// operands: grukit_bf16_rows_f32 (csrc/gru_bf16.cpp) calls it when the source has unit stride along m (x and
// h_prev read as (I or H) × T·B). The portable loop there converts one value at a time, reading one float from
// each source row; here a block of 32 k × 16 m values is loaded as 32 vectors (unit m stride), rounded with
// the integer arithmetic of the scalar conversion (f2bf: nearest even, a NaN stays a quiet NaN, subnormals kept
// — the same bits, which vcvtne2ps2bf16 would not give for subnormal inputs), paired along k and transposed
// 16 × 16 as 32-bit words, so each of the 16 destination rows gets 32 bf16 values in one store.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gru_bf16_cvt.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TCV __attribute__((target("avx512f,avx512bw")))

namespace {

inline uint16_t f2bf(float f) {  // as in gru_bf16.cpp
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// 16 floats → their bf16 bits in the low half of each 32-bit lane (upper half zero), exactly as f2bf
TCV inline __m512i round16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    const __mmask16 nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

// w[kk] lane m → w[m] lane kk (16 × 16 words)
TCV inline void transpose16(__m512i w[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_epi32(w[2 * i], w[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(w[2 * i], w[2 * i + 1]);
    }
    // r[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i + 3
    __m512i r[16];
    for (int i = 0; i < 4; ++i) {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; ++j) {
        const __m512i a01 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44);  // lanes 0, 1 of each
        const __m512i b01 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44);
        const __m512i a23 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xEE);  // lanes 2, 3 of each
        const __m512i b23 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xEE);
        w[j] = _mm512_shuffle_i32x4(a01, b01, 0x88);
        w[4 + j] = _mm512_shuffle_i32x4(a01, b01, 0xDD);
        w[8 + j] = _mm512_shuffle_i32x4(a23, b23, 0x88);
        w[12 + j] = _mm512_shuffle_i32x4(a23, b23, 0xDD);
    }
}

// the k values [k0, k0 + 32) of rows [m0, m0 + mr), mr ≤ 16
TCV inline void block(const float* src, long sk, uint16_t* dst, long lda, int m0, int mr, int k0) {
    const __mmask16 mask = mr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << mr) - 1);
    __m512i w[16];
    const float* s = src + (size_t)k0 * sk + m0;
    for (int kk = 0; kk < 16; ++kk, s += 2 * sk) {
        const __m512i a = round16(_mm512_maskz_loadu_ps(mask, s));
        const __m512i b = round16(_mm512_maskz_loadu_ps(mask, s + sk));
        w[kk] = _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
    }
    transpose16(w);
    uint16_t* d = dst + (size_t)m0 * lda + k0;
    for (int m = 0; m < mr; ++m) _mm512_storeu_si512((void*)(d + (size_t)m * lda), w[m]);
}

}  // namespace

namespace grukit_bf16cvt {

bool rows_unit_m_ok() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); }

TCV void rows_unit_m(int M, int K, const float* src, long sk, uint16_t* dst, long lda, int nthreads) {
    const int nkb = K / 32;
    int nt = nthreads < 1 ? 1 : nthreads;
    if ((double)M * K < 1e6) nt = 1;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int b = 0; b < nkb; ++b)
        for (int m0 = 0; m0 < M; m0 += 16) block(src, sk, dst, lda, m0, M - m0 < 16 ? M - m0 : 16, b * 32);
    for (int k = nkb * 32; k < K; ++k)
        for (int m = 0; m < M; ++m) dst[(size_t)m * lda + k] = f2bf(src[(size_t)k * sk + m]);
}

}  // namespace grukit_bf16cvt

#else

namespace grukit_bf16cvt {
bool rows_unit_m_ok() { return false; }
void rows_unit_m(int, int, const float*, long, uint16_t*, long, int) {}
}  // namespace grukit_bf16cvt

#endif
