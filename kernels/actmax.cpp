#include "kernels/actmax.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <optional>

#include "kernels/error.h"
#include "kernels/metrics.h"
#include "kernels/tune.h"

namespace vizsweep::kernels {

std::vector<std::unique_ptr<Regularizer>> make_regularizers(const ActMaxSettings& s) {
  validate(s);
  std::vector<std::unique_ptr<Regularizer>> regs;
  if (s.decay > 0) regs.push_back(std::make_unique<L2Decay>(s.decay));
  if (s.blur_radius > 0) regs.push_back(std::make_unique<GaussianBlur>(s.blur_radius, s.blur_every));
  if (s.norm_pct > 0) regs.push_back(std::make_unique<ClipSmallNorm>(s.norm_pct));
  if (s.contrib_pct > 0) regs.push_back(std::make_unique<ClipSmallContribution>(s.contrib_pct));
  return regs;
}

namespace {

// Each image rolled by a random non-zero shift of up to max_shift pixels in y and x.
torch::Tensor shifted_copies(const torch::Tensor& images, int max_shift, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed ^ 0x9e3779b97f4a7c15ULL);
  const int64_t B = images.size(0);
  auto shifted = torch::empty_like(images);
  int64_t side = 2 * max_shift + 1;
  for (int64_t b = 0; b < B; ++b) {
    int64_t dy = 0, dx = 0;
    if (max_shift > 0) {
      while (dy == 0 && dx == 0) {
        auto r = torch::randint(0, side, {2}, gen, torch::kLong);
        dy = r[0].item<int64_t>() - max_shift;
        dx = r[1].item<int64_t>() - max_shift;
      }
    }
    shifted[b].copy_(torch::roll(images[b], {dy, dx}, {1, 2}));
  }
  return shifted;
}

// after / before where before > 0, else 0.
torch::Tensor robustness_ratio(const torch::Tensor& before, const torch::Tensor& after) {
  return torch::where(before > 0, after / before.clamp_min(1e-30), torch::zeros_like(before));
}

}  // namespace

torch::Tensor unit_robustness(const Model& model, const UnitObjective& objective, const torch::Tensor& images,
                              int max_shift, uint64_t seed) {
  const int index = objective.layer().index;
  torch::NoGradGuard ng;
  auto before = objective.evaluate(model.forward(images, index));
  return robustness_ratio(before, objective.evaluate(model.forward(shifted_copies(images, max_shift, seed), index)));
}

int fp32_finish_iterations(const Model& model, const ActMaxRequest& req) {
  if (!(req.fp32_finish >= 0 && req.fp32_finish <= 1))
    throw Error("fp32_finish", "must be in [0, 1] (the share of the last iterations run in fp32), got " + std::to_string(req.fp32_finish));
  if (!req.fp32_model || req.fp32_finish == 0) return 0;
  const Model& f = *req.fp32_model;
  if (f.precision() != Model::Precision::Fp32 || f.input_size() != model.input_size() || f.device() != model.device() ||
      f.layers().size() != model.layers().size() || f.info().in_channels != model.info().in_channels)
    throw Error("fp32_finish", "the finish model must be the same network in fp32, at the same input size, on the same device");
  return ComputeFormat{"fp32", false, req.fp32_finish}.finish_iterations(req.settings.iterations);
}

namespace {

// The outputs of layer `target` and of `others` for x, from one forward pass.
LayerOutputs outputs(const Model& model, const torch::Tensor& x, int target, const std::vector<int>& others) {
  LayerOutputs o;
  o.target = target;
  auto all = model.forward_all(x, target);
  o.of[target] = all[static_cast<size_t>(target)];
  for (int i : others) o.of[i] = all[static_cast<size_t>(i)];
  return o;
}

}  // namespace

// The loop: each step draws the transforms, renders the rows they read, evaluates the
// objective on the view of what the model sees (the receptive field's crop when the
// objective reads one position of a spatial layer: the gradient is exactly zero outside it),
// and lets the parameterization step (the step policy, the regularizers, the valid range).
// The last fp32_finish_iterations() steps run on the fp32 model.
ActMaxResult activation_maximization(const Model& model, const ActMaxRequest& req) {
  torch::AutoGradMode grad_on(true);  // the loop differentiates, whatever the caller's mode
  const LayerInfo& layer = model.layer(req.layer);
  const ActMaxSettings& s = req.settings;
  const Regularizers regs = make_regularizers(s);
  const int64_t B = static_cast<int64_t>(req.units.size()), S = model.input_size();
  const ObjectivePtr base = req.custom_objective ? req.custom_objective : make_objective(req.objective, model, layer, req.units);
  // What the final activation, argmax flag and robustness read: the mapped unit (at its
  // term's position), or the objective itself when it reads no mapped unit.
  const ObjectiveTerm* mapped = req.custom_objective ? nullptr : req.objective.mapped_unit();
  UnitObjective unit(model, layer, req.units, req.objective.unit_kind());
  if (mapped && mapped->at && layer.spatial()) unit = unit.at(mapped->y, mapped->x);
  const bool reads_unit = req.custom_objective || mapped;
  ObjectivePtr objective = base;
  if (req.diversity > 0) {
    const LayerInfo& d = req.diversity_layer.empty() ? diversity_layer(model, layer) : model.layer(req.diversity_layer);
    if (d.index > layer.index)
      throw Error("diversity_layer", d.alias + " comes after " + layer.alias + ": the penalty reads a layer on the way to it");
    objective = objective + req.diversity * diversity_objective(d, req.units);
  }
  // Layers other than the mapped one the objective reads (diversity's): the whole forward.
  const std::vector<int> reads = objective->layers(), base_reads = base->layers();
  const auto reads_others = [&](const std::vector<int>& r) {
    return std::any_of(r.begin(), r.end(), [&](int i) { return i != layer.index; });
  };
  const bool other_layers = reads_others(reads), base_other_layers = reads_others(base_reads);
  // The iterations under the diversity penalty (the first ones); the rest ascend the base alone.
  const int diverse_until = req.diversity > 0 ? static_cast<int>(std::lround(req.diversity_until * s.iterations)) : s.iterations;

  std::optional<Model::InputWindow> win;
  if (req.crop_to_receptive_field && layer.spatial())
    if (const auto p = objective->position()) win = model.input_window(layer.index, p->y, p->x);
  const ObjectivePtr seen_objective = win ? objective->moved({win->oy, win->ox}) : objective;
  const UnitObjective seen_unit = win ? unit.at(win->oy, win->ox) : unit;
  const ObjectivePtr seen_base = win ? base->moved({win->oy, win->ox}) : base;

  auto gen = at::detail::createCPUGenerator(req.seed);
  ParameterizationPtr param = make_parameterization(ParamContext{&model, B, &s, &gen, req.maco_magnitude});
  const TransformContext tc{S, B, s.iterations, req.seed, model.device()};
  Transforms transforms(make_transforms(s, tc, req.transform_order), tc, win.value_or(Model::InputWindow{0, S, 0, S}), s.background);
  Ascent ascent(s);
  const int finish = fp32_finish_iterations(model, req);
  const Model* net = &model;
  torch::Tensor trace = torch::empty({s.iterations, B}, torch::TensorOptions().dtype(torch::kFloat).device(model.device()));
  for (int it = 0; it < s.iterations; ++it) {
    if (it == s.iterations - finish) net = req.fp32_model;
    transforms.draw(it);
    const auto [r0, r1] = param->renders_rows() ? transforms.rows_read() : std::pair<int64_t, int64_t>{0, S};
    const Rendered x = param->render(r0, r1, transforms.reads_band() && param->renders_band());
    const torch::Tensor seen = transforms.apply(x.images, x.row0);
    const bool diverse = it < diverse_until;
    const ObjectivePtr& o = diverse ? seen_objective : seen_base;
    auto obj = (diverse ? other_layers : base_other_layers)
                   ? o->evaluate_outputs(outputs(*net, seen, layer.index, diverse ? reads : base_reads))
                   : o->evaluate(win ? net->forward_crop(seen, layer.index) : net->forward(seen, layer.index));
    param->ascend(obj.sum(), x, ascent, regs, it);
    torch::NoGradGuard ng;
    trace[it].copy_(obj.detach());
  }

  ActMaxResult res;
  torch::NoGradGuard ng;
  const torch::Tensor c = param->pixels();
  res.images = PixelFrame(model).to_image(c).clamp(0.0, 1.0);
  // The final activation, the argmax flag and robustness are the units': read at their
  // position only, on the crop too (every unit at that position shares the receptive field).
  // After an fp32 finish, in fp32.
  const Model& last = finish > 0 ? *req.fp32_model : model;
  auto final_forward = [&](const torch::Tensor& x) {
    return win ? last.forward_crop(x.slice(2, win->y0, win->y1).slice(3, win->x0, win->x1), layer.index)
               : last.forward(x, layer.index);
  };
  // One batched forward pass for the final images and, for robustness, their shifted copies
  // (none with a shift of 0: an image is its own unshifted copy, robustness 1).
  const bool shift = req.robustness_shift > 0;
  auto all = final_forward(shift ? torch::cat({res.images, shifted_copies(res.images, req.robustness_shift, req.seed)})
                                 : res.images);
  auto act = all.slice(0, 0, B);
  const auto value = [&](const torch::Tensor& a) { return reads_unit ? seen_unit.evaluate(a) : seen_base->evaluate(a); };
  res.final_activation = value(act);
  res.is_argmax = seen_unit.is_argmax(act);
  res.objective_trace = trace;
  // One check at the end keeps host-device synchronization out of the loop; NaN anywhere
  // in the loop propagates to the final image or the trace.
  if (!torch::isfinite(trace).all().item<bool>() || !torch::isfinite(res.final_activation).all().item<bool>() ||
      !torch::isfinite(c).all().item<bool>())
    throw NumericalError("actmax", "NaN or Inf during optimization of " + layer.alias + " (setting " + s.name +
                                        "; try a smaller lr)");
  res.hf_energy = high_frequency_energy(res.images);
  res.total_variation = total_variation(res.images);
  res.saturation = saturated_fraction(res.images);
  res.robustness = robustness_ratio(res.final_activation,
                                    shift ? value(all.slice(0, B, 2 * B)) : res.final_activation);
  res.objective = objective->description();
  for (const auto& r : regs) res.regularizers += (res.regularizers.empty() ? "" : "+") + r->description();
  if (res.regularizers.empty()) res.regularizers = "none";
  return res;
}

}  // namespace vizsweep::kernels
