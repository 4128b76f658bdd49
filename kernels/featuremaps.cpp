#include "kernels/featuremaps.h"

#include <torch/torch.h>

#include <cmath>

namespace vizsweep::kernels {

std::vector<FeatureMap> feature_maps(const Model& model, const torch::Tensor& images,
                                     const std::vector<std::string>& layers) {
  torch::NoGradGuard ng;
  std::vector<const LayerInfo*> wanted;
  for (const auto& name : layers) wanted.push_back(&model.layer(name));  // validates first
  int upto = model.last_index();
  if (!wanted.empty()) {
    upto = 0;
    for (const auto* L : wanted) upto = std::max(upto, L->index);
  }
  // One pass, up to the deepest wanted layer and no further.
  std::vector<torch::Tensor> outs = model.forward_all(images.to(model.device()), upto);
  std::vector<FeatureMap> res;
  if (wanted.empty())
    for (const auto& L : model.layers()) res.push_back({L, outs[L.index]});
  else
    for (const auto* L : wanted) res.push_back({*L, outs[L->index]});
  return res;
}

torch::Tensor tile_feature_map(const torch::Tensor& maps_in, int pad) {
  torch::Tensor maps = maps_in.detach().to(torch::kCPU, torch::kFloat);
  if (maps.dim() == 1) maps = maps.view({-1, 1, 1});
  const int64_t C = maps.size(0), H = maps.size(1), W = maps.size(2);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(C))));
  const int64_t rows = (C + cols - 1) / cols;
  auto lo = maps.min(), hi = maps.max();
  auto scaled = (maps - lo) / (hi - lo).clamp_min(1e-12);
  auto grid = torch::ones({rows * (H + pad) - pad, cols * (W + pad) - pad});
  for (int64_t i = 0; i < C; ++i) {
    int64_t r = i / cols, c = i % cols;
    grid.slice(0, r * (H + pad), r * (H + pad) + H).slice(1, c * (W + pad), c * (W + pad) + W).copy_(scaled[i]);
  }
  return grid;
}

}  // namespace vizsweep::kernels
