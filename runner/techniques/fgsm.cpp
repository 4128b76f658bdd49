// FGSM and iterative FGSM: a task attacks a batch of images, one row per step (kernels/fgsm.h).
#include "kernels/fgsm.h"
#include "kernels/settings.h"
#include "runner/results_dir.h"
#include "runner/run_context.h"
#include "sweeps/techniques/fgsm.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {

nlohmann::json run(RunContext& ctx, const sweeps::Section& section, const sweeps::Task& task, TaskData& data) {
  const auto& sec = static_cast<const sweeps::FgsmSection&>(section);
  const auto& m = ctx.model();
  std::vector<int64_t> labels;
  auto x = ctx.images(sec.images, task.items, labels);
  torch::Tensor clean_pred;
  {
    torch::NoGradGuard ng;
    clean_pred = m.logits(x).argmax(1).cpu();
  }
  // Unknown labels (image files): the model's own prediction on the clean image.
  std::vector<int64_t> truth(labels.size());
  for (size_t b = 0; b < labels.size(); ++b) truth[b] = labels[b] >= 0 ? labels[b] : clean_pred[static_cast<int64_t>(b)].item<int64_t>();
  const auto& st = sec.settings.at(static_cast<size_t>(task.setting));
  auto y = torch::tensor(truth);
  if (st.targeted) y = (y + sec.target_offset) % m.info().num_classes;
  auto r = k::fgsm(m, x, y, st);
  nlohmann::json rows;
  auto& out = rows["fgsm_results"] = nlohmann::json::array();
  auto& steps = rows["fgsm_steps"] = nlohmann::json::array();
  auto pred = r.pred.cpu(), pp = r.pred_prob.cpu(), lp = r.label_prob.cpu(), loss = r.loss.cpu(), probs = r.probs.cpu();
  for (size_t b = 0; b < task.items.size(); ++b) {
    const int64_t bi = static_cast<int64_t>(b);
    std::string name = "adversarial_" + std::to_string(task.items[b]);
    data.images.push_back(blob(name, r.adversarial[bi]));
    data.images.push_back(blob("clean_" + std::to_string(task.items[b]), x[bi]));
    int64_t final_pred = pred[st.steps][bi].item<int64_t>();
    bool success = st.targeted ? final_pred == y[bi].item<int64_t>() : final_pred != truth[b];
    out.push_back({{"image_id", task.items[b]},
                   {"true_label", truth[b]},
                   {"target", st.targeted ? nlohmann::json(y[bi].item<int64_t>()) : nlohmann::json(nullptr)},
                   {"clean_pred", clean_pred[bi].item<int64_t>()},
                   {"final_pred", final_pred},
                   {"success", success ? 1 : 0},
                   {"dataset", ResultsDir::dataset(task.key, name)}});
    for (int s = 0; s <= st.steps; ++s)
      steps.push_back({{"image_id", task.items[b]},
                       {"step", s},
                       {"pred", pred[s][bi].item<int64_t>()},
                       {"pred_prob", pp[s][bi].item<double>()},
                       {"label_prob", lp[s][bi].item<double>()},
                       {"final_prob", probs[s][bi][final_pred].item<double>()},
                       {"loss", loss[s][bi].item<double>()}});
  }
  data.attributes["step_size"] = k::format_number(r.step_size);
  data.ints = {ints("image_ids", torch::tensor(task.items)), ints("labels", y), ints("pred", r.pred)};
  data.floats = {floats("pred_prob", r.pred_prob), floats("label_prob", r.label_prob), floats("loss", r.loss),
                 floats("perturbation", r.adversarial - x)};
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE(fgsm, run, {{"fgsm_results", true}, {"fgsm_steps", false}})

}  // namespace vizsweep::runner
