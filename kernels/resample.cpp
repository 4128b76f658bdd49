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

// One image's taps: for each of its n output pixels (normalized centre xn[k], yn[k]) the
// top-left tap (column, row; may lie off the image) and the fractional parts of the source
// position; and [lo, hi], the range of the top-left taps' rows of the taps whose columns meet
// the image (lo > hi when none do), widened to take these in.
VIZ_CLONES void image_taps(const AffineMap& m, const double* __restrict xn, const double* __restrict yn, int64_t n, int32_t S,
                           int32_t* __restrict tx, int32_t* __restrict ty, float* __restrict fx, float* __restrict fy, int32_t& lo,
                           int32_t& hi) {
  const float side = static_cast<float>(S), far = 2.0f * side + 2.0f;
  // AffineMap::at_normalized's operations, spelled out so that the loop vectorizes.
  const double c = m.c, s = m.s, mtx = m.tx, mty = m.ty;
  for (int64_t k = 0; k < n; ++k) {
    const double ox = mtx - s * yn[k], oy = c * yn[k] + mty;
    const float gx = static_cast<float>(c * xn[k] + ox), gy = static_cast<float>(s * xn[k] + oy);
    // grid_sample's unnormalization (align_corners false), in float (the halving exact).
    const float sx = ((gx + 1.0f) * side - 1.0f) * 0.5f, sy = ((gy + 1.0f) * side - 1.0f) * 0.5f;
    const float lx = std::floor(sx), ly = std::floor(sy);
    // Positions far off the image (a huge scale) only ever meet the zero padding.
    const int32_t ix = static_cast<int32_t>(std::min(std::max(lx, -far), far));
    const int32_t iy = static_cast<int32_t>(std::min(std::max(ly, -far), far));
    tx[k] = ix, ty[k] = iy;
    fx[k] = sx - lx, fy[k] = sy - ly;
  }
  int32_t l = lo, h = hi;
  for (int64_t k = 0; k < n; ++k) {
    // As masks (all ones where the tap's columns meet the image), which vectorize.
    const int32_t y = ty[k], meets = -((tx[k] >= -1) & (tx[k] < S));
    l = std::min(l, (y & meets) | (S & ~meets));
    h = std::max(h, (y & meets) | ~meets);
  }
  lo = l, hi = h;
}

}  // namespace

AffineResample::AffineResample(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1,
                               const std::vector<uint8_t>& mirrored) {
  assign(maps, S, y0, y1, x0, x1, mirrored);
}

void AffineResample::assign(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1,
                            const std::vector<uint8_t>& mirrored, const ParallelFor& pf) {
  if (S < 1 || y0 < 0 || x0 < 0 || y1 > S || x1 > S || y0 >= y1 || x0 >= x1)
    throw std::invalid_argument("AffineResample: the window is not inside the image");
  if (!mirrored.empty() && mirrored.size() != maps.size())
    throw std::invalid_argument("AffineResample: one mirror flag per image");
  mirrored_ = mirrored;
  const int64_t w = x1 - x0, hw = (y1 - y0) * w;
  if (S != S_ || y0 != y0_ || y1 != y1_ || x0 != x0_ || x1 != x1_) {
    xn_.resize(hw), yn_.resize(hw);  // the window's pixels' normalized positions, row-major
    for (int64_t k = 0; k < hw; ++k)
      xn_[k] = AffineMap::normalized(x0 + k % w, S), yn_[k] = AffineMap::normalized(y0 + k / w, S);
  }
  B_ = static_cast<int64_t>(maps.size()), S_ = S, y0_ = y0, y1_ = y1, x0_ = x0, x1_ = x1;
  const int64_t n = B_ * hw;
  tx_.resize(n), ty_.resize(n), fx_.resize(n), fy_.resize(n);  // every entry is written below
  // The top-left taps' rows, of taps whose columns meet the image, per image, then overall.
  lo_.assign(B_, static_cast<int32_t>(S)), hi_.assign(B_, -1);
  auto some = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      image_taps(maps[b], xn_.data(), yn_.data(), hw, static_cast<int32_t>(S), &tx_[b * hw], &ty_[b * hw], &fx_[b * hw], &fy_[b * hw],
                 lo_[b], hi_[b]);
  };
  if (pf && split()) pf(B_, some);
  else some(0, B_);
  const int32_t lo = B_ ? *std::min_element(lo_.begin(), lo_.end()) : static_cast<int32_t>(S);
  const int32_t hi = B_ ? *std::max_element(hi_.begin(), hi_.end()) : -1;
  // Rows iy and iy + 1 of each such tap, within the image.
  const int64_t first = std::max<int64_t>(0, lo), last = std::min<int64_t>(S - 1, static_cast<int64_t>(hi) + 1);
  r0_ = lo <= hi && first <= last ? first : 0, r1_ = lo <= hi && first <= last ? last + 1 : 0;
}

// Both directions visit the taps the same way: for output pixel t, each tap (row, column,
// weight) inside the image, in the order top-left, top-right, bottom-left, bottom-right, the
// weight the product of the column's and the row's.
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

// fn(b, c) for every plane of B images of C channels, the images split among pf's threads
// when `split`, else all on the calling thread.
template <class Fn>
void each_plane(const ParallelFor& pf, bool split, int64_t B, int64_t C, Fn&& fn) {
  auto some = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t c = 0; c < C; ++c) fn(b, c);
  };
  if (split) pf(B, some);
  else some(0, B);
}

// One plane's n outputs o[k] = fill + sum over the taps inside the image of weight x
// (plane - fill), the taps in taps()'s order, from a plane of rows [row0, ...) of width S that
// holds every tap inside the image, tap column col read at column c0 + d col (d = 1, c0 = 0;
// mirrored, d = -1, c0 = S - 1). A tap outside adds weight 0 times a value read at the
// plane's start (+-0, which changes no sum), so the loop has no branches and vectorizes.
VIZ_CLONES void forward_plane(const float* __restrict plane, int32_t S, int32_t row0, int32_t c0, int32_t d,
                              const int32_t* __restrict tx, const int32_t* __restrict ty, const float* __restrict fx,
                              const float* __restrict fy, int64_t n, float fill, float* __restrict o) {
  const uint32_t side = static_cast<uint32_t>(S);
  for (int64_t k = 0; k < n; ++k) {
    // Masks (all ones where the tap's column or row lies inside), which vectorize.
    const int32_t ix = tx[k], iy = ty[k];
    const int32_t x0 = -(static_cast<uint32_t>(ix) < side), x1 = -(static_cast<uint32_t>(ix + 1) < side);
    const int32_t y0 = -(static_cast<uint32_t>(iy) < side), y1 = -(static_cast<uint32_t>(iy + 1) < side);
    const int32_t m00 = y0 & x0, m01 = y0 & x1, m10 = y1 & x0, m11 = y1 & x1;
    const int32_t top = (iy - row0) * S + c0 + d * ix, bottom = top + S;
    const float wx0 = 1.0f - fx[k], wy0 = 1.0f - fy[k], wx1 = fx[k], wy1 = fy[k];
    const float w00 = m00 ? wx0 * wy0 : 0.0f, w01 = m01 ? wx1 * wy0 : 0.0f;
    const float w10 = m10 ? wx0 * wy1 : 0.0f, w11 = m11 ? wx1 * wy1 : 0.0f;
    float v = 0.0f;
    v += w00 * (plane[top & m00] - fill);
    v += w01 * (plane[(top + d) & m01] - fill);
    v += w10 * (plane[bottom & m10] - fill);
    v += w11 * (plane[(bottom + d) & m11] - fill);
    o[k] = v + fill;
  }
}

}  // namespace

void AffineResample::check_band(int64_t row0, int64_t nrows) const {
  if (r0_ < r1_ && (row0 > r0_ || row0 + nrows < r1_))
    throw std::invalid_argument("AffineResample: the input rows do not cover the rows read");
}

void AffineResample::forward(const float* in, int64_t C, int64_t row0, int64_t nrows, float fill, float* out,
                             const ParallelFor& pf) const {
  check_band(row0, nrows);
  const int64_t hw = height() * width();
  each_plane(pf, split(), batch(), C, [&](int64_t b, int64_t c) {
    float* o = out + (b * C + c) * hw;
    if (r0_ == r1_ || nrows == 0) {  // every tap off the image
      std::fill(o, o + hw, fill);
      return;
    }
    const int64_t t = b * hw;
    const auto [c0, d] = columns(b);
    forward_plane(in + (b * C + c) * nrows * S_, static_cast<int32_t>(S_), static_cast<int32_t>(row0), static_cast<int32_t>(c0),
                  static_cast<int32_t>(d), &tx_[t], &ty_[t], &fx_[t], &fy_[t], hw, fill, o);
  });
}

void AffineResample::backward(const float* grad_out, int64_t C, int64_t row0, int64_t nrows, float* grad_in,
                              const ParallelFor& pf) const {
  check_band(row0, nrows);
  const int64_t hw = height() * width(), w = width(), S = S_;
  each_plane(pf, split(), batch(), C, [&](int64_t b, int64_t c) {
    float* plane = grad_in + (b * C + c) * nrows * S;
    std::memset(plane, 0, sizeof(float) * nrows * S);
    const float* g = grad_out + (b * C + c) * hw;
    const auto [c0, d] = columns(b);  // tap column col at c0 + d col
    // The plane gathers its contributions output by output, in row-major order. Along an
    // output row, consecutive outputs whose four taps all lie inside share taps: the same
    // four, or the right two of the one the left two of the next. Their products are summed
    // in registers first (a00 .. a11, for the four taps from plane index cur), and each sum is added to
    // the plane when the run leaves its tap, at the latest at the row's end; the grouping
    // depends on the outputs' positions alone, and outputs outside a cropped window add exact
    // zeros, so a window's gradient is still the whole image's, bit for bit.
    for (int64_t k0 = 0; k0 < hw; k0 += w) {
      bool held = false;  // whether acc holds sums for the taps from cur
      int64_t cur = 0;
      float a00 = 0, a01 = 0, a10 = 0, a11 = 0;
      auto flush = [&] {
        if (held) plane[cur] += a00, plane[cur + d] += a01, plane[cur + S] += a10, plane[cur + S + d] += a11;
        held = false;
      };
      for (int64_t k = k0; k < k0 + w; ++k) {
        const int64_t t = b * hw + k;
        const float gk = g[k];
        const int32_t ix = tx_[t], iy = ty_[t];
        if (!all_taps_inside(ix, iy, S)) {
          flush();
          taps(ix, iy, fx_[t], fy_[t], S, [&](int64_t r, int64_t col, float wt) { plane[(r - row0) * S + c0 + d * col] += wt * gk; });
          continue;
        }
        const float fx = fx_[t], fy = fy_[t], wx0 = 1.0f - fx, wy0 = 1.0f - fy;
        const float p00 = wx0 * wy0 * gk, p01 = fx * wy0 * gk, p10 = wx0 * fy * gk, p11 = fx * fy * gk;
        const int64_t idx = (iy - row0) * S + c0 + d * ix;
        if (held && idx == cur) {
          a00 += p00, a01 += p01, a10 += p10, a11 += p11;
        } else if (held && idx == cur + d) {
          plane[cur] += a00, plane[cur + S] += a10;
          a00 = a01 + p00, a10 = a11 + p10, a01 = p01, a11 = p11;
          cur = idx;
        } else {
          flush();
          a00 = p00, a01 = p01, a10 = p10, a11 = p11;
          cur = idx, held = true;
        }
      }
      flush();
    }
  });
}

}  // namespace vizsweep::kernels
