// Feature maps (Yosinski et al. 2015): every layer's activations for input images, computed
// in one forward pass without gradients, and tiled into one grid image per layer.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"

namespace vizsweep::kernels {

struct FeatureMap {
  LayerInfo layer;
  torch::Tensor activations;  // [B, C, H, W] or [B, N]
};

// images [B, C, S, S] in [0, 1]. layers: aliases or paths; empty = every layer.
// Throws vizsweep::Error for an unknown layer or a wrong input shape.
std::vector<FeatureMap> feature_maps(const Model& model, const torch::Tensor& images,
                                     const std::vector<std::string>& layers = {});

// One image's maps [C, H, W] (or [N], shown as a 1-pixel-per-unit grid) tiled into a
// near-square grid [rows * (H + pad) - pad, cols * (W + pad) - pad], each map scaled to
// [0, 1] by the layer's min and max; pad pixels are 1 (white).
torch::Tensor tile_feature_map(const torch::Tensor& maps, int pad = 1);

}  // namespace vizsweep::kernels
