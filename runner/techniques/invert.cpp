// Inversion: a task reconstructs a batch of images from one layer's code (kernels/inversion.h).
#include "kernels/image.h"
#include "kernels/inversion.h"
#include "runner/results_dir.h"
#include "runner/run_context.h"
#include "sweeps/techniques/invert.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {

nlohmann::json run(RunContext& ctx, const sweeps::Section& section, const sweeps::Task& task, TaskData& data) {
  const auto& sec = static_cast<const sweeps::InvertSection&>(section);
  std::vector<int64_t> labels;
  auto x = ctx.images(sec.images, task.items, labels);
  const auto& st = sec.settings.at(static_cast<size_t>(task.setting));
  auto r = k::invert(ctx.model(), task.layer, x, st, task.seed);
  data.attributes["setting"] = st.name;
  data.attributes["l_tv"] = k::format_number(r.l_tv);
  nlohmann::json rows;
  auto& out = rows["invert_results"] = nlohmann::json::array();
  for (size_t b = 0; b < task.items.size(); ++b) {
    std::string name = "image_" + std::to_string(task.items[b]);
    data.images.push_back(blob(name, r.images[static_cast<int64_t>(b)]));
    data.images.push_back(blob("target_" + std::to_string(task.items[b]), x[static_cast<int64_t>(b)]));
    out.push_back({{"image_id", task.items[b]},
                   {"rep_error", r.rep_error[b].item<double>()},
                   {"hf_energy", r.hf_energy[b].item<double>()},
                   {"dataset", ResultsDir::dataset(task.key, name)}});
  }
  data.ints = {ints("image_ids", torch::tensor(task.items))};
  data.floats = {floats("loss_trace", r.loss_trace), floats("rep_error", r.rep_error)};
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE(invert, run, {{"invert_results", true}})

}  // namespace vizsweep::runner
