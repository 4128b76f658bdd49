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

std::shared_ptr<const Section> parse_section(const Reader& r, const YAML::Node& a) {
  auto s = std::make_shared<FgsmSection>();
  s->images = parse_images(r, a["images"], "fgsm.images");
  if (a["images_per_batch"]) s->images_per_batch = r.integer(a["images_per_batch"], "fgsm.images_per_batch", 1, 65536);
  if (!a["eps"]) r.fail(a, "fgsm.eps", "missing: one eps or a list");
  std::vector<double> eps;
  for (const auto& e : r.items(a["eps"], "fgsm.eps")) {
    double v = r.number(e, "fgsm.eps");
    if (!(v >= 0 && v <= 1)) r.fail(e, "fgsm.eps", "must be in [0, 1] (pixel space), got " + e.Scalar());
    eps.push_back(v);
  }
  std::vector<int64_t> steps = {1};
  if (a["steps"]) {
    steps.clear();
    for (const auto& e : r.items(a["steps"], "fgsm.steps")) steps.push_back(r.integer(e, "fgsm.steps", 1, 100000));
  }
  double step_size = a["step_size"] ? r.number(a["step_size"], "fgsm.step_size") : 0.0;
  std::vector<bool> targeted = {false};
  if (a["targeted"]) {
    targeted.clear();
    for (const auto& e : r.items(a["targeted"], "fgsm.targeted")) targeted.push_back(r.boolean(e, "fgsm.targeted"));
  }
  if (a["target_offset"]) s->target_offset = r.integer(a["target_offset"], "fgsm.target_offset", 1, 1000000);
  for (bool t : targeted)
    for (double e : eps)
      for (int64_t st : steps) {
        kernels::FgsmSettings fs_;
        fs_.eps = e, fs_.steps = static_cast<int>(st), fs_.step_size = step_size, fs_.targeted = t;
        try {
          kernels::validate(fs_);
        } catch (const Error& err) {
          r.fail(a, "fgsm", err.what());
        }
        s->settings.push_back(fs_);
        s->setting_names.push_back(std::string(t ? "targeted-" : "") + "eps" + kernels::format_number(e) + "-steps" +
                                   std::to_string(st));
      }
  return s;
}

void expand_section(const Section& section, Expansion& x) {
  const auto& a = static_cast<const FgsmSection&>(section);
  const size_t per_task = x.fit(a.images_per_batch, x.total_bytes);
  for (size_t s = 0; s < a.settings.size(); ++s) {
    std::string sc = kernels::canonical(kernels::key_params(a.settings[s]));
    for (size_t b = 0; b < a.images.size(); b += per_task) {
      Task t;
      t.technique = "fgsm";
      t.layer = "*";
      for (size_t i = b; i < std::min(a.images.size(), b + per_task); ++i) t.items.push_back(static_cast<int64_t>(i));
      t.setting = static_cast<int>(s);
      t.cost = 3.0 * (a.settings[s].steps + 1) * static_cast<double>(t.items.size()) * x.total_flops;
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
                                {"images", "images_per_batch", "eps", "steps", "step_size", "targeted", "target_offset"},
                                "images",
                                &kernels::fgsm_params(),
                                "fgsm.eps, fgsm.steps, fgsm.step_size, fgsm.targeted (lists: every combination runs)",
                                "fgsm_settings",
                                parse_section,
                                expand_section};
  return t;
}

}  // namespace vizsweep::sweeps
