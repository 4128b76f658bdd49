#include "sweeps/techniques/invert.h"

#include <algorithm>

#include "sweeps/reader.h"

namespace vizsweep::sweeps {

SettingsRows InvertSection::settings_rows() const {
  SettingsRows out{"invert_settings", {}};
  for (const auto& s : settings) out.rows.push_back({s.name, kernels::params_of(s)});
  return out;
}

namespace {

std::shared_ptr<const Section> parse_section(const Reader& r, const YAML::Node& a) {
  auto s = std::make_shared<InvertSection>();
  if (!a["layers"]) r.fail(a, "invert.layers", "missing: list layers or say all");
  s->layers = parse_layers(r, a["layers"], "invert.layers", s->all_layers);
  s->images = parse_images(r, a["images"], "invert.images");
  if (a["images_per_batch"]) s->images_per_batch = r.integer(a["images_per_batch"], "invert.images_per_batch", 1, 65536);
  s->settings = parse_settings<kernels::InversionSettings>(r, a, "invert", kernels::inversion_params(), nullptr,
                                                           kernels::InversionSettings{});
  if (a["seeds"]) s->seeds = parse_seeds(r, a["seeds"], "invert.seeds");
  return s;
}

void expand_section(const Section& section, Expansion& x) {
  const auto& a = static_cast<const InvertSection&>(section);
  for (const LayerDesc* L : x.layers(a.layers, a.all_layers, true)) {
    const size_t per_task = x.fit(a.images_per_batch, L->bytes_per_item);
    for (size_t s = 0; s < a.settings.size(); ++s) {
      std::string sc = kernels::canonical(kernels::key_params(a.settings[s]));
      for (uint64_t seed : a.seeds)
        for (size_t b = 0; b < a.images.size(); b += per_task) {
          Task t;
          t.technique = "invert";
          t.layer = L->alias;
          for (size_t i = b; i < std::min(a.images.size(), b + per_task); ++i) t.items.push_back(static_cast<int64_t>(i));
          t.setting = static_cast<int>(s);
          t.user_seed = seed;
          t.cost = 3.0 * a.settings[s].iterations * static_cast<double>(t.items.size()) * L->flops_to_here;
          t.memory = static_cast<double>(t.items.size()) * L->bytes_per_item;
          t.canonical = "invert|" + x.head + "|layer=" + L->alias + "|images=" + image_ids(a.images, t.items) + "|" + sc +
                        "|seed=" + std::to_string(seed);
          x.add(std::move(t));
        }
    }
  }
}

}  // namespace

const SweepTechnique& sweep_technique_invert() {
  static const SweepTechnique t{"invert",
                                20,
                                {"layers", "images", "images_per_batch", "grid", "random", "seeds"},
                                "images",
                                &kernels::inversion_params(),
                                "invert.grid, invert.random",
                                "invert_settings",
                                parse_section,
                                expand_section};
  return t;
}

}  // namespace vizsweep::sweeps
