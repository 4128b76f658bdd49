#include "sweeps/techniques/fgsm.h"

#include <algorithm>

#include "sweeps/reader.h"

namespace vizsweep::sweeps {

SettingsRows FgsmSection::settings_rows() const {
  SettingsRows out{"fgsm_settings", {}};
  for (size_t i = 0; i < settings.size(); ++i) {
    auto st = settings[i];
    st.step_size = kernels::effective_step_size(st);  // the step the run takes, when left to eps / steps
    out.rows.push_back({setting_names[i], kernels::params_of(st)});
  }
  return out;
}

namespace {

// Each item of `n` (one value or a list) read as the choice hyperparameter `param` declares it;
// an unknown value names fgsm.<param> and the valid ones.
std::vector<kernels::FgsmSettings> choices(const Reader& r, const YAML::Node& n, const std::string& param) {
  std::vector<kernels::FgsmSettings> out;
  for (const auto& e : r.items(n, "fgsm." + param)) {
    kernels::FgsmSettings probe;
    try {
      kernels::set_param(probe, param, r.str(e, "fgsm." + param));
    } catch (const Error& err) {
      r.fail(e, "fgsm." + param, err.reason_only());
    }
    out.push_back(probe);
  }
  return out;
}

std::shared_ptr<const Section> parse_section(const Reader& r, const YAML::Node& a) {
  auto s = std::make_shared<FgsmSection>();
  s->images = parse_images(r, a["images"], "fgsm.images");
  if (a["images_per_batch"]) s->images_per_batch = r.integer(a["images_per_batch"], "fgsm.images_per_batch", 1, 65536);
  if (!a["eps"]) r.fail(a, "fgsm.eps", "missing: one eps or a list");
  std::vector<kernels::AttackNorm> norms = {kernels::AttackNorm::Linf};
  if (a["norm"]) {
    norms.clear();
    for (const auto& p : choices(r, a["norm"], "norm")) norms.push_back(p.norm);
  }
  // With both norms listed, an eps above 1 is an L2 budget only (the linf settings skip it).
  const bool has_l2 = std::find(norms.begin(), norms.end(), kernels::AttackNorm::L2) != norms.end();
  std::vector<double> eps;
  for (const auto& e : r.items(a["eps"], "fgsm.eps")) {
    double v = r.number(e, "fgsm.eps");
    if (!(v >= 0)) r.fail(e, "fgsm.eps", "must be >= 0 (pixel space), got " + e.Scalar());
    if (!has_l2 && v > 1) r.fail(e, "fgsm.eps", "must be in [0, 1] for an L-inf attack (pixel space), got " + e.Scalar());
    eps.push_back(v);
  }
  std::vector<kernels::Attack> attacks = {kernels::Attack::Fgsm};
  if (a["attack"]) {
    s->attack_line = a["attack"].Mark().line + 1;
    attacks.clear();
    for (const auto& p : choices(r, a["attack"], "attack")) attacks.push_back(p.attack);
  }
  std::vector<kernels::TargetMode> modes = {kernels::TargetMode::Offset};
  if (a["target_mode"]) {
    modes.clear();
    for (const auto& p : choices(r, a["target_mode"], "target_mode")) modes.push_back(p.target_mode);
  }
  int restarts = a["restarts"] ? static_cast<int>(r.integer(a["restarts"], "fgsm.restarts", 1, 10000)) : 1;
  double momentum = a["momentum"] ? r.number(a["momentum"], "fgsm.momentum") : 1.0;
  int seed = a["seed"] ? static_cast<int>(r.integer(a["seed"], "fgsm.seed", 0, 2000000000)) : 0;
  std::vector<int64_t> steps = {1};
  if (a["steps"]) {
    steps.clear();
    for (const auto& e : r.items(a["steps"], "fgsm.steps")) steps.push_back(r.integer(e, "fgsm.steps", 1, 100000));
  }
  double step_size = a["step_size"] ? r.number(a["step_size"], "fgsm.step_size") : 0.0;
  std::vector<bool> targeted = {false};
  if (a["targeted"]) {
    s->targeted_line = a["targeted"].Mark().line + 1;
    targeted.clear();
    for (const auto& e : r.items(a["targeted"], "fgsm.targeted")) targeted.push_back(r.boolean(e, "fgsm.targeted"));
  }
  if (a["target_offset"]) s->target_offset = r.integer(a["target_offset"], "fgsm.target_offset", 1, 1000000);
  if (a["target_mode"] && std::find(targeted.begin(), targeted.end(), true) == targeted.end())
    r.fail(a["target_mode"], "fgsm.target_mode", "chooses a targeted attack's target: add targeted: true");
  for (kernels::Attack at : attacks)
    for (kernels::AttackNorm nm : norms)
      for (bool t : targeted)
        for (kernels::TargetMode tm : t ? modes : std::vector<kernels::TargetMode>{kernels::TargetMode::Offset})
          for (double e : eps)
            for (int64_t st : steps) {
            kernels::FgsmSettings fs_;
            fs_.eps = e, fs_.steps = static_cast<int>(st), fs_.step_size = step_size, fs_.targeted = t;
            fs_.target_mode = tm;
            fs_.attack = at, fs_.norm = nm, fs_.momentum = momentum, fs_.seed = seed;
            // One run for the attacks that start from the image itself: restarts apply to the
            // random starts (pgd, apgd-*).
            const bool random = at == kernels::Attack::Pgd || at == kernels::Attack::ApgdCe || at == kernels::Attack::ApgdDlr;
            fs_.restarts = random ? restarts : 1;
            if (nm == kernels::AttackNorm::Linf && e > 1) continue;  // an L2-only budget, listed with linf
            try {
              kernels::validate(fs_);
            } catch (const Error& err) {
              r.fail(a, "fgsm." + err.where(), err.reason_only());
            }
            s->settings.push_back(fs_);
            std::string name;
            if (at != kernels::Attack::Fgsm) name += std::string(kernels::attack_name(at)) + "-";
            if (nm == kernels::AttackNorm::L2) name += "l2-";
            if (t) name += "targeted-";
            static const char* const mode_names[] = {"offset", "random", "least_likely", "all"};
            if (tm != kernels::TargetMode::Offset) name += std::string(mode_names[static_cast<int>(tm)]) + "-";
            name += "eps" + kernels::format_number(e) + "-steps" + std::to_string(st);
            if (fs_.restarts > 1) name += "-restarts" + std::to_string(fs_.restarts);
            s->setting_names.push_back(name);
          }
  return s;
}

void expand_section(const Section& section, Expansion& x) {
  const auto& a = static_cast<const FgsmSection&>(section);
  const int64_t K = x.model.num_classes;
  for (const auto& st : a.settings) {
    if (st.attack == kernels::Attack::ApgdDlr && K < 4)
      x.reader.fail_at(a.attack_line, "fgsm.attack",
                       "apgd-dlr's loss needs at least 4 classes; the model has " + std::to_string(K));
    if (st.targeted && K < 2)
      x.reader.fail_at(a.targeted_line, "fgsm.targeted",
                       "a targeted attack needs another class to aim at; the model has " + std::to_string(K));
  }
  const size_t per_task = x.fit(a.images_per_batch, x.total_bytes);
  for (size_t s = 0; s < a.settings.size(); ++s) {
    std::string sc = kernels::canonical(kernels::key_params(a.settings[s]));
    for (size_t b = 0; b < a.images.size(); b += per_task) {
      Task t;
      t.technique = "fgsm";
      t.layer = "*";
      for (size_t i = b; i < std::min(a.images.size(), b + per_task); ++i) t.items.push_back(static_cast<int64_t>(i));
      t.setting = static_cast<int>(s);
      // Every run at most (restarts, and targets under apgd-dlr or target_mode all): a later run
      // attacks only the images no earlier one broke, so this is the worst case.
      const auto& st = a.settings[s];
      const bool every_target = st.targeted && st.target_mode == kernels::TargetMode::All;
      const int64_t targets = st.attack == kernels::Attack::ApgdDlr ? std::min<int64_t>(9, K - 1) : every_target ? K - 1 : 1;
      const double runs = static_cast<double>(st.restarts * std::max<int64_t>(1, targets));
      t.cost = 3.0 * (st.steps + 1) * runs * static_cast<double>(t.items.size()) * x.total_flops;
      t.memory = static_cast<double>(t.items.size()) * x.total_bytes;
      t.canonical = "fgsm|" + x.head + "|images=" + image_ids(a.images, t.items) + "|" + sc +
                    "|target_offset=" + std::to_string(a.target_offset);
      x.add(std::move(t));
    }
  }
}

}  // namespace

const SweepTechnique& sweep_technique_fgsm() {
  static const SweepTechnique t{"fgsm",
                                30,
                                {"images", "images_per_batch", "eps", "steps", "step_size", "targeted", "target_offset",
                                 "attack", "norm", "restarts", "momentum", "seed", "target_mode"},
                                "images",
                                &kernels::fgsm_params(),
                                "fgsm.attack, fgsm.norm, fgsm.eps, fgsm.steps, fgsm.targeted (lists: every combination "
                                "runs); fgsm.target_mode (a list, for targeted attacks), fgsm.step_size, fgsm.restarts, "
                                "fgsm.momentum, fgsm.seed",
                                "fgsm_settings",
                                parse_section,
                                expand_section};
  return t;
}

}  // namespace vizsweep::sweeps
