// Feature maps: a task stores one image's activations at the section's layers
// (kernels/featuremaps.h).
#include "kernels/featuremaps.h"
#include "runner/results_dir.h"
#include "runner/run_context.h"
#include "sweeps/techniques/featuremaps.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {

nlohmann::json run(RunContext& ctx, const sweeps::Section& section, const sweeps::Task& task, TaskData& data) {
  const auto& sec = static_cast<const sweeps::FeaturemapsSection&>(section);
  std::vector<int64_t> labels;
  auto x = ctx.images(sec.images, task.items, labels);
  std::vector<std::string> names;
  for (const auto& l : sec.layers) names.push_back(l.name);
  auto maps = k::feature_maps(ctx.model(), x, names);
  nlohmann::json rows;
  auto& out = rows["featuremap_results"] = nlohmann::json::array();
  data.images.push_back(blob("input", x[0]));
  for (const auto& fm : maps) {
    data.floats.push_back(floats(fm.layer.alias, fm.activations[0]));
    out.push_back({{"image_id", task.items[0]}, {"layer", fm.layer.alias}, {"dataset", ResultsDir::dataset(task.key, fm.layer.alias)}});
  }
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE(featuremaps, run, {{"featuremap_results", true}})

}  // namespace vizsweep::runner
