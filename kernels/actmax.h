// Activation maximization (Yosinski et al. 2015), batched: one image per unit, all units
// of a request optimized together in one batch. Made of the parts in kernels/optvis/:
// a parameterization (pixel, fft, maco), transforms, an objective and a step policy; this
// file holds the loop that runs them.
//
// The optimization variable is the centred image c in the paper's pixel scale (0..255 with
// the per-channel mean subtracted), so the Table 1 settings transfer as published; images
// come back in pixel space [0, 1]. After each step: regularizers in the order decay, blur,
// clip small norm, clip small contribution; then c is clamped to the valid pixel range.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/optvis/objective.h"
#include "kernels/optvis/param.h"
#include "kernels/optvis/step.h"
#include "kernels/optvis/transform.h"
#include "kernels/regularizers.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

// The regularizers the settings switch on, in application order.
std::vector<std::unique_ptr<Regularizer>> make_regularizers(const ActMaxSettings& s);

struct ActMaxRequest {
  std::string layer;             // alias or path
  std::vector<int64_t> units;    // one image each; duplicates allowed
  // The sweep's objective (objective_spec.h): by default the unit at the centre; any sum of
  // units at a position, channel means and directions. The final activation, argmax flag and
  // robustness are the mapped unit's (at its term's position), or the objective's own value
  // when no term reads the mapped unit.
  ObjectiveSpec objective;
  // What is ascended instead of `objective` (objective.h's algebra; it must read `layer`'s
  // output). The final activation, argmax flag and robustness stay the units'.
  ObjectivePtr custom_objective;
  // Lucid's diversity: this weight times diversity_objective() among images of the same unit
  // (units repeated in `units`) is added to the objective; 0: off.
  double diversity = 0;
  // The share of the iterations (the first ones) the diversity penalty acts in; 1: all.
  double diversity_until = 1;
  // The layer the diversity penalty reads (alias or path); empty: diversity_layer()'s choice
  // (the mapped layer when it has 4 x 4 positions, else the last such layer before it).
  std::string diversity_layer;
  // The transforms that act first, in this order (the others follow in Lucid's: flip, pad,
  // jitter, scale, rotate, then pointwise ones); empty: Lucid's order.
  std::vector<std::string> transform_order;
  // MACO's fixed magnitude [C, S, S/2 + 1] (spectrum_magnitude()); undefined: the 1/f spectrum.
  torch::Tensor maco_magnitude;
  ActMaxSettings settings;
  uint64_t seed = 0;             // initial noise and robustness shifts
  int robustness_shift = 2;      // max pixels of the random shift in the robustness metric
  // Centre objectives of conv layers run forward and backward only on the crop of the image
  // that covers the unit's receptive field (the gradient is exactly zero outside it); the
  // image and the regularizers stay whole. Same results, a fraction of the work.
  bool crop_to_receptive_field = true;
  // Reduced precision's fp32 finish (ComputeFormat::fp32_finish, kernels/tune.h): the last
  // fp32_finish_iterations() steps run on fp32_model, the same network in fp32, which
  // polishes what the reduced precision's rounding left; the final activation and metrics
  // are then computed in fp32 too. Off when fp32_model is null or fp32_finish is 0.
  const Model* fp32_model = nullptr;
  double fp32_finish = 0;
};

struct ActMaxResult {
  torch::Tensor images;           // [B, C, S, S] float in [0, 1], on the model's device
  torch::Tensor final_activation; // [B] the objective on the final images
  torch::Tensor objective_trace;  // [iterations, B] the objective before each step
  torch::Tensor is_argmax;        // [B] bool
  torch::Tensor hf_energy;        // [B] see metrics.h
  torch::Tensor total_variation;  // [B]
  torch::Tensor saturation;       // [B]
  torch::Tensor robustness;       // [B] activation after a random shift / before (0 if before <= 0)
  std::string objective;          // description of the objective
  std::string regularizers;       // descriptions joined by "+", "none" if none
};

// How many of the request's last iterations run on its fp32_model: ceil(fp32_finish x
// iterations), 0 without one. Throws vizsweep::Error naming fp32_finish outside [0, 1], or for
// a finish model that is not `model`'s network in fp32 (size, device, layers).
int fp32_finish_iterations(const Model& model, const ActMaxRequest& req);

// Runs the optimization on the model's device. Deterministic given request.seed on CPU.
// Throws vizsweep::Error for an unknown layer, a unit out of range, bad settings or no
// units; vizsweep::NumericalError if the objective or image becomes NaN or Inf.
ActMaxResult activation_maximization(const Model& model, const ActMaxRequest& request);

// Robustness: the objective on images shifted (torch::roll) by a random (dy, dx) in
// [-max_shift, max_shift]^2 \ {(0,0)} drawn from seed, divided by the objective on images.
torch::Tensor unit_robustness(const Model& model, const UnitObjective& objective, const torch::Tensor& images,
                              int max_shift, uint64_t seed);

}  // namespace vizsweep::kernels
