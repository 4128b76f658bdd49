// Parameterizations: what activation maximization optimizes, and how it becomes images.
//
//   pixel  the pixels themselves, in the paper's pixel scale (Yosinski et al. 2015)
//   fft    a scaled 2-D spectrum through a sigmoid (Olah et al. 2017, Lucid's fft_image),
//          optionally in a decorrelated colour basis
//   maco   the spectrum's phase alone, under a fixed magnitude (Fel et al. 2023, MACO)
//
// Each renders the rows a step reads (at least) as a differentiable function of its variable,
// and takes the step: the gradient, the step policy, Yosinski's regularizers on the pixels
// and the valid range.
//
// Adding a parameterization: a class deriving from Parameterization, a case in
// make_parameterization() and in the `param` choice of the settings table, and a test.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/optvis/step.h"
#include "kernels/regularizers.h"
#include "kernels/settings.h"
#include "kernels/spectral.h"

namespace vizsweep::kernels {

using Regularizers = std::vector<std::unique_ptr<Regularizer>>;

// Pixel-scale (0..255, mean removed) bounds of a valid image, [1, C, 1, 1] each.
struct PixelFrame {
  torch::Tensor mean255, lo, hi;
  explicit PixelFrame(const Model& model);
  torch::Tensor to_image(const torch::Tensor& c) const { return (c + mean255) / 255.0; }
  torch::Tensor clamp(const torch::Tensor& c) const { return torch::max(torch::min(c, hi), lo); }
};

// A rendered step: images [B, C, S, S] in [0, 1] (rows outside those asked may be anything),
// or the band of rows [row0, row0 + rows) alone.
struct Rendered {
  torch::Tensor images;
  int64_t row0 = 0;
};

class Parameterization {
 public:
  virtual ~Parameterization() = default;
  virtual std::string name() const = 0;
  // Whether render() renders only the rows asked (else the whole image, whatever the rows).
  virtual bool renders_rows() const { return false; }
  // Whether render(..., band = true) gives a band of rows (what a band-reading transform wants).
  virtual bool renders_band() const { return false; }
  // The images as a function of the variable (recorded by autograd): rows [r0, r1) at least.
  virtual Rendered render(int64_t r0, int64_t r1, bool band) = 0;
  // One step from `objective` (the batch's sum, computed from this step's render `x`):
  // its gradient, the step policy, then the regularizers on the pixels and the valid range.
  virtual void ascend(const torch::Tensor& objective, const Rendered& x, StepPolicy& step, const Regularizers& regs, int it) = 0;
  // The images in the pixel scale (0..255, mean removed), no gradient.
  virtual torch::Tensor pixels() = 0;
};
using ParameterizationPtr = std::unique_ptr<Parameterization>;

// What a parameterization is made for: B images of C x S x S on `device`, the settings, the
// start drawn from `gen` (the task's seed). maco_magnitude: MACO's fixed magnitude [C, S,
// S/2 + 1] (undefined: the 1/f spectrum of fft's scale).
struct ParamContext {
  const Model* model = nullptr;
  int64_t batch = 0;
  const ActMaxSettings* settings = nullptr;
  at::Generator* gen = nullptr;
  torch::Tensor maco_magnitude;
};
ParameterizationPtr make_parameterization(const ParamContext& c);

// The colour basis of decorrelate (fft on 3-channel models): Lucid's square root of the
// ImageNet colour covariance, normalized by its largest column norm; rendered channels are
// this 3 x 3 matrix times the optimized ones.
torch::Tensor colour_decorrelation();

// MACO's magnitude from example images [N, C, S, S] in [0, 1]: the mean of |rfft2| of each
// image's channels (orthonormal), in the decorrelated colour basis on 3 channels, [C, S, S/2 + 1].
torch::Tensor spectrum_magnitude(const torch::Tensor& images);

// The spectral render (spectral.h) as a differentiable operation on CPU tensors: spec in its
// layout [2, S, S/2 + 1, B, C] -> images [B, C, S, S], rows [r0, r1) (rounded out to whole
// pairs) rendered and `fill` elsewhere; the gradient flows to spec from the rendered rows.
torch::Tensor spectral_render(const SpectralRender& render, const torch::Tensor& spec, int64_t r0, int64_t r1, double fill);
// The rendered rows alone: the band [B, C, a1 - a0, S] of rows [a0, a1) = rendered_rows(r0, r1).
torch::Tensor spectral_render_band(const SpectralRender& render, const torch::Tensor& spec, int64_t r0, int64_t r1);
// A spectrum [B, C, S, S/2 + 1, 2] (real, imaginary last, as torch::view_as_real gives it)
// in the render's layout [2, S, S/2 + 1, B, C], and back.
torch::Tensor spectrum_planar(const torch::Tensor& spec);
torch::Tensor spectrum_interleaved(const torch::Tensor& planar);

}  // namespace vizsweep::kernels
