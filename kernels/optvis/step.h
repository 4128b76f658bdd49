// Step policies: how the loop moves the optimized variable along its gradient (ascent).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "kernels/settings.h"

namespace vizsweep::kernels {

class StepPolicy {
 public:
  virtual ~StepPolicy() = default;
  // One ascent step on v with its gradient g at iteration it; dims: v's dimensions but the
  // batch (for per-image reductions).
  virtual void step(torch::Tensor& v, const torch::Tensor& g, int it, const std::vector<int64_t>& dims) = 0;
};

// Activation maximization's policies (ActMaxSettings::lr_policy).
class Ascent : public StepPolicy {
 public:
  explicit Ascent(const ActMaxSettings& s) : s_(s) {}
  // One ascent step on v (the pixels, or a spectrum) with its gradient g at iteration it;
  // dims: v's dimensions but the batch (the per-image reductions of normalized and progress).
  //   constant:   v += lr g
  //   normalized: v += lr g / mean|g|
  //   adam:       Adam (Kingma & Ba 2015) ascending, its state kept here
  //   progress:   v += min(lr, target / ||g||^2) g
  void step(torch::Tensor& v, const torch::Tensor& g, int it, const std::vector<int64_t>& dims) override;

 private:
  const ActMaxSettings& s_;
  torch::Tensor adam_m_, adam_v_;  // Adam's running means of the gradient and its square
};

// Inversion's: momentum with a stepped learning rate (lr times lr_decay at each of lr_steps,
// fractions of the run), each image's gradient scaled to unit mean |g| with normalize_grad:
// velocity = momentum velocity + lr g; v += velocity.
class MomentumAscent : public StepPolicy {
 public:
  explicit MomentumAscent(const InversionSettings& s) : s_(s) {}
  void step(torch::Tensor& v, const torch::Tensor& g, int it, const std::vector<int64_t>& dims) override;

 private:
  const InversionSettings& s_;
  torch::Tensor velocity_;
};

}  // namespace vizsweep::kernels
