// Activation maximization: a task optimizes one image per unit (kernels/actmax.h).
#include "kernels/actmax.h"
#include "runner/results_dir.h"
#include "runner/run_context.h"
#include "sweeps/techniques/actmax.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {

nlohmann::json run(RunContext& ctx, const sweeps::Section& section, const sweeps::Task& task, TaskData& data) {
  const auto& sec = static_cast<const sweeps::ActmaxSection&>(section);
  k::ActMaxRequest req;
  req.layer = task.layer;
  req.units = task.items;
  req.objective = sec.objective;
  req.settings = sec.settings.at(static_cast<size_t>(task.setting));
  req.seed = task.seed;
  auto r = k::activation_maximization(ctx.model(), req);
  data.attributes["objective"] = r.objective;
  data.attributes["regularizers"] = r.regularizers;
  data.attributes["setting"] = req.settings.name;
  nlohmann::json rows;
  auto& out = rows["actmax_results"] = nlohmann::json::array();
  for (size_t b = 0; b < task.items.size(); ++b) {
    std::string name = "unit_" + std::to_string(task.items[b]);
    data.images.push_back(blob(name, r.images[static_cast<int64_t>(b)]));
    out.push_back({{"unit", task.items[b]},
                   {"final_activation", r.final_activation[b].item<double>()},
                   {"hf_energy", r.hf_energy[b].item<double>()},
                   {"total_variation", r.total_variation[b].item<double>()},
                   {"saturation", r.saturation[b].item<double>()},
                   {"robustness", r.robustness[b].item<double>()},
                   {"is_argmax", r.is_argmax[b].item<bool>() ? 1 : 0},
                   {"dataset", ResultsDir::dataset(task.key, name)}});
  }
  data.ints = {ints("units", torch::tensor(task.items)), ints("is_argmax", r.is_argmax)};
  data.floats = {floats("objective_trace", r.objective_trace), floats("final_activation", r.final_activation),
                 floats("hf_energy", r.hf_energy), floats("total_variation", r.total_variation),
                 floats("saturation", r.saturation), floats("robustness", r.robustness)};
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE(actmax, run, {{"actmax_results", true}})

}  // namespace vizsweep::runner
