// Shared by the kernels compiled into one library (_build.py hashes this header with the sources): the float32
// exp every kernel's gates use, so they round identically, and the streaming steps' gate math and layer loop
// (gru_stream.cpp: float32 and bf16 weights; gru_int8.cpp: int8 weights).
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

// n ≤ 16 consecutive floats as one vector (zeros past n), and back
static inline f32x16 ldn16(const float* p, int n) {
    f32x16 r = 0.0f - (f32x16){};
    if (n == 16) {
        std::memcpy(&r, p, sizeof(r));
        return r;
    }
    for (int i = 0; i < n; ++i) r[i] = p[i];
    return r;
}
static inline void stn16(float* p, f32x16 a, int n) {
    if (n == 16) {
        std::memcpy(p, &a, sizeof(a));
        return;
    }
    for (int i = 0; i < n; ++i) p[i] = a[i];
}
static inline f32x16 sig16(f32x16 x) { return 1.0f / (1.0f + exp16(-x)); }
static inline f32x16 tanh16(f32x16 x) { return 1.0f - 2.0f / (1.0f + exp16(x + x)); }

// ---------------------------------------------------------------- the streaming steps (one batch row, one layer)
// reset_after=False: rh = σ(gi_r + gh_r) ⊙ h, the input of the W_hn product.
static inline void step_reset_times_h(int H, const float* gi, const float* gh, const float* h, float* rh) {
    for (int j = 0; j < H; j += 16) {
        const int n = H - j < 16 ? H - j : 16;
        const f32x16 r = sig16(ldn16(gi + j, n) + ldn16(gh + j, n));
        stn16(rh + j, r * ldn16(h + j, n), n);
    }
}

// The gates from the pre-activations gi = W_ih x + b_ih and gh = W_hh h + b_hh (3H each, rows r, z, n;
// reset_after=False: gh's n rows hold W_hn (r ⊙ h) + b_hn): out = n + z ⊙ (h − n) (out may alias h).
static inline void step_gates(int H, bool reset_after, const float* gi, const float* gh, const float* h,
                              float* out) {
    for (int j = 0; j < H; j += 16) {
        const int n = H - j < 16 ? H - j : 16;
        const f32x16 r = sig16(ldn16(gi + j, n) + ldn16(gh + j, n));
        const f32x16 z = sig16(ldn16(gi + H + j, n) + ldn16(gh + H + j, n));
        const f32x16 a = reset_after ? ldn16(gi + 2 * H + j, n) + r * ldn16(gh + 2 * H + j, n)
                                     : ldn16(gi + 2 * H + j, n) + ldn16(gh + 2 * H + j, n);
        const f32x16 nn = tanh16(a);
        const f32x16 hv = ldn16(h + j, n);
        stn16(out + j, nn + z * (hv - nn), n);
    }
}

// One step of L layers for B rows: x (B, I), h_in / h_out (L, B, H) (may alias), y (B, H) the top layer's new
// state or null. `row(K, in, h, p, out)` runs one layer for one batch row, p = params + nparams · layer.
template <class Row>
static inline void step_layers(int L, int I, int H, int B, int nparams, void* const* params, const float* x,
                               const float* h_in, float* h_out, float* y, Row&& row) {
    for (int b = 0; b < B; ++b) {
        const float* in = x + (size_t)b * I;
        int K = I;
        for (int l = 0; l < L; ++l) {
            const float* hl = h_in + ((size_t)l * B + b) * H;
            float* ol = h_out + ((size_t)l * B + b) * H;
            row(K, in, hl, params + (size_t)nparams * l, ol);
            in = ol, K = H;
        }
        if (y) std::memcpy(y + (size_t)b * H, in, sizeof(float) * H);
    }
}

}  // namespace grukit_simd
