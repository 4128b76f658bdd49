#include "kernels/inversion.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "kernels/metrics.h"
#include "kernels/optvis/param.h"
#include "kernels/optvis/step.h"

namespace vizsweep::kernels {

double tv_weight(const Model& model, const LayerInfo& layer, const InversionSettings& s) {
  if (s.l_tv >= 0) return s.l_tv;
  int pools = 0;
  for (const auto& L : model.layers()) {
    if (L.index >= layer.index) break;
    if (L.kind == LayerKind::MaxPool) ++pools;
  }
  int block = pools + 1;  // conv1_x: 1, ..., after pool5 (fc): 6
  return std::min(50.0, 0.5 * std::pow(10.0, std::max(0, block - 3)));
}

namespace {

InversionResult finished(const LayerInfo& layer, torch::Tensor images, torch::Tensor trace, torch::Tensor rep_error, double l_tv) {
  InversionResult res;
  res.images = std::move(images);
  res.rep_error = std::move(rep_error);
  res.loss_trace = std::move(trace);
  res.l_tv = l_tv;
  if (!torch::isfinite(res.loss_trace).all().item<bool>() || !torch::isfinite(res.rep_error).all().item<bool>())
    throw NumericalError("invert", "NaN or Inf while inverting " + layer.alias + " (try a smaller lr)");
  res.hf_energy = high_frequency_energy(res.images);
  return res;
}

// The same loss under another parameterization (kernels/optvis/param.h): its render is the
// image, the step inversion's momentum with the stepped learning rate, ascending the negated
// loss. losses(d, rep) is the loss of d = image - mean.
template <typename Losses>
InversionResult invert_spectral(const Model& model, const LayerInfo& layer, const torch::Tensor& x0, const torch::Tensor&,
                                const InversionSettings& s, uint64_t seed, Losses& losses) {
  ActMaxSettings as;  // what the parameterization reads: its kind, scale and start
  as.param = s.param, as.decay_power = s.decay_power, as.iterations = s.iterations;
  auto gen = at::detail::createCPUGenerator(seed);
  ParameterizationPtr param = make_parameterization(ParamContext{&model, x0.size(0), &as, &gen, torch::Tensor()});
  MomentumAscent step(s);
  const Regularizers none;
  auto mean = torch::tensor(model.info().mean, torch::kFloat).view({1, -1, 1, 1}).to(model.device());
  auto trace = torch::empty({s.iterations, x0.size(0)}, x0.options());
  const int64_t S = model.input_size();
  for (int it = 0; it < s.iterations; ++it) {
    const Rendered x = param->render(0, S, false);
    auto loss = losses(x.images - mean, nullptr);
    param->ascend((-loss).sum(), x, step, none, it);
    torch::NoGradGuard ng;
    trace[it].copy_(loss.detach());
  }
  torch::NoGradGuard ng;
  auto images = PixelFrame(model).to_image(param->pixels()).clamp(0.0, 1.0);
  torch::Tensor rep;
  losses(images - mean, &rep);
  return finished(layer, images, trace, rep, tv_weight(model, layer, s));
}

}  // namespace

InversionResult invert(const Model& model, const std::string& layer_name, const torch::Tensor& targets,
                       const InversionSettings& s, uint64_t seed) {
  validate(s);
  const LayerInfo& layer = model.layer(layer_name);
  torch::Tensor x0 = targets.to(model.device(), torch::kFloat);
  const int64_t B = x0.size(0);
  torch::Tensor phi0;
  {
    torch::NoGradGuard ng;
    phi0 = model.forward(x0, layer.index).detach().clone();  // also checks the input shape
  }
  auto dims = [](const torch::Tensor& t) {
    std::vector<int64_t> d;
    for (int64_t i = 1; i < t.dim(); ++i) d.push_back(i);
    return d;
  };
  const auto rep_dims = dims(phi0);
  auto phi0_norm = phi0.pow(2).sum(rep_dims).clamp_min(1e-12);
  const double l_tv = tv_weight(model, layer, s);
  const double Bn = 80.0 / 255.0, V = Bn / 6.5 * 224.0 / static_cast<double>(x0.size(2));
  const double HW = static_cast<double>(x0.size(2) * x0.size(3));
  auto mean = torch::tensor(model.info().mean, torch::kFloat).view({1, -1, 1, 1}).to(model.device());

  auto gen = at::detail::createCPUGenerator(seed);
  torch::Tensor d = (torch::randn(x0.sizes(), gen, torch::kFloat) * s.init_std).to(model.device());
  d = torch::max(torch::min(d, 1.0 - mean), -mean);
  torch::Tensor v = torch::zeros_like(d);
  auto trace = torch::empty({s.iterations, B}, d.options());

  auto losses = [&](const torch::Tensor& dd, torch::Tensor* rep_out) {
    auto phi = model.forward(dd + mean, layer.index);
    auto rep = (phi - phi0).pow(2).sum(rep_dims) / phi0_norm;
    if (rep_out) *rep_out = rep;
    auto ra = (dd / Bn).abs().pow(s.alpha).sum({1, 2, 3}) / HW;
    auto gy = dd.slice(2, 1).slice(3, 0, -1) - dd.slice(2, 0, -1).slice(3, 0, -1);
    auto gx = dd.slice(3, 1).slice(2, 0, -1) - dd.slice(3, 0, -1).slice(2, 0, -1);
    auto rtv = ((gx.pow(2) + gy.pow(2)) / (V * V) + 1e-12).pow(s.beta / 2.0).sum({1, 2, 3}) / HW;
    return rep + s.l_alpha * ra + l_tv * rtv;
  };

  if (s.param != ImageParam::Pixel) return invert_spectral(model, layer, x0, phi0, s, seed, losses);

  for (int it = 0; it < s.iterations; ++it) {
    double lr = s.lr;
    for (double f : s.lr_steps)
      if (it >= static_cast<int>(f * s.iterations)) lr *= s.lr_decay;
    d.requires_grad_(true);
    auto loss = losses(d, nullptr);
    auto g = torch::autograd::grad({loss.sum()}, {d})[0];
    torch::NoGradGuard ng;
    d = d.detach();
    trace[it].copy_(loss.detach());
    if (s.normalize_grad) g = g / (g.abs().mean({1, 2, 3}, /*keepdim=*/true) + 1e-12);
    v.mul_(s.momentum).sub_(g, lr);
    d.add_(v);
    d = torch::max(torch::min(d, 1.0 - mean), -mean);
  }

  torch::NoGradGuard ng;
  auto images = (d + mean).clamp(0.0, 1.0);
  torch::Tensor rep;
  losses(images - mean, &rep);
  return finished(layer, images, trace, rep, l_tv);
}

}  // namespace vizsweep::kernels
