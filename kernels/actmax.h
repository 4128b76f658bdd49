// Activation maximization (Yosinski et al. 2015), batched: one image per unit, all units
// of a request optimized together in one batch.
//
// The optimization variable is the centred image c in the paper's pixel scale (0..255 with
// the per-channel mean subtracted), so the Table 1 settings transfer as published; images
// come back in pixel space [0, 1]. After each step: regularizers in the order decay, blur,
// clip small norm, clip small contribution; then c is clamped to the valid pixel range.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/regularizers.h"
#include "kernels/settings.h"
#include "kernels/spectral.h"

namespace vizsweep::kernels {

// Per image b, the activation of unit units[b] of `layer` (fc layers: the unit itself).
class UnitObjective {
 public:
  UnitObjective(const Model& model, const LayerInfo& layer, std::vector<int64_t> units, ObjectiveKind kind);
  // act: the layer's output [B, ...] -> [B].
  torch::Tensor evaluate(const torch::Tensor& act) const;
  // [B] bool: whether unit units[b] is the largest of its layer at the objective's location.
  torch::Tensor is_argmax(const torch::Tensor& act) const;
  // "conv5_3 unit 7 at centre (7,7)" style, with "{unit}" for the unit.
  std::string description() const;
  const LayerInfo& layer() const { return layer_; }
  const std::vector<int64_t>& units() const { return units_; }
  // The same objective read at output position (y, x) instead of the centre: for the output
  // of a receptive-field crop (Model::input_window).
  UnitObjective at(int64_t y, int64_t x) const;

 private:
  torch::Tensor per_unit(const torch::Tensor& act) const;  // [B, units of layer]
  LayerInfo layer_;
  std::vector<int64_t> units_;
  torch::Tensor index_;  // [B, 1] int64 on the model's device
  ObjectiveKind kind_;
  int64_t at_y_ = -1, at_x_ = -1;  // -1: the centre of the output
};

// The regularizers the settings switch on, in application order.
std::vector<std::unique_ptr<Regularizer>> make_regularizers(const ActMaxSettings& s);

struct ActMaxRequest {
  std::string layer;             // alias or path
  std::vector<int64_t> units;    // one image each; duplicates allowed
  ObjectiveKind objective = ObjectiveKind::CentreUnit;
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

// The colour basis of decorrelate (fft on 3-channel models): Lucid's square root of the
// ImageNet colour covariance, normalized by its largest column norm; rendered channels are
// this 3 x 3 matrix times the optimized ones.
torch::Tensor colour_decorrelation();

// The sampling grid [B, y1 - y0, x1 - x0, 2] (grid_sample's, align_corners false) of rows
// [y0, y1) and columns [x0, x1) of a batch of S x S images, each translated by shifts[b] =
// (dy, dx) pixels (when defined), then scaled about its centre by 1 + scale (2 draw[0][b] - 1)
// and rotated by rotate (2 draw[1][b] - 1) degrees (draw [2, B] uniform in [0, 1)): affine_grid's
// values for that window, on the host.
torch::Tensor affine_sampling_grid(const torch::Tensor& draw, double scale, double rotate, const torch::Tensor& shifts,
                                   int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1);

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

// Robustness: the objective on images shifted (torch::roll) by a random (dy, dx) in
// [-max_shift, max_shift]^2 \ {(0,0)} drawn from seed, divided by the objective on images.
torch::Tensor unit_robustness(const Model& model, const UnitObjective& objective, const torch::Tensor& images,
                              int max_shift, uint64_t seed);

}  // namespace vizsweep::kernels
