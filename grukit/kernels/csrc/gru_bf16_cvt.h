// csrc/gru_bf16_cvt.cpp: the AVX-512 float32 → bfloat16 conversion of a transposed operand (unit m stride),
// which grukit_bf16_rows_f32 (csrc/gru_bf16.cpp) chooses at run time.
#pragma once
#include <cstdint>

namespace grukit_bf16cvt {
// whether this CPU runs rows_unit_m (AVX-512 F and BW)
bool rows_unit_m_ok();
// dst[m·lda + k] = bf16(src[k·sk + m]) for m < M, k < K (nearest even, as the portable loop: the same bits)
void rows_unit_m(int M, int K, const float* src, long sk, uint16_t* dst, long lda, int nthreads);
}  // namespace grukit_bf16cvt
