// Activation maximization: a task optimizes one image per unit (kernels/actmax.h).
#include <algorithm>
#include <map>

#include "runner/techniques/actmax.h"

#include "kernels/classifier.h"
#include "kernels/error.h"
#include "runner/results_dir.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {

// MACO's magnitude from the section's spectrum images, once per engine and model size.
torch::Tensor maco_magnitude(RunContext& ctx, const sweeps::ActmaxSection& sec) {
  static std::map<std::string, torch::Tensor> cache;
  const std::string key = sec.spectrum_hash + "@" + std::to_string(ctx.model().input_size());
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::vector<int64_t> idx(sec.spectrum.size()), labels;
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  torch::Tensor sum;
  for (size_t b = 0; b < idx.size(); b += 256) {  // in batches: a dataset's worth stays small
    std::vector<int64_t> part(idx.begin() + static_cast<long>(b), idx.begin() + static_cast<long>(std::min(idx.size(), b + 256)));
    auto m = k::spectrum_magnitude(ctx.images(sec.spectrum, part, labels).to(torch::kCPU)) * static_cast<double>(part.size());
    sum = sum.defined() ? sum + m : m;
  }
  return cache[key] = (sum / static_cast<double>(idx.size())).to(ctx.model().device());
}

}  // namespace

k::ActMaxRequest actmax_request(RunContext& ctx, const sweeps::ActmaxSection& sec, const sweeps::Task& task) {
  k::ActMaxRequest req;
  req.layer = task.layer;
  // Under diversity N, each unit's N images are one group of the batch.
  for (int64_t u : task.items) req.units.insert(req.units.end(), static_cast<size_t>(sec.diversity), u);
  req.objective = sec.objective;
  req.transform_order = sec.transform_order;
  req.settings = sec.settings.at(static_cast<size_t>(task.setting));
  if (sec.diversity > 1) {
    req.diversity = req.settings.diversity_weight, req.diversity_layer = sec.diversity_layer.name;
    req.diversity_until = k::extra_param(req.settings, "diversity_until");
  }
  if (req.settings.param == k::ImageParam::Maco && !sec.spectrum.empty()) req.maco_magnitude = maco_magnitude(ctx, sec);
  req.seed = task.seed;
  req.fp32_model = ctx.fp32_model();
  req.fp32_finish = ctx.fp32_finish();
  return req;
}

namespace {

void prepare(RunContext& ctx, const sweeps::Section& section) {
  const auto& sec = static_cast<const sweeps::ActmaxSection&>(section);
  if (sec.judge.empty()) return;
  const auto& judge = ctx.classifier(sec.judge, "actmax.judge").info();
  const auto& model = ctx.model().info();
  if (judge.num_classes != model.num_classes || judge.in_channels != model.in_channels)
    throw Error("actmax.judge", sec.judge + " takes " + std::to_string(judge.in_channels) + " channels to " +
                                    std::to_string(judge.num_classes) + " classes; the model " +
                                    std::to_string(model.in_channels) + " to " + std::to_string(model.num_classes));
}

nlohmann::json run(RunContext& ctx, const sweeps::Section& section, const sweeps::Task& task, TaskData& data) {
  const auto& sec = static_cast<const sweeps::ActmaxSection&>(section);
  const k::ActMaxRequest req = actmax_request(ctx, sec, task);
  auto r = k::activation_maximization(ctx.model(), req);
  // The judge sees the image as stored (8 bits per channel).
  const bool judged = !sec.judge.empty() && task.layer == ctx.model().layers().back().alias;
  torch::Tensor probs;
  if (judged) {
    auto stored = r.images.detach().to(torch::kCPU).mul(255.0).round().div(255.0);
    probs = ctx.classifier(sec.judge, "actmax.judge").probabilities(stored);
  }
  data.attributes["objective"] = r.objective;
  data.attributes["regularizers"] = r.regularizers;
  data.attributes["setting"] = req.settings.name;
  nlohmann::json rows;
  auto& out = rows["actmax_results"] = nlohmann::json::array();
  std::vector<int64_t> copies;
  for (size_t b = 0; b < req.units.size(); ++b) {
    const int64_t unit = req.units[b], copy = static_cast<int64_t>(b) % sec.diversity;
    copies.push_back(copy);
    std::string name = "unit_" + std::to_string(unit) + (copy > 0 ? "_" + std::to_string(copy) : "");
    data.images.push_back(blob(name, r.images[static_cast<int64_t>(b)]));
    // The score is the index's to compute (results_schema.sql, actmax_results.score).
    nlohmann::json row = {{"unit", unit},
                          {"final_activation", r.final_activation[b].item<double>()},
                          {"hf_energy", r.hf_energy[b].item<double>()},
                          {"total_variation", r.total_variation[b].item<double>()},
                          {"saturation", r.saturation[b].item<double>()},
                          {"robustness", r.robustness[b].item<double>()},
                          {"is_argmax", r.is_argmax[b].item<bool>() ? 1 : 0},
                          {"dataset", ResultsDir::dataset(task.key, name)}};
    if (sec.diversity > 1) row["copy"] = copy;
    if (judged) {
      const auto i = static_cast<int64_t>(b);
      row["judge_prob"] = probs[i][unit].item<double>();
      row["judge_class"] = probs[i].argmax().item<int64_t>();
    }
    out.push_back(std::move(row));
  }
  data.ints = {ints("units", torch::tensor(req.units)), ints("is_argmax", r.is_argmax)};
  if (sec.diversity > 1) data.ints.push_back(ints("copies", torch::tensor(copies)));
  data.floats = {floats("objective_trace", r.objective_trace), floats("final_activation", r.final_activation),
                 floats("hf_energy", r.hf_energy), floats("total_variation", r.total_variation),
                 floats("saturation", r.saturation), floats("robustness", r.robustness)};
  if (judged) data.floats.push_back(floats("judge_probabilities", probs));
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE_PREPARED(actmax, run, prepare, {{"actmax_results", true}})

}  // namespace vizsweep::runner
