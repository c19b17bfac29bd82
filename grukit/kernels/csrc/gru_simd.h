// Shared by gru_fused.cpp and gru_stream.cpp (both compiled into one library; _build.py hashes this header
// with the sources): the float32 exp both kernels' gates use, so they round identically.
#pragma once
#include <cstdint>
#include <cstring>

namespace grukit_simd {

typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));

// exp with Cody–Waite reduction and a degree-7 Taylor polynomial on |r| ≤ ln2/2; NaN propagates, the argument
// is clamped so 2^k stays a normal number (σ and tanh saturate correctly at the clamp).
static inline f32x16 exp16(f32x16 x) {
    const f32x16 hi = 88.0f - (f32x16){}, lo = -87.0f - (f32x16){};
    x = x > hi ? hi : x;
    x = x < lo ? lo : x;
    const f32x16 magic = 12582912.0f - (f32x16){};  // 1.5·2^23: adding it rounds to an integer
    f32x16 kf = (x * 1.44269504088896341f + magic) - magic;
    f32x16 r = x - kf * 0.693359375f - kf * -2.12194440e-4f;
    f32x16 p = (1.0f / 5040) - (f32x16){};
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    i32x16 ki = __builtin_convertvector(kf, i32x16);
    i32x16 bits = (ki + 127) << 23;
    f32x16 scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

}  // namespace grukit_simd
