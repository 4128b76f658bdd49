#include "kernels/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/clones.h"

namespace vizsweep::kernels {

AffineMap AffineMap::of(double factor, double radians, int64_t dy, int64_t dx, int64_t S) {
  const double side = static_cast<double>(S);
  AffineMap m;
  m.c = std::cos(radians) / factor;
  m.s = std::sin(radians) / factor;
  m.tx = -2.0 * static_cast<double>(dx) / side;
  m.ty = -2.0 * static_cast<double>(dy) / side;
  return m;
}

namespace {

// One output row's taps: the top-left tap (column, row) of each of its n pixels (normalized
// column positions xn, row position yn) and the fractional parts of the source position.
VIZ_CLONES void row_taps(const AffineMap& m, double yn, const double* __restrict xn, int64_t n, float side, int32_t* __restrict tx, int32_t* __restrict ty,
                         float* __restrict fx, float* __restrict fy) {
  const float far = 2.0f * side + 2.0f;
  // AffineMap::at_normalized's operations, spelled out so that the loop vectorizes.
  const double c = m.c, s = m.s, ox = m.tx - s * yn, oy = c * yn + m.ty;
  for (int64_t j = 0; j < n; ++j) {
    const float gx = static_cast<float>(c * xn[j] + ox), gy = static_cast<float>(s * xn[j] + oy);
    // grid_sample's unnormalization (align_corners false), in float (the halving exact).
    const float sx = ((gx + 1.0f) * side - 1.0f) * 0.5f, sy = ((gy + 1.0f) * side - 1.0f) * 0.5f;
    const float lx = std::floor(sx), ly = std::floor(sy);
    // Positions far off the image (a huge scale) only ever meet the zero padding.
    tx[j] = static_cast<int32_t>(std::min(std::max(lx, -far), far));
    ty[j] = static_cast<int32_t>(std::min(std::max(ly, -far), far));
    fx[j] = sx - lx, fy[j] = sy - ly;
  }
}

}  // namespace

AffineResample::AffineResample(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  assign(maps, S, y0, y1, x0, x1);
}

void AffineResample::assign(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  if (S < 1 || y0 < 0 || x0 < 0 || y1 > S || x1 > S || y0 >= y1 || x0 >= x1)
    throw std::invalid_argument("AffineResample: the window is not inside the image");
  B_ = static_cast<int64_t>(maps.size()), S_ = S, y0_ = y0, y1_ = y1, x0_ = x0, x1_ = x1;
  const int64_t n = batch() * height() * width();
  tx_.resize(n), ty_.resize(n), fx_.resize(n), fy_.resize(n);  // every entry is written below
  xn_.resize(x1 - x0);
  for (int64_t x = x0; x < x1; ++x) xn_[x - x0] = AffineMap::normalized(x, S);
  const int64_t w = x1 - x0;
  int64_t k = 0;
  for (const AffineMap& m : maps)
    for (int64_t y = y0; y < y1; ++y, k += w)
      row_taps(m, AffineMap::normalized(y, S), xn_.data(), w, static_cast<float>(S), &tx_[k], &ty_[k], &fx_[k], &fy_[k]);
  int32_t lo = static_cast<int32_t>(S), hi = -1;  // the top-left taps' rows, of taps whose columns meet the image
  for (int64_t t = 0; t < n; ++t)
    if (tx_[t] + 1 >= 0 && tx_[t] < S) lo = std::min(lo, ty_[t]), hi = std::max(hi, ty_[t]);
  // Rows iy and iy + 1 of each such tap, within the image.
  const int64_t first = std::max<int64_t>(0, lo), last = std::min<int64_t>(S - 1, static_cast<int64_t>(hi) + 1);
  r0_ = lo <= hi && first <= last ? first : 0, r1_ = lo <= hi && first <= last ? last + 1 : 0;
}

// Both directions visit the taps the same way: for output pixel t, each tap (row, column,
// weight) inside the image, in the order top-left, top-right, bottom-left, bottom-right.
namespace {

template <class Fn>
VIZ_INLINE void taps(int32_t ix, int32_t iy, float fx, float fy, int64_t S, Fn&& fn) {
  const float wx[2] = {1.0f - fx, fx}, wy[2] = {1.0f - fy, fy};
  for (int dy = 0; dy < 2; ++dy) {
    const int64_t r = static_cast<int64_t>(iy) + dy;
    if (r < 0 || r >= S) continue;
    for (int dx = 0; dx < 2; ++dx) {
      const int64_t c = static_cast<int64_t>(ix) + dx;
      if (c < 0 || c >= S) continue;
      fn(r, c, wx[dx] * wy[dy]);
    }
  }
}

// Whether all four taps from top-left (ix, iy) lie inside an S x S image.
VIZ_INLINE bool all_taps_inside(int32_t ix, int32_t iy, int64_t S) { return ix >= 0 && ix + 1 < S && iy >= 0 && iy + 1 < S; }

// fn(b, c) for every plane of B images of C channels, the images split among pf's threads.
template <class Fn>
void each_plane(const ParallelFor& pf, int64_t B, int64_t C, Fn&& fn) {
  pf(B, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t c = 0; c < C; ++c) fn(b, c);
  });
}

}  // namespace

void AffineResample::check_band(int64_t row0, int64_t nrows) const {
  if (r0_ < r1_ && (row0 > r0_ || row0 + nrows < r1_))
    throw std::invalid_argument("AffineResample: the input rows do not cover the rows read");
}

void AffineResample::forward(const float* in, int64_t C, int64_t row0, int64_t nrows, float fill, float* out,
                             const ParallelFor& pf) const {
  check_band(row0, nrows);
  const int64_t hw = height() * width(), S = S_;
  each_plane(pf, batch(), C, [&](int64_t b, int64_t c) {
    const float* plane = in + (b * C + c) * nrows * S;
    float* o = out + (b * C + c) * hw;
    for (int64_t k = 0; k < hw; ++k) {
      const int64_t t = b * hw + k;
      const int32_t ix = tx_[t], iy = ty_[t];
      float v = 0.0f;
      if (all_taps_inside(ix, iy, S)) {  // taps()'s sums, unrolled
        const float fx = fx_[t], fy = fy_[t], wx0 = 1.0f - fx, wy0 = 1.0f - fy;
        const float* p = plane + (iy - row0) * S + ix;
        v += wx0 * wy0 * (p[0] - fill);
        v += fx * wy0 * (p[1] - fill);
        v += wx0 * fy * (p[S] - fill);
        v += fx * fy * (p[S + 1] - fill);
      } else {
        taps(ix, iy, fx_[t], fy_[t], S, [&](int64_t r, int64_t col, float w) { v += w * (plane[(r - row0) * S + col] - fill); });
      }
      o[k] = v + fill;
    }
  });
}

void AffineResample::backward(const float* grad_out, int64_t C, int64_t row0, int64_t nrows, float* grad_in,
                              const ParallelFor& pf) const {
  check_band(row0, nrows);
  const int64_t hw = height() * width(), S = S_;
  each_plane(pf, batch(), C, [&](int64_t b, int64_t c) {
    float* plane = grad_in + (b * C + c) * nrows * S;
    std::memset(plane, 0, sizeof(float) * nrows * S);
    const float* g = grad_out + (b * C + c) * hw;
    // The plane gathers its contributions output by output, in row-major order.
    for (int64_t k = 0; k < hw; ++k) {
      const int64_t t = b * hw + k;
      const float gk = g[k];
      const int32_t ix = tx_[t], iy = ty_[t];
      if (all_taps_inside(ix, iy, S)) {  // taps()'s products, unrolled
        const float fx = fx_[t], fy = fy_[t], wx0 = 1.0f - fx, wy0 = 1.0f - fy;
        float* p = plane + (iy - row0) * S + ix;
        p[0] += wx0 * wy0 * gk;
        p[1] += fx * wy0 * gk;
        p[S] += wx0 * fy * gk;
        p[S + 1] += fx * fy * gk;
      } else {
        taps(ix, iy, fx_[t], fy_[t], S, [&](int64_t r, int64_t col, float w) { plane[(r - row0) * S + col] += w * gk; });
      }
    }
  });
}

}  // namespace vizsweep::kernels
