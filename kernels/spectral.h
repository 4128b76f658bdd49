#pragma once
// The spectral parameterization's render on the CPU (Olah et al. 2017, Lucid's fft_image):
// image = sigmoid(colour x irfft2(scale x spectrum) + offset), computed for the image rows
// that are read and nothing else, with its exact gradient. Plain C++ (no LibTorch): actmax.cpp
// wraps it as an autograd function.
//
// Why it exists: under a receptive-field crop the network sees a small window, and rendering
// the whole image through a general-purpose FFT, colour mix and sigmoid, both ways, cost more
// than a third of a crop step (VGG16 conv3_3 at 224 px). Here the transform along y runs
// vectorized across all columns of all planes at once, the transform along x and everything
// after it only for the rows the transforms read, and every value is computed by the same
// float operations whichever rows are asked for (two rows 2m and 2m+1 are always transformed
// together, columns never change results by their neighbours, and no fused multiply-adds are
// formed), so a cropped task renders and differentiates its rows bit for bit as the whole
// image's render does, on any x86-64 CPU.

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace vizsweep::kernels {

// Runs fn(begin, end) over chunks covering [0, n) once each, possibly on several threads.
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& fn)>;

// The complex DFT of length n along the outer axis of planar arrays: for columns l in
// [l0, l1),  X[j][l] = sum_k x[k][l] exp(sign 2 pi i j k / n), j and k in [0, n), x given as
// rows of real and imaginary parts with row stride ld. Mixed-radix Stockham passes (radix 4,
// 2, 3, 5, 7, 11, 13), each vectorized over the columns.
class ColumnDft {
 public:
  explicit ColumnDft(int64_t n);
  // n's prime factors are all at most 13.
  static bool supported(int64_t n);
  int64_t size() const { return n_; }
  // In place on (re, im); (wre, wim) is scratch of the same shape. sign is +1 or -1. With
  // copy_back false, the result stays where the last pass wrote it: in (wre, wim) when
  // in_scratch(), the copy back saved.
  void run(float* re, float* im, float* wre, float* wim, int64_t ld, int64_t l0, int64_t l1, int sign,
           bool copy_back = true) const;
  bool in_scratch() const { return stages_.size() % 2 == 1; }
  // Where a run without copy_back left its result: x (re or im), or its scratch w.
  const float* result(const float* x, const float* w) const { return in_scratch() ? w : x; }

 private:
  struct Stage {
    int p = 0;         // radix
    int64_t m = 0;     // length still to transform after this pass, over p
    int64_t s = 0;     // stride (product of earlier radices)
    std::vector<float> twr[2], twi[2];  // twiddles w^(u pp), [m][p - 1], per sign
    std::vector<float> cs[2], sn[2];    // odd radix: cos and sign sin of 2 pi t u / p, [t][u], per sign
  };
  int64_t n_;
  std::vector<Stage> stages_;
};

class SpectralRender {
 public:
  // side: the image side S (square images); scale [S][S/2 + 1]: the factor on each frequency
  // (the 1/f scaling and the normalization); colour: a 3 x 3 row-major mix of the channels
  // (empty: none); offset: added before the sigmoid.
  SpectralRender(int64_t side, std::vector<float> scale, std::vector<float> colour, float offset);
  static bool supported(int64_t side) { return side >= 2 && ColumnDft::supported(side); }
  int64_t side() const { return S_; }
  // The rows actually rendered for a request of rows [r0, r1): rounded out to whole pairs.
  std::pair<int64_t, int64_t> rendered_rows(int64_t r0, int64_t r1) const;
  // spec [2][S][S/2 + 1][B][C] (the real parts, then the imaginary parts; ky, kx, then the
  // planes innermost) -> out [B][C][S][S]: the rendered rows, and `fill` in every other row.
  // With `band`, out is [B][C][a1 - a0][S], the rendered rows [a0, a1) alone (fill unused).
  void forward(const float* spec, int64_t B, int64_t C, int64_t r0, int64_t r1, float fill, float* out,
               const ParallelFor& pf, bool band = false) const;
  // The gradient of the rendered rows' loss: grad_out and out [B][C][S][S] (rows outside the
  // rendered ones are not read), or with `band` [B][C][a1 - a0][S] as forward writes it ->
  // grad_spec in spec's layout.
  void backward(const float* grad_out, const float* out, int64_t B, int64_t C, int64_t r0, int64_t r1,
                float* grad_spec, const ParallelFor& pf, bool band = false) const;

 private:
  // Scratch array `slot` of at least n floats, kept from call to call: a render reuses the
  // memory its last call left in this core's cache instead of fresh allocations. So one
  // object serves one call at a time (a task's own render does).
  float* scratch(int slot, int64_t n) const;
  int64_t S_, K_;
  std::vector<float> scale_, colour_;
  float offset_;
  ColumnDft dft_;
  mutable std::vector<float> scratch_[9];
};

}  // namespace vizsweep::kernels
