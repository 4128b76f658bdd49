#include "kernels/fgsm.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "kernels/error.h"

namespace vizsweep::kernels {

FgsmResult fgsm(const Model& model, const torch::Tensor& images, const torch::Tensor& labels,
                const FgsmSettings& s) {
  validate(s);
  torch::Tensor x0 = images.to(model.device(), torch::kFloat);
  torch::Tensor y = labels.to(model.device(), torch::kLong);
  const int64_t B = x0.dim() > 0 ? x0.size(0) : 0;
  if (y.dim() != 1 || y.size(0) != B) throw Error("labels", "need one label per image");
  if (B > 0 && (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= model.info().num_classes))
    throw Error("labels", "out of range 0.." + std::to_string(model.info().num_classes - 1));
  const double alpha = effective_step_size(s);
  FgsmResult r;
  r.step_size = alpha;
  auto opts = x0.options();
  r.pred = torch::empty({s.steps + 1, B}, opts.dtype(torch::kLong));
  r.pred_prob = torch::empty({s.steps + 1, B}, opts);
  r.label_prob = torch::empty({s.steps + 1, B}, opts);
  r.loss = torch::empty({s.steps + 1, B}, opts);
  r.margin = torch::empty({s.steps + 1, B}, opts);
  r.probs = torch::empty({s.steps + 1, B, model.info().num_classes}, opts);
  auto record = [&](int row, const torch::Tensor& logits) {
    torch::NoGradGuard ng;
    auto logp = torch::log_softmax(logits.detach(), 1);
    auto best = logp.max(1);
    r.probs[row].copy_(logp.exp());
    r.pred[row].copy_(std::get<1>(best));
    r.pred_prob[row].copy_(std::get<0>(best).exp());
    auto ly = logp.gather(1, y.view({-1, 1})).squeeze(1);
    r.label_prob[row].copy_(ly.exp());
    r.loss[row].copy_(-ly);
    const auto z = logits.detach();
    const auto others = z.scatter(1, y.view({-1, 1}), -std::numeric_limits<float>::infinity());
    r.margin[row].copy_(z.gather(1, y.view({-1, 1})).squeeze(1) - std::get<0>(others.max(1)));
  };
  torch::Tensor x = x0.clone();
  for (int step = 0; step < s.steps; ++step) {
    x.requires_grad_(true);
    auto logits = model.logits(x);  // checks the shape
    record(step, logits);
    auto loss = torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto g = torch::autograd::grad({loss}, {x})[0];
    torch::NoGradGuard ng;
    x = x.detach();
    x.add_(g.sign(), s.targeted ? -alpha : alpha);
    x = torch::max(torch::min(x, x0 + s.eps), x0 - s.eps).clamp_(0.0, 1.0);
  }
  {
    torch::NoGradGuard ng;
    record(s.steps, model.logits(x));
  }
  r.adversarial = x.detach();
  if (!torch::isfinite(r.pred_prob).all().item<bool>() || !torch::isfinite(r.label_prob).all().item<bool>())
    throw NumericalError("fgsm", "NaN or Inf in the model's output (a model with NaN or huge weights?)");
  return r;
}

}  // namespace vizsweep::kernels
