// Inversion of a layer's representation (Mahendran & Vedaldi 2015), batched over images.
//
// Finds x minimizing, per image,
//   ||Phi(x) - Phi0||^2 / ||Phi0||^2 + l_alpha * R_alpha(x) + l_tv * R_tv(x)
// with d = x - mean (pixel space [0, 1]), B = 80/255 (a typical pixel norm), V = B / 6.5 *
// 224 / S (a typical neighbour difference; the paper's V is for 224 px images, and scaling
// it with the side S keeps the TV cost of the same scene independent of resolution),
//   R_alpha = sum |d / B|^alpha / (H W),   R_tv = sum ((dx^2 + dy^2) / V^2)^(beta/2) / (H W),
// by gradient descent with momentum and a stepped learning rate; x stays in [0, 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

// The TV weight used for `layer` (resolves l_tv < 0 by the layer's depth).
double tv_weight(const Model& model, const LayerInfo& layer, const InversionSettings& s);

struct InversionResult {
  torch::Tensor images;       // [B, C, S, S] in [0, 1]
  torch::Tensor loss_trace;   // [iterations, B] total loss before each step
  torch::Tensor rep_error;    // [B] final ||Phi(x) - Phi0||^2 / ||Phi0||^2
  torch::Tensor hf_energy;    // [B] see metrics.h
  double l_tv = 0;            // the TV weight used
};

// targets: images [B, C, S, S] in [0, 1] whose representation at `layer` is inverted.
// Throws vizsweep::Error for an unknown layer or bad settings, NumericalError on NaN/Inf.
InversionResult invert(const Model& model, const std::string& layer, const torch::Tensor& targets,
                       const InversionSettings& settings, uint64_t seed);

}  // namespace vizsweep::kernels
