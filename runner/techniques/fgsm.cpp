// FGSM, iterative FGSM, PGD, MI-FGSM and APGD: a task attacks a batch of images, one row per
// step (kernels/attacks.h).
#include <limits>

#include "kernels/attacks.h"
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
  torch::Tensor clean_logits, clean_pred;
  {
    torch::NoGradGuard ng;
    clean_logits = m.logits(x).cpu();
    clean_pred = clean_logits.argmax(1);
  }
  // Unknown labels (image files): the model's own prediction on the clean image.
  std::vector<int64_t> truth(labels.size());
  for (size_t b = 0; b < labels.size(); ++b) truth[b] = labels[b] >= 0 ? labels[b] : clean_pred[static_cast<int64_t>(b)].item<int64_t>();
  const auto& st = sec.settings.at(static_cast<size_t>(task.setting));
  auto y = torch::tensor(truth);
  const int64_t K = m.info().num_classes;
  if (st.targeted) {
    switch (st.target_mode) {
      case k::TargetMode::Offset: y = (y + sec.target_offset) % K; break;
      case k::TargetMode::Random:
        for (size_t b = 0; b < truth.size(); ++b) y[static_cast<int64_t>(b)] = k::random_target(st.seed, task.items[b], truth[b], K);
        break;
      case k::TargetMode::LeastLikely:  // the lowest clean logit among the other classes
        y = clean_logits.scatter(1, y.view({-1, 1}), std::numeric_limits<float>::infinity()).argmin(1);
        break;
      case k::TargetMode::All: break;  // every other class in turn, inside the attack
    }
  }
  const bool per_run_target = st.attack == k::Attack::ApgdDlr || (st.targeted && st.target_mode == k::TargetMode::All);
  auto r = k::attack(m, x, y, task.items, st);
  nlohmann::json rows;
  auto& out = rows["fgsm_results"] = nlohmann::json::array();
  auto& steps = rows["fgsm_steps"] = nlohmann::json::array();
  auto pred = r.pred.cpu(), pp = r.pred_prob.cpu(), lp = r.label_prob.cpu(), loss = r.loss.cpu(), probs = r.probs.cpu();
  auto margin = r.margin.cpu(), eta = r.eta.cpu(), run_of = r.run.cpu(), target_of = r.target.cpu();
  auto broken = r.broken.cpu();
  for (size_t b = 0; b < task.items.size(); ++b) {
    const int64_t bi = static_cast<int64_t>(b);
    std::string name = "adversarial_" + std::to_string(task.items[b]);
    data.images.push_back(blob(name, r.adversarial[bi]));
    data.images.push_back(blob("clean_" + std::to_string(task.items[b]), x[bi]));
    int64_t final_pred = pred[st.steps][bi].item<int64_t>();
    // The label changed (targeted: the target reached) by the image returned.
    const bool success = broken[bi].item<bool>();
    out.push_back({{"image_id", task.items[b]},
                   {"true_label", truth[b]},
                   {"target", per_run_target ? nlohmann::json(target_of[bi].item<int64_t>())
                              : st.targeted  ? nlohmann::json(y[bi].item<int64_t>())
                                             : nlohmann::json(nullptr)},
                   {"run", run_of[bi].item<int64_t>()},
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
                       {"loss", loss[s][bi].item<double>()},
                       {"margin", margin[s][bi].item<double>()},
                       {"eta", eta[s][bi].item<double>()}});
  }
  data.attributes["step_size"] = k::format_number(r.step_size);
  data.ints = {ints("image_ids", torch::tensor(task.items)), ints("labels", y), ints("pred", r.pred)};
  data.floats = {floats("pred_prob", r.pred_prob), floats("label_prob", r.label_prob), floats("loss", r.loss),
                 floats("perturbation", r.adversarial - x), floats("margin", r.margin), floats("eta", r.eta)};
  if (st.attack == k::Attack::ApgdCe || st.attack == k::Attack::ApgdDlr) data.floats.push_back(floats("best_loss_perturbation", r.best_loss - x));
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE(fgsm, run, {{"fgsm_results", true}, {"fgsm_steps", false}})

}  // namespace vizsweep::runner
