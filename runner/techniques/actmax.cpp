// Activation maximization: a task optimizes one image per unit (kernels/actmax.h).
#include <algorithm>

#include "runner/techniques/actmax.h"

#include "kernels/classifier.h"
#include "kernels/error.h"
#include "runner/results_dir.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

k::ActMaxRequest actmax_request(const RunContext& ctx, const sweeps::ActmaxSection& sec, const sweeps::Task& task) {
  k::ActMaxRequest req;
  req.layer = task.layer;
  req.units = task.items;
  req.objective = sec.objective;
  req.settings = sec.settings.at(static_cast<size_t>(task.setting));
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
  for (size_t b = 0; b < task.items.size(); ++b) {
    std::string name = "unit_" + std::to_string(task.items[b]);
    data.images.push_back(blob(name, r.images[static_cast<int64_t>(b)]));
    // The score is the index's to compute (results_schema.sql, actmax_results.score).
    nlohmann::json row = {{"unit", task.items[b]},
                          {"final_activation", r.final_activation[b].item<double>()},
                          {"hf_energy", r.hf_energy[b].item<double>()},
                          {"total_variation", r.total_variation[b].item<double>()},
                          {"saturation", r.saturation[b].item<double>()},
                          {"robustness", r.robustness[b].item<double>()},
                          {"is_argmax", r.is_argmax[b].item<bool>() ? 1 : 0},
                          {"dataset", ResultsDir::dataset(task.key, name)}};
    if (judged) {
      const auto i = static_cast<int64_t>(b);
      row["judge_prob"] = probs[i][task.items[b]].item<double>();
      row["judge_class"] = probs[i].argmax().item<int64_t>();
    }
    out.push_back(std::move(row));
  }
  data.ints = {ints("units", torch::tensor(task.items)), ints("is_argmax", r.is_argmax)};
  data.floats = {floats("objective_trace", r.objective_trace), floats("final_activation", r.final_activation),
                 floats("hf_energy", r.hf_energy), floats("total_variation", r.total_variation),
                 floats("saturation", r.saturation), floats("robustness", r.robustness)};
  if (judged) data.floats.push_back(floats("judge_probabilities", probs));
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE_PREPARED(actmax, run, prepare, {{"actmax_results", true}})

}  // namespace vizsweep::runner
