// The spectral render's CPU core (see spectral.h). Compiled with -O3 -ffp-contract=off
// (kernels/CMakeLists.txt): a multiply and an add stay two roundings in vector and scalar
// code alike, so a value does not depend on which lane or which clone computed it.
#include "kernels/spectral.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/clones.h"

namespace vizsweep::kernels {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// exp(sign 2 pi i num / den), exact where the angle is a multiple of a quarter turn.
void root(int64_t num, int64_t den, int sign, float& re, float& im) {
  num %= den;
  if (num < 0) num += den;
  if ((4 * num) % den == 0) {
    const int64_t q = 4 * num / den;
    const float c[4] = {1, 0, -1, 0}, s[4] = {0, 1, 0, -1};
    re = c[q], im = sign * s[q];
    return;
  }
  const double a = kTwoPi * static_cast<double>(num) / static_cast<double>(den);
  re = static_cast<float>(std::cos(a));
  im = static_cast<float>(sign * std::sin(a));
}

using F = float* __restrict;
using CF = const float* __restrict;

// Sixteen or eight columns at a time as one GCC vector (AVX-512 or AVX2 registers; SSE ones
// in the baseline build), the columns left over one at a time by the same template with
// T = float: the same operations, so the same bits, in every case.
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf16 __attribute__((vector_size(64)));

template <class T>
VIZ_INLINE T load(const float* p) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return *p;
  } else {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
}

template <class T>
VIZ_INLINE void store(float* p, T v) {
  if constexpr (sizeof(T) == sizeof(float)) {
    *p = v;
  } else {
    std::memcpy(p, &v, sizeof v);
  }
}

// Output row o times the twiddle (cr, ci).
template <class T>
VIZ_INLINE void store_turned(F yr, F yi, int64_t o, T vr, T vi, float cr, float ci) {
  store(yr + o, vr * cr - vi * ci);
  store(yi + o, vr * ci + vi * cr);
}

// The radix-P butterfly of one Stockham pass at column offset l: inputs at row offsets
// in[t], outputs at out[u], output u > 0 turned by twiddle u. The radix's constants: for
// odd P, cs[t][u] = cos(2 pi t u / P) and sn[t][u] = sign sin(2 pi t u / P), t, u in
// 1..(P - 1)/2, row-major of side (P - 1)/2.
template <int P, class T>
VIZ_INLINE void butterfly(CF xr, CF xi, F yr, F yi, const int64_t* in, const int64_t* out, const float* cr, const float* ci,
                          const float* cs, const float* sn, int sign, int64_t l) {
  if constexpr (P == 2) {
    const T ar = load<T>(xr + in[0] + l), ai = load<T>(xi + in[0] + l);
    const T br = load<T>(xr + in[1] + l), bi = load<T>(xi + in[1] + l);
    store(yr + out[0] + l, ar + br);
    store(yi + out[0] + l, ai + bi);
    store_turned<T>(yr, yi, out[1] + l, ar - br, ai - bi, cr[1], ci[1]);
  } else if constexpr (P == 4) {
    const T a0r = load<T>(xr + in[0] + l), a0i = load<T>(xi + in[0] + l);
    const T a1r = load<T>(xr + in[1] + l), a1i = load<T>(xi + in[1] + l);
    const T a2r = load<T>(xr + in[2] + l), a2i = load<T>(xi + in[2] + l);
    const T a3r = load<T>(xr + in[3] + l), a3i = load<T>(xi + in[3] + l);
    const T t0r = a0r + a2r, t0i = a0i + a2i, t1r = a0r - a2r, t1i = a0i - a2i;
    const T t2r = a1r + a3r, t2i = a1i + a3i, t3r = a1r - a3r, t3i = a1i - a3i;
    store(yr + out[0] + l, t0r + t2r);
    store(yi + out[0] + l, t0i + t2i);
    store_turned<T>(yr, yi, out[2] + l, t0r - t2r, t0i - t2i, cr[2], ci[2]);
    // Output 1 is t1 + sign i t3, output 3 is t1 - sign i t3.
    const T pr = t1r - t3i, pi = t1i + t3r;  // t1 + i t3
    const T mr = t1r + t3i, mi = t1i - t3r;  // t1 - i t3
    if (sign > 0) {
      store_turned<T>(yr, yi, out[1] + l, pr, pi, cr[1], ci[1]);
      store_turned<T>(yr, yi, out[3] + l, mr, mi, cr[3], ci[3]);
    } else {
      store_turned<T>(yr, yi, out[1] + l, mr, mi, cr[1], ci[1]);
      store_turned<T>(yr, yi, out[3] + l, pr, pi, cr[3], ci[3]);
    }
  } else {
    // Odd prime P: inputs t and P - t as their sum and difference; output u is
    // a0 + sum_t s_t cs[t][u] + i sum_t d_t sn[t][u], output P - u the same with - i.
    constexpr int H = (P - 1) / 2;
    const T a0r = load<T>(xr + in[0] + l), a0i = load<T>(xi + in[0] + l);
    T sr[H], si[H], dr[H], di[H];
    for (int t = 1; t <= H; ++t) {
      const T ar = load<T>(xr + in[t] + l), ai = load<T>(xi + in[t] + l);
      const T br = load<T>(xr + in[P - t] + l), bi = load<T>(xi + in[P - t] + l);
      sr[t - 1] = ar + br, si[t - 1] = ai + bi, dr[t - 1] = ar - br, di[t - 1] = ai - bi;
    }
    T x0r = a0r, x0i = a0i;
    for (int t = 0; t < H; ++t) x0r = x0r + sr[t], x0i = x0i + si[t];
    store(yr + out[0] + l, x0r);
    store(yi + out[0] + l, x0i);
    for (int u = 1; u <= H; ++u) {
      T Ar = a0r, Ai = a0i;
      T Br = dr[0] * sn[u - 1], Bi = di[0] * sn[u - 1];
      for (int t = 0; t < H; ++t) Ar = Ar + sr[t] * cs[t * H + u - 1], Ai = Ai + si[t] * cs[t * H + u - 1];
      for (int t = 1; t < H; ++t) Br = Br + dr[t] * sn[t * H + u - 1], Bi = Bi + di[t] * sn[t * H + u - 1];
      store_turned<T>(yr, yi, out[u] + l, Ar - Bi, Ai + Br, cr[u], ci[u]);
      store_turned<T>(yr, yi, out[P - u] + l, Ar + Bi, Ai - Br, cr[P - u], ci[P - u]);
    }
  }
}

// One Stockham pass of radix P over columns [l0, l1): for pp < m and q < s, the P rows
// x[q + s (pp + t m)] (t < P) become y[q + s (P pp + u)] = (sum_t x_t om^(t u)) tw^(u pp).
// Columns in vectors of V1, then V2, then one at a time.
template <int P, class V1, class V2>
VIZ_INLINE void pass(CF xr, CF xi, F yr, F yi, int64_t ld, int64_t l0, int64_t l1, int64_t m, int64_t s, const float* twr,
                     const float* twi, const float* cs, const float* sn, int sign) {
  constexpr int64_t n1 = sizeof(V1) / sizeof(float), n2 = sizeof(V2) / sizeof(float);
  for (int64_t pp = 0; pp < m; ++pp) {
    float cr[P], ci[P];
    cr[0] = 1, ci[0] = 0;
    for (int u = 1; u < P; ++u) cr[u] = twr[pp * (P - 1) + u - 1], ci[u] = twi[pp * (P - 1) + u - 1];
    for (int64_t q = 0; q < s; ++q) {
      int64_t in[P], out[P];
      for (int t = 0; t < P; ++t) in[t] = (q + s * (pp + t * m)) * ld, out[t] = (q + s * (P * pp + t)) * ld;
      int64_t l = l0;
      for (; l + n1 <= l1; l += n1) butterfly<P, V1>(xr, xi, yr, yi, in, out, cr, ci, cs, sn, sign, l);
      for (; l + n2 <= l1; l += n2) butterfly<P, V2>(xr, xi, yr, yi, in, out, cr, ci, cs, sn, sign, l);
      for (; l < l1; ++l) butterfly<P, float>(xr, xi, yr, yi, in, out, cr, ci, cs, sn, sign, l);
    }
  }
}

template <class V1, class V2>
VIZ_INLINE void any_pass(int p, const float* xr, const float* xi, float* yr, float* yi, int64_t ld, int64_t l0, int64_t l1,
                         int64_t m, int64_t s, const float* twr, const float* twi, const float* cs, const float* sn, int sign) {
  switch (p) {
    case 2: pass<2, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    case 4: pass<4, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    case 3: pass<3, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    case 5: pass<5, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    case 7: pass<7, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    case 11: pass<11, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    case 13: pass<13, V1, V2>(xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign); break;
    default: throw std::logic_error("ColumnDft: unsupported radix");
  }
}

#define VIZ_PASS_ARGS                                                                                                  \
  int p, const float *xr, const float *xi, float *yr, float *yi, int64_t ld, int64_t l0, int64_t l1, int64_t m, int64_t s, \
      const float *twr, const float *twi, const float *cs, const float *sn, int sign
#define VIZ_PASS_CALL p, xr, xi, yr, yi, ld, l0, l1, m, s, twr, twi, cs, sn, sign

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("avx512f"))) void pass_avx512(VIZ_PASS_ARGS) { any_pass<vf16, vf8>(VIZ_PASS_CALL); }
__attribute__((target("avx2"))) void pass_avx2(VIZ_PASS_ARGS) { any_pass<vf8, vf8>(VIZ_PASS_CALL); }
#endif
void pass_baseline(VIZ_PASS_ARGS) { any_pass<vf8, vf8>(VIZ_PASS_CALL); }

// The widest version this CPU runs (all give the same bits).
void stockham_pass(VIZ_PASS_ARGS) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const int level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
  if (level == 2) return pass_avx512(VIZ_PASS_CALL);
  if (level == 1) return pass_avx2(VIZ_PASS_CALL);
#endif
  pass_baseline(VIZ_PASS_CALL);
}

std::vector<int> radices(int64_t n) {
  std::vector<int> out;
  while (n % 4 == 0) out.push_back(4), n /= 4;
  for (int p : {2, 3, 5, 7, 11, 13})
    while (n % p == 0) out.push_back(p), n /= p;
  if (n != 1) out.clear();
  return out;
}

}  // namespace

bool ColumnDft::supported(int64_t n) { return n == 1 || (n > 1 && !radices(n).empty()); }

ColumnDft::ColumnDft(int64_t n) : n_(n) {
  if (!supported(n)) throw std::invalid_argument("ColumnDft: length " + std::to_string(n) + " has a prime factor above 13");
  int64_t len = n, s = 1;
  for (int p : radices(n)) {
    Stage st;
    st.p = p, st.m = len / p, st.s = s;
    for (int si = 0; si < 2; ++si) {
      const int sign = si == 0 ? 1 : -1;
      st.twr[si].resize(st.m * (p - 1)), st.twi[si].resize(st.m * (p - 1));
      for (int64_t pp = 0; pp < st.m; ++pp)
        for (int u = 1; u < p; ++u)
          root(u * pp, len, sign, st.twr[si][pp * (p - 1) + u - 1], st.twi[si][pp * (p - 1) + u - 1]);
      if (p % 2 == 1) {  // the odd radix's cosines and signed sines, [t][u] for t, u in 1..(p - 1)/2
        const int h = (p - 1) / 2;
        st.cs[si].resize(h * h), st.sn[si].resize(h * h);
        for (int t = 1; t <= h; ++t)
          for (int u = 1; u <= h; ++u) root(t * u, p, sign, st.cs[si][(t - 1) * h + u - 1], st.sn[si][(t - 1) * h + u - 1]);
      }
    }
    stages_.push_back(std::move(st));
    len /= p, s *= p;
  }
}

void ColumnDft::run(float* re, float* im, float* wre, float* wim, int64_t ld, int64_t l0, int64_t l1, int sign,
                    bool copy_back) const {
  const int si = sign > 0 ? 0 : 1;
  // Every pass over a block of columns before the next block, so the block stays in cache
  // (64 columns of a 224-row transform: 230 KB of the four arrays).
  constexpr int64_t kBlock = 64;
  for (int64_t b0 = l0; b0 < l1; b0 += kBlock) {
    const int64_t b1 = std::min(l1, b0 + kBlock);
    float *xr = re, *xi = im, *yr = wre, *yi = wim;
    for (const Stage& st : stages_) {
      stockham_pass(st.p, xr, xi, yr, yi, ld, b0, b1, st.m, st.s, st.twr[si].data(), st.twi[si].data(), st.cs[si].data(),
                    st.sn[si].data(), sign);
      std::swap(xr, yr), std::swap(xi, yi);
    }
    if (xr != re && copy_back)
      for (int64_t k = 0; k < n_; ++k) {
        std::memcpy(re + k * ld + b0, xr + k * ld + b0, (b1 - b0) * sizeof(float));
        std::memcpy(im + k * ld + b0, xi + k * ld + b0, (b1 - b0) * sizeof(float));
      }
  }
}

namespace {

// exp(x) for the sigmoid, the same bits in every lane: 2^n exp(r) with n = round(x / ln 2),
// r = x - n ln 2 in two parts (Cody and Waite), exp(r) by its Taylor polynomial of degree 7
// (|r| <= 0.35: relative error under 1e-7, about one float rounding).
VIZ_INLINE float exp_poly(float x) {
  x = std::min(88.0f, std::max(-87.0f, x));
  const float t = x * 1.44269504088896341f;
  const int n = static_cast<int>(t >= 0.0f ? t + 0.5f : t - 0.5f);
  const float fn = static_cast<float>(n);
  const float r = (x - fn * 0.693145751953125f) - fn * 1.428606765330187045e-06f;
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Rows of the rendered pre-activations -> colour mix, offset, sigmoid; one image row of
// `C` planes: pre[c][x] (plane stride pstride) -> out[c][x] (plane stride ostride).
VIZ_CLONES void finish_row(const float* pre, int64_t pstride, int64_t C, int64_t S, const float* colour, float offset,
                           float* out, int64_t ostride) {
  for (int64_t c = 0; c < C; ++c) {
    F o = out + c * ostride;
    if (colour) {
      CF p0 = pre, p1 = pre + pstride, p2 = pre + 2 * pstride;
      const float m0 = colour[3 * c], m1 = colour[3 * c + 1], m2 = colour[3 * c + 2];
      for (int64_t x = 0; x < S; ++x) {
        const float v = ((m0 * p0[x] + m1 * p1[x]) + m2 * p2[x]) + offset;
        o[x] = 1.0f / (1.0f + exp_poly(-v));
      }
    } else {
      CF p = pre + c * pstride;
      for (int64_t x = 0; x < S; ++x) o[x] = 1.0f / (1.0f + exp_poly(-(p[x] + offset)));
    }
  }
}

// The gradient through the sigmoid and the colour mix, one image row: g = grad_out s (1 - s),
// then the mix's transpose: gpre[c'][x] = sum_c colour[c][c'] g[c][x].
VIZ_CLONES void finish_row_backward(const float* grad, const float* out, int64_t ostride, int64_t C, int64_t S,
                                    const float* colour, float* gpre, int64_t pstride) {
  if (colour) {
    CF g0 = grad, g1 = grad + ostride, g2 = grad + 2 * ostride;
    CF s0 = out, s1 = out + ostride, s2 = out + 2 * ostride;
    for (int64_t c = 0; c < 3; ++c) {
      F p = gpre + c * pstride;
      const float m0 = colour[c], m1 = colour[3 + c], m2 = colour[6 + c];
      for (int64_t x = 0; x < S; ++x) {
        const float d0 = g0[x] * (s0[x] * (1.0f - s0[x]));
        const float d1 = g1[x] * (s1[x] * (1.0f - s1[x]));
        const float d2 = g2[x] * (s2[x] * (1.0f - s2[x]));
        p[x] = (m0 * d0 + m1 * d1) + m2 * d2;
      }
    }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      CF g = grad + c * ostride;
      CF s = out + c * ostride;
      F p = gpre + c * pstride;
      for (int64_t x = 0; x < S; ++x) p[x] = g[x] * (s[x] * (1.0f - s[x]));
    }
  }
}

// dst[c * dld + r] = src[r * sld + c] for r < R, c < n: in 8 x 8 tiles of vector shuffles
// (unpacks, then pairs, then halves), the rest one by one. Moves values, computes none.
VIZ_CLONES void transpose(const float* __restrict src, int64_t sld, int64_t R, int64_t n, float* __restrict dst, int64_t dld) {
  int64_t r = 0;
  for (; r + 8 <= R; r += 8) {
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
      vf8 x[8], t[8], u[8];
      for (int i = 0; i < 8; ++i) x[i] = load<vf8>(src + (r + i) * sld + c);
      typedef int vi8 __attribute__((vector_size(32)));
      for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(x[i], x[i + 1], vi8{0, 8, 1, 9, 4, 12, 5, 13});
        t[i + 1] = __builtin_shuffle(x[i], x[i + 1], vi8{2, 10, 3, 11, 6, 14, 7, 15});
      }
      for (int i = 0; i < 8; i += 4) {
        u[i] = __builtin_shuffle(t[i], t[i + 2], vi8{0, 1, 8, 9, 4, 5, 12, 13});
        u[i + 1] = __builtin_shuffle(t[i], t[i + 2], vi8{2, 3, 10, 11, 6, 7, 14, 15});
        u[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], vi8{0, 1, 8, 9, 4, 5, 12, 13});
        u[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], vi8{2, 3, 10, 11, 6, 7, 14, 15});
      }
      // u[j] (j < 4) holds columns j and j + 4 of rows 0-3, u[4 + j] the same of rows 4-7.
      for (int j = 0; j < 4; ++j) {
        store(dst + (c + j) * dld + r, __builtin_shuffle(u[j], u[j + 4], vi8{0, 1, 2, 3, 8, 9, 10, 11}));
        store(dst + (c + j + 4) * dld + r, __builtin_shuffle(u[j], u[j + 4], vi8{4, 5, 6, 7, 12, 13, 14, 15}));
      }
    }
    for (; c < n; ++c)
      for (int64_t i = r; i < r + 8; ++i) dst[c * dld + i] = src[i * sld + c];
  }
  for (; r < R; ++r)
    for (int64_t c = 0; c < n; ++c) dst[c * dld + r] = src[r * sld + c];
}

// A plane stride of at least n floats that is not a multiple of 1 KiB: the transposes' stores
// to consecutive planes then fall in different cache sets.
int64_t padded(int64_t n) { return (n + 15) / 16 * 16 + 16; }

// Below this many floats in the spectrum, a render runs on the calling thread: waking a
// second thread costs more than it saves (32 images of 32 px: 35,000).
constexpr int64_t kParallelFloats = 1 << 17;

ParallelFor serial_for() {
  return [](int64_t n, const std::function<void(int64_t, int64_t)>& fn) { fn(0, n); };
}

// Splits [0, n) into the parallel chunks of pf, in slices of at least `grain`.
void chunks(const ParallelFor& pf, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t blocks = (n + grain - 1) / grain;
  pf(blocks, [&](int64_t b0, int64_t b1) { fn(b0 * grain, std::min(n, b1 * grain)); });
}

}  // namespace

SpectralRender::SpectralRender(int64_t side, std::vector<float> scale, std::vector<float> colour, float offset)
    : S_(side), K_(side / 2 + 1), scale_(std::move(scale)), colour_(std::move(colour)), offset_(offset), dft_(side) {
  if (static_cast<int64_t>(scale_.size()) != S_ * K_) throw std::invalid_argument("SpectralRender: scale is not [S][S/2 + 1]");
  if (!colour_.empty() && colour_.size() != 9) throw std::invalid_argument("SpectralRender: colour is not 3 x 3");
}

float* SpectralRender::scratch(int slot, int64_t n) const {
  std::vector<float>& v = scratch_[slot];
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}

std::pair<int64_t, int64_t> SpectralRender::rendered_rows(int64_t r0, int64_t r1) const {
  r0 = std::max<int64_t>(0, r0) / 2 * 2;
  r1 = std::min(S_, (std::min(S_, r1) + 1) / 2 * 2);
  return {r0, std::max(r0, r1)};
}

// Layouts: the spectrum (the optimized variable too) and the transform along y, T [S (ky or
// y)][K][P], real and imaginary parts apart, the planes P = B C innermost so one transform
// covers them all; the transform along x, Z [S (kx or x)][pairs][P], where pair m
// packs rows a + 2m and a + 2m + 1 of every plane as one complex signal (real and imaginary
// parts), whose two real outputs come out as its real and imaginary parts. Moving between
// the two is a copy of whole P-vectors; only the image, with P outermost, is transposed.
void SpectralRender::forward(const float* spec, int64_t B, int64_t C, int64_t r0, int64_t r1, float fill, float* out,
                             const ParallelFor& parallel, bool band) const {
  const ParallelFor& pf = 2 * S_ * K_ * B * C < kParallelFloats ? serial_for() : parallel;
  if (!colour_.empty() && C != 3) throw std::invalid_argument("SpectralRender: a colour mix needs 3 channels");
  const int64_t S = S_, K = K_, P = B * C, L1 = K * P;
  const auto [a, b] = rendered_rows(r0, r1);
  const int64_t pairs = (b - a + 1) / 2, L2 = pairs * P;
  float *tr = scratch(0, S * L1), *ti = scratch(1, S * L1), *wr = scratch(2, S * L1), *wi = scratch(3, S * L1);
  // The spectrum, scaled.
  chunks(pf, S, 8, [&](int64_t k0, int64_t k1) {
    for (int64_t ky = k0; ky < k1; ++ky)
      for (int64_t kx = 0; kx < K; ++kx) {
        const float f = scale_[ky * K + kx];
        const int64_t o = ky * L1 + kx * P;
        CF sr = spec + o;
        CF si = spec + S * L1 + o;
        F dr = tr + o;
        F di = ti + o;
        for (int64_t p = 0; p < P; ++p) dr[p] = sr[p] * f, di[p] = si[p] * f;
      }
  });
  // The inverse transform along y, every column.
  chunks(pf, L1, 64, [&](int64_t l0, int64_t l1) { dft_.run(tr, ti, wr, wi, L1, l0, l1, +1, false); });
  const float *yr = dft_.result(tr, wr), *yi = dft_.result(ti, wi);
  // Along x, the rows asked for: each row's Hermitian spectrum extended to all S frequencies
  // (the imaginary parts at 0 and S/2 do not count, as in irfft), two rows per signal.
  float *zr = scratch(4, S * L2), *zi = scratch(5, S * L2), *vr = scratch(6, S * L2), *vi = scratch(7, S * L2);
  const bool even = S % 2 == 0;
  chunks(pf, S, 8, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const bool mirror = k >= K;
      const int64_t kk = mirror ? S - k : k;
      const bool real = kk == 0 || (even && kk == S / 2);
      const float sign = mirror ? -1.0f : 1.0f;
      for (int64_t m = 0; m < pairs; ++m) {
        const int64_t ya = a + 2 * m, yb = ya + 1;
        CF ar = yr + ya * L1 + kk * P;
        CF ai = yi + ya * L1 + kk * P;
        F orr = zr + k * L2 + m * P;
        F oi = zi + k * L2 + m * P;
        if (yb < S) {
          CF br = yr + yb * L1 + kk * P;
          CF bi = yi + yb * L1 + kk * P;
          if (real) {
            for (int64_t p = 0; p < P; ++p) orr[p] = ar[p], oi[p] = br[p];
          } else {
            for (int64_t p = 0; p < P; ++p) orr[p] = ar[p] - sign * bi[p], oi[p] = sign * ai[p] + br[p];
          }
        } else {
          for (int64_t p = 0; p < P; ++p) orr[p] = ar[p], oi[p] = real ? 0.0f : sign * ai[p];
        }
      }
    }
  });
  chunks(pf, L2, 64, [&](int64_t l0, int64_t l1) { dft_.run(zr, zi, vr, vi, L2, l0, l1, +1, false); });
  const float *xr = dft_.result(zr, vr), *xi = dft_.result(zi, vi);
  // The rendered rows back to image order, pre [P][b - a][S], then per image the colour mix,
  // the offset and the sigmoid into out, which holds H rows per plane from row top; `fill` in
  // the rows not rendered (in the whole image's layout).
  const float* colour = colour_.empty() ? nullptr : colour_.data();
  const int64_t H = band ? b - a : S, top = band ? a : 0, rows = b - a, ps = padded(rows * S);
  float* pre = scratch(8, P * ps);
  chunks(pf, rows, 2, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      transpose((i % 2 == 0 ? xr : xi) + i / 2 * P, L2, S, P, pre + i * S, ps);
  });
  chunks(pf, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bb = b0; bb < b1; ++bb) {
      float* o = out + bb * C * H * S;
      finish_row(pre + bb * C * ps, ps, C, rows * S, colour, offset_, o + (a - top) * S, H * S);
      if (band) continue;
      for (int64_t c = 0; c < C; ++c) {
        std::fill(o + c * H * S, o + c * H * S + a * S, fill);
        std::fill(o + c * H * S + b * S, o + (c + 1) * H * S, fill);
      }
    }
  });
}

void SpectralRender::backward(const float* grad_out, const float* out, int64_t B, int64_t C, int64_t r0, int64_t r1,
                              float* grad_spec, const ParallelFor& parallel, bool band) const {
  const ParallelFor& pf = 2 * S_ * K_ * B * C < kParallelFloats ? serial_for() : parallel;
  const int64_t S = S_, K = K_, P = B * C, L1 = K * P;
  const auto [a, b] = rendered_rows(r0, r1);
  const int64_t pairs = (b - a + 1) / 2, L2 = pairs * P;
  const float* colour = colour_.empty() ? nullptr : colour_.data();
  const int64_t H = band ? b - a : S, top = band ? a : 0;  // grad_out's and out's rows, from row top
  // Through the sigmoid and the colour mix, each rendered row into its pair's signal (a row
  // past the image's last, for odd S, is zero).
  const int64_t rows = b - a, R2 = 2 * pairs, ps = padded(R2 * S);
  float *gpre = scratch(8, P * ps), *zr = scratch(4, S * L2), *zi = scratch(5, S * L2), *vr = scratch(6, S * L2),
        *vi = scratch(7, S * L2);
  chunks(pf, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bb = b0; bb < b1; ++bb) {
      const int64_t off = bb * C * H * S + (a - top) * S;
      float* g = gpre + bb * C * ps;
      finish_row_backward(grad_out + off, out + off, H * S, C, rows * S, colour, g, ps);
      for (int64_t c = 0; c < C; ++c) std::fill(g + c * ps + rows * S, g + c * ps + R2 * S, 0.0f);
    }
  });
  chunks(pf, R2, 2, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      transpose(gpre + i * S, ps, P, S, (i % 2 == 0 ? zr : zi) + i / 2 * P, L2);
  });
  chunks(pf, L2, 64, [&](int64_t l0, int64_t l1) { dft_.run(zr, zi, vr, vi, L2, l0, l1, -1, false); });
  const float *ur = dft_.result(zr, vr), *ui = dft_.result(zi, vi);
  // Each row's transform from its pair's: for row a + 2m, (Z[k] + conj Z[S - k]) / 2, for row
  // a + 2m + 1, (Z[k] - conj Z[S - k]) / 2i; times irfft's weight (2 inside the spectrum, 1
  // at 0 and S/2, whose imaginary parts do not count). Zero outside the rows.
  float *tr = scratch(0, S * L1), *ti = scratch(1, S * L1), *wr = scratch(2, S * L1), *wi = scratch(3, S * L1);
  const bool even = S % 2 == 0;
  chunks(pf, S, 8, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) {
      float* dr = tr + y * L1;
      float* di = ti + y * L1;
      if (y < a || y >= b) {
        std::fill(dr, dr + L1, 0.0f), std::fill(di, di + L1, 0.0f);
        continue;
      }
      const int64_t m = (y - a) / 2;
      const bool second = (y - a) % 2 == 1;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t k2 = (S - k) % S;
        CF z1r = ur + k * L2 + m * P;
        CF z1i = ui + k * L2 + m * P;
        CF z2r = ur + k2 * L2 + m * P;
        CF z2i = ui + k2 * L2 + m * P;
        F orr = dr + k * P;
        F oi = di + k * P;
        if (k == 0 || (even && k == S / 2)) {
          if (second) {
            for (int64_t p = 0; p < P; ++p) orr[p] = 0.5f * (z1i[p] + z2i[p]), oi[p] = 0.0f;
          } else {
            for (int64_t p = 0; p < P; ++p) orr[p] = 0.5f * (z1r[p] + z2r[p]), oi[p] = 0.0f;
          }
        } else if (second) {
          for (int64_t p = 0; p < P; ++p) orr[p] = z1i[p] + z2i[p], oi[p] = z2r[p] - z1r[p];
        } else {
          for (int64_t p = 0; p < P; ++p) orr[p] = z1r[p] + z2r[p], oi[p] = z1i[p] - z2i[p];
        }
      }
    }
  });
  // The adjoint of the inverse transform along y: the forward transform.
  chunks(pf, L1, 64, [&](int64_t l0, int64_t l1) { dft_.run(tr, ti, wr, wi, L1, l0, l1, -1, false); });
  const float *yr = dft_.result(tr, wr), *yi = dft_.result(ti, wi);
  chunks(pf, S, 8, [&](int64_t k0, int64_t k1) {
    for (int64_t ky = k0; ky < k1; ++ky)
      for (int64_t kx = 0; kx < K; ++kx) {
        const float f = scale_[ky * K + kx];
        const int64_t o = ky * L1 + kx * P;
        CF sr = yr + o;
        CF si = yi + o;
        F dr = grad_spec + o;
        F di = grad_spec + S * L1 + o;
        for (int64_t p = 0; p < P; ++p) dr[p] = sr[p] * f, di[p] = si[p] * f;
      }
  });
}

}  // namespace vizsweep::kernels
