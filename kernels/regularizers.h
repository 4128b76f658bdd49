// Image-space regularizers of Yosinski et al. (2015), applied after each ascent step.
//
// They act on the centred image c (pixel scale 0..255 with the per-channel mean
// subtracted, the scale of the paper's Table 1), shape [B, C, H, W], in place. Statistics
// (percentiles) are taken per image over all its pixels; a "pixel" is the C-vector at one
// (h, w). Zeroing a pixel sets it to the mean colour.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace vizsweep::kernels {

class Regularizer {
 public:
  virtual ~Regularizer() = default;
  // "blur(radius=0.5,every=4)": goes into the index as is.
  virtual std::string description() const = 0;
  // Modifies c after the step of `iteration` (0-based); grad is that step's gradient of
  // the objective with respect to c.
  virtual void apply(torch::Tensor& c, const torch::Tensor& grad, int iteration) const = 0;
};

// c *= (1 - decay). Rejects decay outside [0, 1).
class L2Decay : public Regularizer {
 public:
  explicit L2Decay(double decay);
  std::string description() const override;
  void apply(torch::Tensor& c, const torch::Tensor& grad, int iteration) const override;

 private:
  double decay_;
};

// Gaussian blur with sigma = radius on iterations 0, every, 2*every, ...; kernel truncated
// at int(4 * radius + 0.5) pixels (scipy's default), edges replicated. Rejects radius <= 0
// or every < 1.
class GaussianBlur : public Regularizer {
 public:
  GaussianBlur(double radius, int every);
  std::string description() const override;
  void apply(torch::Tensor& c, const torch::Tensor& grad, int iteration) const override;

 private:
  double radius_;
  int every_;
};

// Zeroes the pixels whose L2 norm over channels lies under the per-image percentile:
// exactly the floor(pct/100 * H*W) pixels of smallest norm (ties at the threshold kept).
class ClipSmallNorm : public Regularizer {
 public:
  explicit ClipSmallNorm(double percentile);
  std::string description() const override;
  void apply(torch::Tensor& c, const torch::Tensor& grad, int iteration) const override;

 private:
  double pct_;
};

// Zeroes the pixels of small contribution sum_channels |c * grad| (the first-order change
// of the objective if the pixel were zeroed) under the per-image percentile, as above.
class ClipSmallContribution : public Regularizer {
 public:
  explicit ClipSmallContribution(double percentile);
  std::string description() const override;
  void apply(torch::Tensor& c, const torch::Tensor& grad, int iteration) const override;

 private:
  double pct_;
};

// The blur itself: [B, C, H, W] -> same shape. radius <= 0 returns x unchanged.
torch::Tensor gaussian_blur(const torch::Tensor& x, double radius);
// The normalized 1-D kernel gaussian_blur uses (length 2 * int(4 * radius + 0.5) + 1).
torch::Tensor gaussian_kernel1d(double radius, torch::TensorOptions opts = {});
// Mask [B, 1, H, W]: 1 where score [B, H, W] is at or above the per-image percentile cut
// (the floor(pct/100 * H*W) smallest scores get 0).
torch::Tensor keep_mask_above_percentile(const torch::Tensor& score, double pct);

}  // namespace vizsweep::kernels
