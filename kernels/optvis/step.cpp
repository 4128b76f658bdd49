#include "kernels/optvis/step.h"

#include <torch/torch.h>

#include <cmath>

#include "kernels/adam.h"
#include "kernels/model.h"  // intra_op_parallel

namespace vizsweep::kernels {

void Ascent::step(torch::Tensor& v, const torch::Tensor& g, int it, const std::vector<int64_t>& dims) {
  const ActMaxSettings& s = s_;
  if (s.lr_policy == LrPolicy::Constant) {
    v.add_(g, s.lr);
  } else if (s.lr_policy == LrPolicy::Normalized) {
    v.add_(g / (g.abs().mean(dims, /*keepdim=*/true) + 1e-12), s.lr);
  } else if (s.lr_policy == LrPolicy::Adam) {
    if (!adam_m_.defined()) adam_m_ = torch::zeros_like(v), adam_v_ = torch::zeros_like(v);
    if (v.device().is_cpu() && v.scalar_type() == torch::kFloat && v.is_contiguous()) {  // adam.h's one pass
      const auto gc = g.contiguous();
      adam_update(v.data_ptr<float>(), gc.data_ptr<float>(), adam_m_.data_ptr<float>(), adam_v_.data_ptr<float>(), v.numel(),
                  AdamStep{s.lr, s.adam_beta1, s.adam_beta2, it + 1}, intra_op_parallel());
      return;
    }
    const double t = it + 1;
    adam_m_.mul_(s.adam_beta1).add_(g, 1.0 - s.adam_beta1);
    adam_v_.mul_(s.adam_beta2).addcmul_(g, g, 1.0 - s.adam_beta2);
    auto m_hat = adam_m_ / (1.0 - std::pow(s.adam_beta1, t));
    auto v_hat = adam_v_ / (1.0 - std::pow(s.adam_beta2, t));
    v.add_(m_hat / (v_hat.sqrt() + 1e-8), s.lr);
  } else {
    auto g2 = g.pow(2).sum(dims, /*keepdim=*/true);
    auto lr = (s.progress_target / g2).clamp_max(s.lr);  // g2 == 0 gives inf, capped at lr
    v.add_(g * lr);
  }
}

void MomentumAscent::step(torch::Tensor& v, const torch::Tensor& g, int it, const std::vector<int64_t>& dims) {
  double lr = s_.lr;
  for (double f : s_.lr_steps)
    if (it >= static_cast<int>(f * s_.iterations)) lr *= s_.lr_decay;
  const torch::Tensor gn = s_.normalize_grad ? g / (g.abs().mean(dims, /*keepdim=*/true) + 1e-12) : g;
  if (!velocity_.defined()) velocity_ = torch::zeros_like(v);
  velocity_.mul_(s_.momentum).add_(gn, lr);
  v.add_(velocity_);
}

}  // namespace vizsweep::kernels
