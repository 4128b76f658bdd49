#include "kernels/attacks.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/error.h"

namespace vizsweep::kernels {

namespace F = torch::nn::functional;

uint64_t attack_seed(int64_t seed, int64_t image_id, int64_t run) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  uint64_t z = mix(static_cast<uint64_t>(seed));
  z = mix(z ^ static_cast<uint64_t>(image_id));
  z = mix(z ^ static_cast<uint64_t>(run));
  return z & 0x7fffffffffffffffULL;
}

int64_t random_target(int64_t seed, int64_t image_id, int64_t label, int64_t classes) {
  if (classes < 2) return label;
  const uint64_t h = attack_seed(seed, image_id, -1);
  return (label + 1 + static_cast<int64_t>(h % static_cast<uint64_t>(classes - 1))) % classes;
}

std::vector<int> apgd_checkpoints(int steps) {
  std::vector<double> p = {0.0, 0.22};
  while (p.back() < 1.0) p.push_back(p.back() + std::max(p[p.size() - 1] - p[p.size() - 2] - 0.03, 0.06));
  std::vector<int> w;
  for (size_t j = 1; j < p.size(); ++j) {
    // 1e-9 against the representation error of the p_j (0.22 + 0.19 is 0.41000000000000003).
    const int wj = static_cast<int>(std::ceil(p[j] * steps - 1e-9));
    if (wj > 0 && wj < steps && (w.empty() || wj > w.back())) w.push_back(wj);
  }
  return w;
}

namespace {

// Per-image Euclidean norm, shaped to broadcast over [B, C, S, S].
// On a contiguous copy: a gradient may come back in another memory layout, and a norm over a
// strided view sums in another order (values differ in the last bit).
torch::Tensor l2(const torch::Tensor& t) {
  return at::linalg_vector_norm(t.contiguous().flatten(1), 2, at::IntArrayRef{1}).view({-1, 1, 1, 1});
}

// dir(g): sign for L-inf, g / ||g||_2 for L2.
torch::Tensor direction(const torch::Tensor& g, AttackNorm norm) {
  if (norm == AttackNorm::Linf) return g.sign();
  return g / l2(g).clamp_min(1e-12);
}

// P: onto the eps-ball around x0, then into [0, 1].
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& x0, double eps, AttackNorm norm) {
  if (norm == AttackNorm::Linf) return torch::max(torch::min(x, x0 + eps), x0 - eps).clamp_(0.0, 1.0);
  const torch::Tensor d = x - x0;
  return (x0 + d * (eps / l2(d).clamp_min(1e-12)).clamp_max(1.0)).clamp_(0.0, 1.0);
}

// Random starts, image b's from its own generator (CPU, then moved: the same on every device).
torch::Tensor random_start(const torch::Tensor& x0, const std::vector<uint64_t>& seeds, double eps, AttackNorm norm) {
  std::vector<torch::Tensor> d;
  const auto shape = x0.sizes().slice(1);
  for (uint64_t seed : seeds) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    if (norm == AttackNorm::Linf) {
      d.push_back((torch::rand(shape, gen, torch::kFloat) * 2 - 1) * eps);
    } else {
      const torch::Tensor n = torch::randn(shape, gen, torch::kFloat);
      const torch::Tensor u = torch::rand({1}, gen, torch::kFloat);
      d.push_back(n / at::linalg_vector_norm(n, 2).clamp_min(1e-12) * (u * eps));
    }
  }
  return (x0 + torch::stack(d).to(x0.device())).clamp_(0.0, 1.0);
}

// The trace of one run: FgsmResult's per-step rows for its images.
struct Trace {
  torch::Tensor pred, pred_prob, label_prob, loss, margin, probs, eta;
  Trace(int64_t rows, int64_t B, int64_t classes, const torch::TensorOptions& o)
      : pred(torch::empty({rows, B}, o.dtype(torch::kLong))),
        pred_prob(torch::empty({rows, B}, o)),
        label_prob(torch::empty({rows, B}, o)),
        loss(torch::empty({rows, B}, o)),
        margin(torch::empty({rows, B}, o)),
        probs(torch::empty({rows, B, classes}, o)),
        eta(torch::empty({rows, B}, o)) {}
  void record(int64_t row, const torch::Tensor& logits_in, const torch::Tensor& y) {
    torch::NoGradGuard ng;
    const torch::Tensor logits = logits_in.detach();
    auto logp = torch::log_softmax(logits, 1);
    auto best = logp.max(1);
    probs[row].copy_(logp.exp());
    pred[row].copy_(std::get<1>(best));
    pred_prob[row].copy_(std::get<0>(best).exp());
    auto ly = logp.gather(1, y.view({-1, 1})).squeeze(1);
    label_prob[row].copy_(ly.exp());
    loss[row].copy_(-ly);
    const auto zy = logits.gather(1, y.view({-1, 1})).squeeze(1);
    const auto others = logits.scatter(1, y.view({-1, 1}), -std::numeric_limits<float>::infinity());
    margin[row].copy_(zy - std::get<0>(others.max(1)));
  }
};

// The loss a run ascends, per image.
torch::Tensor attack_loss(const FgsmSettings& s, const torch::Tensor& logits, const torch::Tensor& y,
                          const torch::Tensor& target) {
  if (s.attack == Attack::ApgdDlr) {
    const auto sorted = std::get<0>(logits.sort(1));
    const int64_t K = logits.size(1);
    const auto zy = logits.gather(1, y.view({-1, 1})).squeeze(1);
    const auto zt = logits.gather(1, target.view({-1, 1})).squeeze(1);
    return -(zy - zt) / (sorted.select(1, K - 1) - (sorted.select(1, K - 3) + sorted.select(1, K - 4)) * 0.5 + 1e-12);
  }
  const auto ce = F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kNone));
  return s.targeted ? -ce : ce;
}

struct RunOut {
  torch::Tensor x, best_loss, broken;
};

bool is_apgd(const FgsmSettings& s) { return s.attack == Attack::ApgdCe || s.attack == Attack::ApgdDlr; }

// PGD and MI-FGSM: `steps` signed (or L2-normalized) steps of the loss's gradient.
RunOut run_pgd(const Model& m, const FgsmSettings& s, const torch::Tensor& x0, const torch::Tensor& start,
               const torch::Tensor& y, Trace& t) {
  const double alpha = effective_step_size(s), sign = s.targeted ? -alpha : alpha;
  torch::Tensor x = start.clone(), acc = torch::zeros_like(x0);
  t.eta.fill_(alpha);
  for (int step = 0; step < s.steps; ++step) {
    x.requires_grad_(true);
    auto logits = m.logits(x);
    if (step > 0) t.record(step, logits, y);
    auto loss = F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto g = torch::autograd::grad({loss}, {x})[0];
    torch::NoGradGuard ng;
    x = x.detach();
    if (s.attack == Attack::MiFgsm) {
      acc = acc * s.momentum + g / g.abs().flatten(1).sum(1).clamp_min(1e-12).view({-1, 1, 1, 1});
      g = acc;
    }
    x.add_(direction(g, s.norm), sign);
    x = project(x, x0, s.eps, s.norm);
  }
  torch::NoGradGuard ng;
  auto logits = m.logits(x);
  t.record(s.steps, logits, y);
  const auto pred = logits.argmax(1);
  return {x, x, s.targeted ? pred == y : pred != y};
}

// APGD (Croce & Hein 2020, Algorithm 1; attacks.h), every image with its own step size.
RunOut run_apgd(const Model& m, const FgsmSettings& s, const torch::Tensor& x0, const torch::Tensor& start,
                const torch::Tensor& y, const torch::Tensor& target, Trace& t) {
  const int N = s.steps;
  const auto W = apgd_checkpoints(N);
  const double rho = 0.75, a = 0.75;
  auto per_image = [](const torch::Tensor& v) { return v.view({-1, 1, 1, 1}); };
  auto fooled = [&](const torch::Tensor& logits) {
    const auto pred = logits.argmax(1);
    return s.targeted ? pred == y : pred != y;
  };
  // f and its gradient at x; the forward's logits.
  auto eval = [&](const torch::Tensor& x_in, bool grad, torch::Tensor& f, torch::Tensor& g) {
    torch::Tensor x = x_in.detach().requires_grad_(grad);
    torch::Tensor logits;
    if (grad) {
      torch::AutoGradMode on(true);
      logits = m.logits(x);
      auto fi = attack_loss(s, logits, y, target);
      g = torch::autograd::grad({fi.sum()}, {x})[0];
      f = fi.detach();
    } else {
      torch::NoGradGuard ng;
      logits = m.logits(x);
      f = attack_loss(s, logits, y, target);
    }
    return logits.detach();
  };
  torch::NoGradGuard outer;
  torch::Tensor eta = torch::full({x0.size(0)}, 2 * s.eps, x0.options());
  torch::Tensor xk = start.clone(), fk, gk;
  torch::Tensor logits = eval(xk, true, fk, gk);
  torch::Tensor x_max = xk.clone(), f_max = fk.clone(), g_max = gk.clone();
  torch::Tensor broken = fooled(logits), x_broken = xk.clone();
  torch::Tensor eta_last = eta.clone(), fmax_last = f_max.clone();
  torch::Tensor rises = torch::zeros_like(fk);
  torch::Tensor x_prev = xk;
  t.eta[0].copy_(eta);
  size_t next_w = 0;
  int w_prev = 0;
  for (int k = 0; k < N; ++k) {
    const auto z = project(xk + per_image(eta) * direction(gk, s.norm), x0, s.eps, s.norm);
    const auto x_next = k == 0 ? z : project(xk + (z - xk) * a + (xk - x_prev) * (1 - a), x0, s.eps, s.norm);
    x_prev = xk;
    torch::Tensor f_next, g_next;
    logits = eval(x_next, k + 1 < N, f_next, g_next);
    if (k + 1 < N) t.record(k + 1, logits, y);
    rises += (f_next > fk).to(rises.dtype());
    const auto better = f_next > f_max;
    x_max = torch::where(per_image(better), x_next, x_max);
    f_max = torch::where(better, f_next, f_max);
    if (g_next.defined()) g_max = torch::where(per_image(better), g_next, g_max);
    const auto now_fooled = fooled(logits);
    x_broken = torch::where(per_image(now_fooled), x_next, x_broken);
    broken = broken | now_fooled;
    xk = x_next, fk = f_next, gk = g_next;
    if (next_w < W.size() && k + 1 == W[next_w]) {
      const int w = W[next_w++];
      const auto cond1 = rises < rho * (w - w_prev);
      const auto cond2 = (eta == eta_last) & (f_max == fmax_last);
      const auto halve = cond1 | cond2;
      eta_last = eta.clone(), fmax_last = f_max.clone();
      eta = torch::where(halve, eta / 2, eta);
      xk = torch::where(per_image(halve), x_max, xk);
      gk = torch::where(per_image(halve), g_max, gk);
      fk = torch::where(halve, f_max, fk);
      rises.zero_();
      w_prev = w;
    }
    t.eta[k + 1].copy_(eta);
  }
  const auto out = torch::where(per_image(broken), x_broken, x_max);
  t.record(N, m.logits(out), y);
  return {out, x_max, broken};
}

}  // namespace

AttackResult attack(const Model& model, const torch::Tensor& images, const torch::Tensor& labels,
                    const std::vector<int64_t>& image_ids, const FgsmSettings& s) {
  validate(s);
  const int64_t B = images.dim() > 0 ? images.size(0) : 0;
  if (static_cast<int64_t>(image_ids.size()) != B) throw Error("image_ids", "need one id per image");
  AttackResult r;
  const bool every_target = s.targeted && s.target_mode == TargetMode::All;
  if (s.attack == Attack::Fgsm && s.norm == AttackNorm::Linf && !every_target) {  // the FGSM kernel, as before
    static_cast<FgsmResult&>(r) = fgsm(model, images, labels, s);
    r.eta = torch::full_like(r.loss, r.step_size);
    r.run = torch::zeros({B}, torch::kLong);
    r.target = torch::full({B}, -1, torch::kLong);
    r.best_loss = r.adversarial;
    const auto final_pred = r.pred[s.steps];
    r.broken = s.targeted ? final_pred == labels.to(final_pred.device()) : final_pred != labels.to(final_pred.device());
    return r;
  }
  const torch::Tensor x0 = images.to(model.device(), torch::kFloat);
  const torch::Tensor y = labels.to(model.device(), torch::kLong);
  const int64_t K = model.info().num_classes;
  if (y.dim() != 1 || y.size(0) != B) throw Error("labels", "need one label per image");
  if (B > 0 && (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= K))
    throw Error("labels", "out of range 0.." + std::to_string(K - 1));
  if (s.attack == Attack::ApgdDlr && K < 4)
    throw Error("attack", "apgd-dlr's loss needs at least 4 classes; this model has " + std::to_string(K));
  const auto opts = x0.options();
  const int64_t rows = s.steps + 1;
  Trace all(rows, B, K, opts);
  r.step_size = effective_step_size(s);
  r.adversarial = x0.clone();
  r.best_loss = x0.clone();
  r.broken = torch::zeros({B}, opts.dtype(torch::kBool));
  r.run = torch::zeros({B}, torch::kLong);
  r.target = torch::full({B}, -1, torch::kLong);
  torch::Tensor clean_logits;
  {
    torch::NoGradGuard ng;
    clean_logits = model.logits(x0);
  }
  // Runs: (target, restart); targets under apgd-dlr (the 9 classes the clean image scores
  // highest after its label) and under target_mode all (every other class, in that order).
  const bool random = s.attack == Attack::Pgd || is_apgd(s);
  const int64_t targets = s.attack == Attack::ApgdDlr ? std::min<int64_t>(9, K - 1) : every_target ? K - 1 : 1;
  torch::Tensor ranked;
  if (s.attack == Attack::ApgdDlr || every_target)
    ranked = clean_logits.scatter(1, y.view({-1, 1}), -std::numeric_limits<float>::infinity()).argsort(1, true);
  for (int64_t ti = 0; ti < targets; ++ti) {
    for (int64_t rs = 0; rs < s.restarts; ++rs) {
      const int64_t run = ti * s.restarts + rs;
      // The images no earlier run broke.
      const auto todo = run == 0 ? torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(x0.device()))
                                 : (~r.broken).nonzero().squeeze(1);
      const int64_t n = todo.size(0);
      if (n == 0) break;
      const auto xs = x0.index_select(0, todo);
      torch::Tensor tgt;
      if (ranked.defined()) tgt = ranked.index_select(0, todo).select(1, ti).contiguous();
      // What the run's loss and trace take as the label: the target under target_mode all.
      const auto ys = every_target ? tgt : y.index_select(0, todo);
      torch::Tensor start = xs;
      if (random) {
        const auto todo_cpu = todo.cpu();
        std::vector<uint64_t> seeds;
        for (int64_t i = 0; i < n; ++i) seeds.push_back(attack_seed(s.seed, image_ids[static_cast<size_t>(todo_cpu[i].item<int64_t>())], run));
        start = random_start(xs, seeds, s.eps, s.norm);
      }
      Trace t(rows, n, K, opts);
      t.record(0, clean_logits.index_select(0, todo), ys);
      const RunOut o = is_apgd(s) ? run_apgd(model, s, xs, start, ys, tgt, t) : run_pgd(model, s, xs, start, ys, t);
      // Kept: the first run of every image, and a later run that broke it.
      const auto keep = run == 0 ? torch::ones({n}, opts.dtype(torch::kBool)) : o.broken;
      const auto sel = keep.nonzero().squeeze(1);
      const auto dst = todo.index_select(0, sel);
      torch::NoGradGuard ng;
      r.adversarial.index_copy_(0, dst, o.x.index_select(0, sel));
      r.best_loss.index_copy_(0, dst, o.best_loss.index_select(0, sel));
      r.broken.index_copy_(0, dst, o.broken.index_select(0, sel));
      const auto dst_cpu = dst.cpu();
      r.run.index_fill_(0, dst_cpu, run);
      if (tgt.defined()) r.target.index_copy_(0, dst_cpu, tgt.index_select(0, sel).cpu());
      for (torch::Tensor Trace::*p : {&Trace::pred, &Trace::pred_prob, &Trace::label_prob, &Trace::loss, &Trace::margin, &Trace::eta})
        (all.*p).index_copy_(1, dst, (t.*p).index_select(1, sel));
      all.probs.index_copy_(1, dst, t.probs.index_select(1, sel));
    }
  }
  r.pred = all.pred, r.pred_prob = all.pred_prob, r.label_prob = all.label_prob, r.loss = all.loss;
  r.margin = all.margin, r.probs = all.probs, r.eta = all.eta;
  if (!torch::isfinite(r.pred_prob).all().item<bool>() || !torch::isfinite(r.label_prob).all().item<bool>())
    throw NumericalError("fgsm", "NaN or Inf in the model's output (a model with NaN or huge weights?)");
  return r;
}

}  // namespace vizsweep::kernels
