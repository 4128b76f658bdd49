#include "kernels/regularizers.h"

#include <cmath>
#include <sstream>

#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

namespace {
std::string fmt(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
// The declared range of an activation-maximization hyperparameter (kernels/settings.cpp).
void check_declared(const char* field, double v) { param_info(actmax_params(), field).check(v); }
}  // namespace

L2Decay::L2Decay(double decay) : decay_(decay) { check_declared("decay", decay); }
std::string L2Decay::description() const { return "decay(" + fmt(decay_) + ")"; }
void L2Decay::apply(torch::Tensor& c, const torch::Tensor&, int) const { c.mul_(1.0 - decay_); }

GaussianBlur::GaussianBlur(double radius, int every) : radius_(radius), every_(every) {
  if (!(radius > 0)) throw Error("blur_radius", "must be > 0, got " + fmt(radius));
  if (every < 1) throw Error("blur_every", "must be >= 1, got " + std::to_string(every));
}
std::string GaussianBlur::description() const {
  return "blur(radius=" + fmt(radius_) + ",every=" + std::to_string(every_) + ")";
}
void GaussianBlur::apply(torch::Tensor& c, const torch::Tensor&, int iteration) const {
  if (iteration % every_ == 0) c.copy_(gaussian_blur(c, radius_));
}

ClipSmallNorm::ClipSmallNorm(double pct) : pct_(pct) { check_declared("norm_pct", pct); }
std::string ClipSmallNorm::description() const { return "clip_norm(pct=" + fmt(pct_) + ")"; }
void ClipSmallNorm::apply(torch::Tensor& c, const torch::Tensor&, int) const {
  c.mul_(keep_mask_above_percentile(c.norm(2, {1}), pct_));
}

ClipSmallContribution::ClipSmallContribution(double pct) : pct_(pct) { check_declared("contrib_pct", pct); }
std::string ClipSmallContribution::description() const { return "clip_contrib(pct=" + fmt(pct_) + ")"; }
void ClipSmallContribution::apply(torch::Tensor& c, const torch::Tensor& grad, int) const {
  c.mul_(keep_mask_above_percentile((c * grad).abs().sum(1), pct_));
}

torch::Tensor gaussian_kernel1d(double radius, torch::TensorOptions opts) {
  int64_t half = static_cast<int64_t>(4.0 * radius + 0.5);
  auto dtype = opts.has_dtype() ? c10::typeMetaToScalarType(opts.dtype()) : torch::kFloat;
  auto t = torch::arange(-half, half + 1, torch::TensorOptions().dtype(torch::kDouble));
  auto k = torch::exp(-t * t / (2.0 * radius * radius));
  return (k / k.sum()).to(opts.device(), dtype);
}

torch::Tensor gaussian_blur(const torch::Tensor& x, double radius) {
  if (!(radius > 0)) return x;
  const int64_t C = x.size(1);
  auto k = gaussian_kernel1d(radius, x.options());
  const int64_t half = (k.size(0) - 1) / 2;
  namespace F = torch::nn::functional;
  auto padded = F::pad(x, F::PadFuncOptions({half, half, half, half}).mode(torch::kReplicate));
  auto kh = k.view({1, 1, 1, -1}).expand({C, 1, 1, k.size(0)});
  auto kv = k.view({1, 1, -1, 1}).expand({C, 1, k.size(0), 1});
  auto h = F::conv2d(padded, kh, F::Conv2dFuncOptions().groups(C));
  return F::conv2d(h, kv, F::Conv2dFuncOptions().groups(C));
}

torch::Tensor keep_mask_above_percentile(const torch::Tensor& score, double pct) {
  const int64_t B = score.size(0), H = score.size(1), W = score.size(2), N = H * W;
  const int64_t k = static_cast<int64_t>(std::floor(pct / 100.0 * static_cast<double>(N) + 1e-9));
  if (k <= 0) return torch::ones({B, 1, H, W}, score.options());
  if (k >= N) return torch::zeros({B, 1, H, W}, score.options());
  // The (k+1)-th smallest score of each image is the first one kept.
  auto flat = score.reshape({B, N});
  auto cut = std::get<0>(flat.kthvalue(k + 1, 1, /*keepdim=*/true));
  return (flat >= cut).to(score.dtype()).view({B, 1, H, W});
}

}  // namespace vizsweep::kernels
