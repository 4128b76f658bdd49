#pragma once
// Lucid's random scale and rotation (with jitter's shift folded in) as one bilinear
// resampling on the CPU, computed for the window of the image the network sees, with its
// exact gradient. Plain C++ (no LibTorch): actmax.cpp wraps it as an autograd function.
//
// Why it exists: LibTorch's grid_sample is general (any grid, any padding) and costs more
// than the rest of a small step's transforms together: for 32 images of 32 px at a 19 x 19
// crop, 0.24 ms forward and backward, its gradient always image-sized and zero-filled, and the
// grid itself a tensor drawn on the host each step. Here the sampling positions come from
// each image's four affine coefficients, the input may be a band of rows (the spectral
// render's rows read, spectral.h), and the gradient covers that band alone.
//
// Exactness under the receptive-field crop: every output pixel's taps and weights depend on
// its own position only, and the gradient is accumulated output by output in row-major order,
// one image per thread; a cropped window therefore adds the same products in the same order
// as the whole image does (where the whole image adds exact zeros besides), so a cropped
// task's gradient equals the uncropped one's bit for bit.

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/spectral.h"  // ParallelFor

namespace vizsweep::kernels {

// One image's affine sampling map in grid_sample's normalized coordinates (align_corners
// false, -1 and 1 the outer edges of the border pixels): the output pixel at normalized
// (xn, yn) samples the input at (c xn - s yn + tx, s xn + c yn + ty). affine_grid's values.
struct AffineMap {
  double c = 1, s = 0, tx = 0, ty = 0;
  // Translated by (dy, dx) pixels, then scaled about the centre by `factor` and rotated by
  // `radians`, for images of side S: output p samples the input at M^-1 p - d.
  static AffineMap of(double factor, double radians, int64_t dy, int64_t dx, int64_t S);
  // The normalized input position (gx, gy) that output pixel (y, x) of an S x S image
  // samples, rounded to float as a grid tensor holds it.
  void at(int64_t y, int64_t x, int64_t S, float& gx, float& gy) const { at_normalized(normalized(x, S), normalized(y, S), gx, gy); }
  // The same from the normalized position of the output pixel's centre, (xn, yn).
  void at_normalized(double xn, double yn, float& gx, float& gy) const {
    gx = static_cast<float>(c * xn + (tx - s * yn));
    gy = static_cast<float>(s * xn + (c * yn + ty));
  }
  // The normalized coordinate of the centre of pixel i of S.
  static double normalized(int64_t i, int64_t S) { return (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(S) - 1.0; }
};

class AffineResample {
 public:
  AffineResample() = default;  // no images until assign
  // One map per image; the output window [y0, y1) x [x0, x1) of S x S images. mirrored (one
  // flag per image, or empty for none): image b's input is first mirrored left to right
  // (column c read as column S - 1 - c), a flip done by the resampling itself: the same
  // values and gradient as resampling the flipped image.
  AffineResample(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1,
                 const std::vector<uint8_t>& mirrored = {});
  // The same as constructing anew, reusing this one's storage (a step's new draws). With pf,
  // each image's taps are computed on the thread that resamples that image (forward and
  // backward split the images among pf's threads the same way), where they are then read.
  void assign(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1,
              const std::vector<uint8_t>& mirrored = {}, const ParallelFor& pf = {});
  int64_t batch() const { return B_; }
  int64_t side() const { return S_; }
  int64_t height() const { return y1_ - y0_; }
  int64_t width() const { return x1_ - x0_; }
  // The input rows [first, second) any output reads (empty when every tap is off the image).
  std::pair<int64_t, int64_t> rows() const { return {r0_, r1_}; }
  // in [B][C][nrows][S], the image rows [row0, row0 + nrows) (covering rows()) -> out
  // [B][C][height][width]: fill + sum over the taps inside the image of weight x (in - fill),
  // i.e. grid_sample of (in - fill) with zero padding, plus fill: outside the image is `fill`.
  void forward(const float* in, int64_t C, int64_t row0, int64_t nrows, float fill, float* out, const ParallelFor& pf) const;
  // The gradient of a loss with gradient grad_out [B][C][height][width] with respect to in:
  // grad_in [B][C][nrows][S], overwritten (zero where nothing is sampled).
  void backward(const float* grad_out, int64_t C, int64_t row0, int64_t nrows, float* grad_in, const ParallelFor& pf) const;

 private:
  void check_band(int64_t row0, int64_t nrows) const;  // the band [row0, row0 + nrows) covers rows()
  // Whether the taps, the resampling and its gradient split the images among the threads:
  // from 4,096 output pixels of the batch (a 32 px model's 18 x 18 crop of 32 images has
  // 10,368; an 8 x 8 one 2,048, where a parallel region costs more than it saves).
  bool split() const { return B_ * (y1_ - y0_) * (x1_ - x0_) >= 4096; }
  // Image b's tap column col is read at column c0 + d col: (0, 1), or mirrored (S - 1, -1).
  std::pair<int64_t, int64_t> columns(int64_t b) const {
    return !mirrored_.empty() && mirrored_[b] ? std::pair<int64_t, int64_t>{S_ - 1, -1} : std::pair<int64_t, int64_t>{0, 1};
  }
  int64_t B_ = 0, S_ = 0, y0_ = 0, y1_ = 0, x0_ = 0, x1_ = 0;
  // Per output pixel (b, i, j): the top-left tap (column, row; may lie off the image) and
  // the fractional parts of the source position.
  std::vector<int32_t> tx_, ty_;
  std::vector<float> fx_, fy_;
  std::vector<double> xn_, yn_;  // the window's pixels' normalized positions, row-major
  std::vector<uint8_t> mirrored_;  // per image, or empty
  std::vector<int32_t> lo_, hi_;     // per image, the range of image_taps's rows
  int64_t r0_ = 0, r1_ = 0;
};

}  // namespace vizsweep::kernels
