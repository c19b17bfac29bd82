// Native kernels for the GRU variants (grukit/functional/gru.py defines the math): layer norm per gate group,
// recurrent (variational) dropout and zoneout; forward and backward, float32/float64. Loaded with ctypes by
// grukit/kernels/variants.py, which computes the input products for all steps with one GEMM (x W_ihᵀ, plus
// b_ih without layer norm), draws the masks and DropConnect-masks W_hh. Per step this loop does:
//   gi = γ_ih ⊙ LN_g(x W_ihᵀ) + b_ih             (with layer norm: the step's rows, normalized here)
//   hd = h ⊙ m                                   (recurrent dropout mask m (B, H), or hd = h)
//   reset_after:  gh = γ_hh ⊙ LN_g(hd W_hhᵀ) + b_hh                (three gate groups; without LN: + b_hh)
//                 r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r ⊙ gh_n)
//   otherwise:    gh_rz = γ ⊙ LN_g(hd W_rzᵀ) + b_rz,  r, z as above,
//                 gh_n = γ_n ⊙ LN(W_n (r ⊙ hd)) + b_n,  n = tanh(gi_n + gh_n)
//   h' = n + z ⊙ (h − n)                         (the undropped h)
//   zoneout:      h_t = d_t ? h : h'  (mask d_t (T, B, H) of {0, 1}), or h' + p (h − h') (eval: the expectation)
//   lengths:      steps at t ≥ length keep h and output zeros.
// Matrix products go to the BLAS gemm the caller hands over (torch's), or to a plain loop when it has none.
// Backward walks the steps in reverse; it writes the gradients of the input products and of the raw recurrent
// products (dX, dW_ih and dW_hh are then GEMMs over all steps in Python) and sums the gains' and biases'
// gradients as it goes.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gru_abi.h"
#include "gru_simd.h"

namespace {

typedef void (*sgemm_t)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                        const int*, const float*, const int*, const float*, float*, const int*);
typedef void (*dgemm_t)(const char*, const char*, const int*, const int*, const int*, const double*,
                        const double*, const int*, const double*, const int*, const double*, double*, const int*);
template <class T> struct Gemm;
template <> struct Gemm<float> {
    typedef sgemm_t fn;
};
template <> struct Gemm<double> {
    typedef dgemm_t fn;
};

// C (M × N row-major, ldc) = beta·C + A (M × K, lda) · op(W):
//   wt: op(W) = Wᵀ with W (N × K, ldw) row-major (the forward's h W_hhᵀ);
//   else op(W) = W with W (K × N, ldw) row-major (the backward's dg W_hh).
template <class T>
static void mm(typename Gemm<T>::fn gemm, bool wt, int M, int N, int K, const T* A, int lda, const T* W, int ldw,
               T beta, T* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (gemm) {  // column-major: Cᵀ (N × M) = op(W)ᵀ · Aᵀ
        const T one = 1;
        gemm(wt ? "T" : "N", "N", &N, &M, &K, &one, W, &ldw, A, &lda, &beta, C, &ldc);
        return;
    }
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            T s = 0;
            for (int k = 0; k < K; ++k) s += A[(size_t)m * lda + k] * (wt ? W[(size_t)n * ldw + k] : W[(size_t)k * ldw + n]);
            T* c = C + (size_t)m * ldc + n;
            *c = beta == (T)0 ? s : beta * *c + s;
        }
}

// In-place σ and tanh over n contiguous values (float32: the vector exp the fused kernels use).
static void exp_arr(float* x, int n) {
    using grukit_simd::f32x16;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        f32x16 v;
        std::memcpy(&v, x + i, sizeof(v));
        v = grukit_simd::exp16(v);
        std::memcpy(x + i, &v, sizeof(v));
    }
    if (i < n) {
        f32x16 v = 0.0f - (f32x16){};
        for (int k = 0; k < n - i; ++k) v[k] = x[i + k];
        v = grukit_simd::exp16(v);
        for (int k = 0; k < n - i; ++k) x[i + k] = v[k];
    }
}
static void exp_arr(double* x, int n) {
    for (int i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
template <class T> static void sigmoid_arr(T* x, int n) {
    for (int i = 0; i < n; ++i) x[i] = -x[i];
    exp_arr(x, n);
    for (int i = 0; i < n; ++i) x[i] = (T)1 / ((T)1 + x[i]);
}
template <class T> static void tanh_arr(T* x, int n) {
    for (int i = 0; i < n; ++i) x[i] = x[i] + x[i];
    exp_arr(x, n);
    for (int i = 0; i < n; ++i) x[i] = (T)1 - (T)2 / ((T)1 + x[i]);
}

// Σ a[i] and Σ a[i]·b[i] (b null: Σ a[i]²... not used) with 8 partial sums, so the compiler vectorizes them.
template <class T> static inline T sum8(const T* a, int n) {
    T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) s[k] += a[i + k];
    T r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) r += a[i];
    return r;
}
template <class T> static inline T sqdev8(const T* a, int n, T mu) {
    T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) {
            T d = a[i + k] - mu;
            s[k] += d * d;
        }
    T r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) r += (a[i] - mu) * (a[i] - mu);
    return r;
}

// One gate group of H values: out = gain ⊙ LN(a) + bias (gain null: a + bias); out may be a. Saves LN(a), 1/σ.
template <class T>
static void norm_group(const T* a, T* out, int H, const T* gain, const T* bias, double eps, T* xhat, T* rstd) {
    if (!gain) {
        for (int i = 0; i < H; ++i) out[i] = a[i] + (bias ? bias[i] : (T)0);
        return;
    }
    const T mu = sum8(a, H) / (T)H;
    const T rs = (T)1 / std::sqrt(sqdev8(a, H, mu) / (T)H + (T)eps);
    for (int i = 0; i < H; ++i) {
        T xh = (a[i] - mu) * rs;
        if (xhat) xhat[i] = xh;
        out[i] = gain[i] * xh + (bias ? bias[i] : (T)0);
    }
    if (rstd) *rstd = rs;
}

// The gradient through gain ⊙ LN(a) + bias for one group, in place: df (∂/∂ output) becomes ∂/∂a; the bias and
// gain gradients are added to dbias, dgain (either may be null). gain null: only the bias part.
template <class T>
static void norm_group_backward(T* df, int H, const T* gain, const T* xhat, T rstd, double* dgain, double* dbias) {
    if (dbias)
        for (int i = 0; i < H; ++i) dbias[i] += df[i];
    if (!gain) return;
    if (dgain)
        for (int i = 0; i < H; ++i) dgain[i] += df[i] * xhat[i];
    T s1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= H; i += 8)
        for (int k = 0; k < 8; ++k) {
            T g = df[i + k] * gain[i + k];
            s1[k] += g, s2[k] += g * xhat[i + k];
        }
    T m1 = ((s1[0] + s1[1]) + (s1[2] + s1[3])) + ((s1[4] + s1[5]) + (s1[6] + s1[7]));
    T m2 = ((s2[0] + s2[1]) + (s2[2] + s2[3])) + ((s2[4] + s2[5]) + (s2[6] + s2[7]));
    for (; i < H; ++i) m1 += df[i] * gain[i], m2 += df[i] * gain[i] * xhat[i];
    const T a1 = m1 / (T)H, a2 = m2 / (T)H;
    for (int j = 0; j < H; ++j) df[j] = rstd * (df[j] * gain[j] - a1 - xhat[j] * a2);
}

template <class T> static T* alloc(size_t n) {
    size_t bytes = (sizeof(T) * (n ? n : 1) + 63) / 64 * 64;
    T* p = (T*)std::aligned_alloc(64, bytes);
    if (p) std::memset(p, 0, bytes);
    return p;
}

struct Args {
    int T_, B, H, reverse, reset_after, zmode;  // zmode: 0 no zoneout, 1 a mask per step, 2 the constant zp
    double zp, eps;
    const int64_t* lengths;
    int t_of(int s) const { return reverse ? T_ - 1 - s : s; }
    bool valid(int t, int b) const { return lengths == nullptr || t < lengths[b]; }
};

// Layer norm of the input products (ln_ih non-null): gi holds the raw products x W_ihᵀ (T, B, 3H) and each step
// normalizes its rows into a step buffer: γ_ih ⊙ LN_g(·) + b_ih. Otherwise gi already is x W_ihᵀ + b_ih.
// saved (all may be null when nothing is kept for backward): hprev (T, B, H); gates (T, B, 4H) = r, z, n and the
// recurrent n term gh_n; xhat (T, B, 3H) = LN(raw recurrent products) and rstd (T, B, 3); the same of the input
// products in xhat_ih, rstd_ih.
template <class T>
static int forward(const Args& a, const T* gi, const T* ln_ih, const T* b_ih, const T* h0, const T* w_hh,
                   const T* b_hh, const T* ln_hh, const T* rmask, const T* zmask, T* out, T* hn, T* hprev, T* gates,
                   T* xhat, T* rstd, T* xhat_ih, T* rstd_ih, typename Gemm<T>::fn gemm) {
    const int B = a.B, H = a.H, H3 = 3 * H;
    T* h = hn;
    std::memcpy(h, h0, sizeof(T) * (size_t)B * H);
    T* hd = alloc<T>((size_t)B * H);
    T* gh = alloc<T>((size_t)B * H3);
    T* rh = alloc<T>((size_t)B * H);
    T* pre = alloc<T>((size_t)H3);
    T* gis = ln_ih ? alloc<T>((size_t)B * H3) : nullptr;
    if (!hd || !gh || !rh || !pre || (ln_ih && !gis)) {
        std::free(hd), std::free(gh), std::free(rh), std::free(pre), std::free(gis);
        return 1;
    }
    const T* bias_n = b_hh ? b_hh + 2 * H : nullptr;
    const T* gain_n = ln_hh ? ln_hh + 2 * H : nullptr;
    for (int s = 0; s < a.T_; ++s) {
        const int t = a.t_of(s);
        const size_t tb = (size_t)t * B;
        const T* gstep = gi + tb * H3;  // this step's input products, row b at gstep + b·3H
        if (ln_ih) {
            for (int b = 0; b < B; ++b)
                for (int k = 0; k < 3; ++k)
                    norm_group<T>(gstep + (size_t)b * H3 + k * H, gis + (size_t)b * H3 + k * H, H, ln_ih + k * H,
                                  b_ih ? b_ih + k * H : nullptr, a.eps,
                                  xhat_ih ? xhat_ih + (tb + b) * H3 + k * H : nullptr,
                                  rstd_ih ? rstd_ih + (tb + b) * 3 + k : nullptr);
            gstep = gis;
        }
        if (hprev) std::memcpy(hprev + tb * H, h, sizeof(T) * (size_t)B * H);
        const T* hin = h;
        if (rmask) {
            for (size_t i = 0; i < (size_t)B * H; ++i) hd[i] = h[i] * rmask[i];
            hin = hd;
        }
        const int ngroups = a.reset_after ? 3 : 2;
        mm<T>(gemm, true, B, ngroups * H, H, hin, H, w_hh, H, (T)0, gh, H3);
        for (int b = 0; b < B; ++b) {
            T* g = gh + (size_t)b * H3;
            for (int k = 0; k < ngroups; ++k)
                norm_group<T>(g + k * H, g + k * H, H, ln_hh ? ln_hh + k * H : nullptr, b_hh ? b_hh + k * H : nullptr,
                              a.eps, xhat ? xhat + (tb + b) * H3 + k * H : nullptr,
                              rstd ? rstd + (tb + b) * 3 + k : nullptr);
        }
        if (!a.reset_after) {  // gh_n = LN(W_n (r ⊙ hd)): r first
            for (int b = 0; b < B; ++b) {
                const T* gir = gstep + (size_t)b * H3;
                const T* g = gh + (size_t)b * H3;
                for (int j = 0; j < H; ++j) pre[j] = gir[j] + g[j];
                sigmoid_arr(pre, H);
                for (int j = 0; j < H; ++j) rh[(size_t)b * H + j] = pre[j] * hin[(size_t)b * H + j];
            }
            mm<T>(gemm, true, B, H, H, rh, H, w_hh + (size_t)2 * H * H, H, (T)0, gh + 2 * H, H3);
            for (int b = 0; b < B; ++b) {
                T* g = gh + (size_t)b * H3 + 2 * H;
                norm_group<T>(g, g, H, gain_n, bias_n, a.eps, xhat ? xhat + (tb + b) * H3 + 2 * H : nullptr,
                              rstd ? rstd + (tb + b) * 3 + 2 : nullptr);
            }
        }
        for (int b = 0; b < B; ++b) {
            const size_t row = tb + b;
            T* o = out + row * H;
            T* hb = h + (size_t)b * H;
            T* gs = gates ? gates + row * 4 * H : nullptr;
            if (!a.valid(t, b)) {
                std::memset(o, 0, sizeof(T) * H);
                if (gs) std::memset(gs, 0, sizeof(T) * 4 * H);
                continue;
            }
            const T* gir = gstep + (size_t)b * H3;
            const T* g = gh + (size_t)b * H3;
            for (int j = 0; j < 2 * H; ++j) pre[j] = gir[j] + g[j];
            sigmoid_arr(pre, 2 * H);  // r, z
            if (a.reset_after)
                for (int j = 0; j < H; ++j) pre[2 * H + j] = gir[2 * H + j] + pre[j] * g[2 * H + j];
            else
                for (int j = 0; j < H; ++j) pre[2 * H + j] = gir[2 * H + j] + g[2 * H + j];
            tanh_arr(pre + 2 * H, H);
            const T* zm = a.zmode == 1 ? zmask + row * H : nullptr;
            const T zp = (T)a.zp;
            for (int j = 0; j < H; ++j) {
                const T z = pre[H + j], n = pre[2 * H + j], hp = hb[j];
                T hnew = n + z * (hp - n);
                if (zm) hnew = zm[j] != (T)0 ? hp : hnew;
                else if (a.zmode == 2) hnew = hnew + zp * (hp - hnew);
                o[j] = hnew;
                hb[j] = hnew;
            }
            if (gs) {
                std::memcpy(gs, pre, sizeof(T) * H3);
                std::memcpy(gs + H3, g + 2 * H, sizeof(T) * H);
            }
        }
    }
    std::free(hd), std::free(gh), std::free(rh), std::free(pre), std::free(gis);
    return 0;
}

// dout rows at dout + t·sdt + b·sdb (strides may be 0; dout may be null); dhn may be null. Writes dgi (T, B, 3H:
// the gradient of gi as the caller passed it, i.e. of the raw x W_ihᵀ with ln_ih), dgraw (T, B, 3H: the gradient
// of the raw recurrent products hd W_hhᵀ, or of W_n (r ⊙ hd) in the n block) and dh0 (B, H); adds the gradients
// of the gains and biases to dgain_hh, dbias_hh, dgain_ih, dbias_ih (3H doubles each; any may be null).
template <class T>
static int backward(const Args& a, const T* w_hh, const T* ln_hh, const T* ln_ih, const T* rmask, const T* zmask,
                    const T* dout, long sdt, long sdb, const T* dhn, const T* hprev, const T* gates, const T* xhat,
                    const T* rstd, const T* xhat_ih, const T* rstd_ih, T* dgi, T* dgraw, T* dh0, double* dgain_hh,
                    double* dbias_hh, double* dgain_ih, double* dbias_ih, typename Gemm<T>::fn gemm) {
    const int B = a.B, H = a.H, H3 = 3 * H;
    T* dh = alloc<T>((size_t)B * H);   // carried gradient of the state after the step
    T* dhd = alloc<T>((size_t)B * H);  // gradient of the dropped state hd
    T* drh = alloc<T>((size_t)B * H);  // reset_after=False: gradient of r ⊙ hd
    if (!dh || !dhd || !drh) {
        std::free(dh), std::free(dhd), std::free(drh);
        return 1;
    }
    if (dhn) std::memcpy(dh, dhn, sizeof(T) * (size_t)B * H);
    const T zp = (T)a.zp;
    auto hh_group = [&](T* df, size_t row, int k) {  // one group of the recurrent products, in place
        norm_group_backward<T>(df, H, ln_hh ? ln_hh + k * H : nullptr, xhat ? xhat + row * H3 + k * H : nullptr,
                               rstd ? rstd[row * 3 + k] : (T)0, dgain_hh ? dgain_hh + k * H : nullptr,
                               dbias_hh ? dbias_hh + k * H : nullptr);
    };
    for (int s = a.T_ - 1; s >= 0; --s) {
        const int t = a.t_of(s);
        const size_t tb = (size_t)t * B;
        // elementwise: from dh (carried, after the step) to the gate pre-activations; dh becomes the direct part
        // of the gradient of the state before the step
        for (int b = 0; b < B; ++b) {
            const size_t row = tb + b;
            T* ai = dgi + row * H3;
            T* ar = dgraw + row * H3;
            T* dhb = dh + (size_t)b * H;
            if (!a.valid(t, b)) {  // the state passes through unchanged, the output is a constant zero
                std::memset(ai, 0, sizeof(T) * H3), std::memset(ar, 0, sizeof(T) * H3);
                continue;
            }
            const T* drow = dout ? dout + (size_t)t * sdt + (size_t)b * sdb : nullptr;
            const T* g = gates + row * 4 * H;
            const T* hp = hprev + row * H;
            const T* zm = a.zmode == 1 ? zmask + row * H : nullptr;
            for (int j = 0; j < H; ++j) {
                T d = dhb[j] + (drow ? drow[j] : (T)0);
                T dnew = d, dkeep = 0;  // through h' and directly to h
                if (zm) {
                    if (zm[j] != (T)0) dnew = 0, dkeep = d;
                } else if (a.zmode == 2) {
                    dnew = d * ((T)1 - zp), dkeep = d * zp;
                }
                const T r = g[j], z = g[H + j], n = g[2 * H + j], ghn = g[3 * H + j];
                const T dz = dnew * (hp[j] - n);
                const T dan = dnew * ((T)1 - z) * ((T)1 - n * n);
                const T daz = dz * z * ((T)1 - z);
                ai[H + j] = daz, ar[H + j] = daz;
                ai[2 * H + j] = dan;
                if (a.reset_after) {
                    const T dar = dan * ghn * r * ((T)1 - r);
                    ai[j] = dar, ar[j] = dar;
                    ar[2 * H + j] = dan * r;
                } else {
                    ar[2 * H + j] = dan;
                }
                dhb[j] = dkeep + dnew * z;
            }
            if (a.reset_after)
                for (int k = 0; k < 3; ++k) hh_group(ar + k * H, row, k);
            else
                hh_group(ar + 2 * H, row, 2);
        }
        if (a.reset_after) {
            mm<T>(gemm, false, B, H, H3, dgraw + tb * H3, H3, w_hh, H, (T)0, dhd, H);
        } else {
            mm<T>(gemm, false, B, H, H, dgraw + tb * H3 + 2 * H, H3, w_hh + (size_t)2 * H * H, H, (T)0, drh, H);
            for (int b = 0; b < B; ++b) {
                const size_t row = tb + b;
                if (!a.valid(t, b)) {
                    std::memset(dhd + (size_t)b * H, 0, sizeof(T) * H);
                    continue;
                }
                T* ai = dgi + row * H3;
                T* ar = dgraw + row * H3;
                const T* g = gates + row * 4 * H;
                const T* hp = hprev + row * H;
                const T* m = rmask ? rmask + (size_t)b * H : nullptr;
                for (int j = 0; j < H; ++j) {
                    const T r = g[j], hdj = m ? hp[j] * m[j] : hp[j], d = drh[(size_t)b * H + j];
                    const T dar = d * hdj * r * ((T)1 - r);
                    ai[j] = dar, ar[j] = dar;
                    dhd[(size_t)b * H + j] = d * r;
                }
                for (int k = 0; k < 2; ++k) hh_group(ar + k * H, row, k);
            }
            mm<T>(gemm, false, B, H, 2 * H, dgraw + tb * H3, H3, w_hh, H, (T)1, dhd, H);
        }
        for (int b = 0; b < B; ++b) {
            const size_t row = tb + b;
            if (!a.valid(t, b)) continue;
            T* dhb = dh + (size_t)b * H;
            const T* hdb = dhd + (size_t)b * H;
            const T* m = rmask ? rmask + (size_t)b * H : nullptr;
            if (m)
                for (int j = 0; j < H; ++j) dhb[j] += hdb[j] * m[j];
            else
                for (int j = 0; j < H; ++j) dhb[j] += hdb[j];
            T* ai = dgi + row * H3;
            if (ln_ih)  // through the input products' layer norm: dgi becomes the gradient of x W_ihᵀ
                for (int k = 0; k < 3; ++k)
                    norm_group_backward<T>(ai + k * H, H, ln_ih + k * H, xhat_ih + row * H3 + k * H,
                                           rstd_ih[row * 3 + k], dgain_ih ? dgain_ih + k * H : nullptr,
                                           dbias_ih ? dbias_ih + k * H : nullptr);
            else if (dbias_ih)
                for (int j = 0; j < H3; ++j) dbias_ih[j] += ai[j];
        }
    }
    std::memcpy(dh0, dh, sizeof(T) * (size_t)B * H);
    std::free(dh), std::free(dhd), std::free(drh);
    return 0;
}

}  // namespace

extern "C" {

#define GRUKIT_VARIANTS(SUF, T)                                                                                 \
    int grukit_var_fwd_##SUF(int T_, int B, int H, const T* gi, const T* ln_ih, const T* b_ih, const T* h0,     \
                             const T* w_hh, const T* b_hh, const T* ln_hh, double eps, const T* rmask,          \
                             const T* zmask, int zmode, double zp, const int64_t* lengths, int reverse,          \
                             int reset_after, T* out, T* hn, T* hprev, T* gates, T* xhat, T* rstd, T* xhat_ih,   \
                             T* rstd_ih, void* gemm) {                                                           \
        Args a{T_, B, H, reverse, reset_after, zmode, zp, eps, lengths};                                       \
        return forward<T>(a, gi, ln_ih, b_ih, h0, w_hh, b_hh, ln_hh, rmask, zmask, out, hn, hprev, gates, xhat,  \
                          rstd, xhat_ih, rstd_ih, (Gemm<T>::fn)gemm);                                            \
    }                                                                                                            \
    int grukit_var_bwd_##SUF(int T_, int B, int H, const T* w_hh, const T* ln_hh, const T* ln_ih,               \
                             const T* rmask, const T* zmask, int zmode, double zp, const int64_t* lengths,       \
                             int reverse, int reset_after, const T* dout, long sdt, long sdb, const T* dhn,      \
                             const T* hprev, const T* gates, const T* xhat, const T* rstd, const T* xhat_ih,     \
                             const T* rstd_ih, T* dgi, T* dgraw, T* dh0, double* dgain_hh, double* dbias_hh,     \
                             double* dgain_ih, double* dbias_ih, void* gemm) {                                   \
        Args a{T_, B, H, reverse, reset_after, zmode, zp, 0.0, lengths};                                        \
        return backward<T>(a, w_hh, ln_hh, ln_ih, rmask, zmask, dout, sdt, sdb, dhn, hprev, gates, xhat, rstd,   \
                           xhat_ih, rstd_ih, dgi, dgraw, dh0, dgain_hh, dbias_hh, dgain_ih, dbias_ih,            \
                           (Gemm<T>::fn)gemm);                                                                   \
    }

GRUKIT_VARIANTS(f32, float)
GRUKIT_VARIANTS(f64, double)

}  // extern "C"
