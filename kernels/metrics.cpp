#include "kernels/metrics.h"

#include <torch/torch.h>

namespace vizsweep::kernels {

torch::Tensor high_frequency_energy(const torch::Tensor& images) {
  auto x = images.to(torch::kDouble);
  const int64_t H = x.size(2), W = x.size(3);
  x = x - x.mean({2, 3}, /*keepdim=*/true);
  auto power = torch::fft::fft2(x).abs().pow(2).sum(1);  // [B, H, W]
  auto fy = torch::fft::fftfreq(H, torch::TensorOptions().dtype(torch::kDouble)).view({H, 1});
  auto fx = torch::fft::fftfreq(W, torch::TensorOptions().dtype(torch::kDouble)).view({1, W});
  auto high = ((fy * fy + fx * fx).sqrt() > 0.25).to(torch::kDouble).to(images.device());
  auto total = power.sum({1, 2});
  auto hf = (power * high).sum({1, 2});
  return torch::where(total > 1e-20, hf / total.clamp_min(1e-20), torch::zeros_like(total)).to(torch::kFloat);
}

torch::Tensor total_variation(const torch::Tensor& images) {
  auto x = images.to(torch::kDouble);
  auto dv = (x.slice(2, 1) - x.slice(2, 0, -1)).abs().mean({1, 2, 3});
  auto dh = (x.slice(3, 1) - x.slice(3, 0, -1)).abs().mean({1, 2, 3});
  return (dv + dh).to(torch::kFloat);
}

torch::Tensor saturated_fraction(const torch::Tensor& images) {
  const double lo = 0.5 / 255.0, hi = 1.0 - 0.5 / 255.0;
  auto sat = (images <= lo).logical_or(images >= hi).to(torch::kFloat);
  return sat.flatten(1).mean(1);
}

}  // namespace vizsweep::kernels
