#include "sweeps/techniques/featuremaps.h"

#include "sweeps/reader.h"

namespace vizsweep::sweeps {

namespace {

std::shared_ptr<const Section> parse_section(const Reader& r, const YAML::Node& a) {
  auto s = std::make_shared<FeaturemapsSection>();
  bool all = true;
  if (a["layers"]) s->layers = parse_layers(r, a["layers"], "featuremaps.layers", all);
  s->images = parse_images(r, a["images"], "featuremaps.images");
  return s;
}

void expand_section(const Section& section, Expansion& x) {
  const auto& a = static_cast<const FeaturemapsSection&>(section);
  auto layers = x.layers(a.layers, a.layers.empty(), false);
  std::string names;
  for (const auto* L : layers) names += (names.empty() ? "" : ",") + L->alias;
  for (size_t i = 0; i < a.images.size(); ++i) {
    Task t;
    t.technique = "featuremaps";
    t.layer = "*";
    t.items = {static_cast<int64_t>(i)};
    t.cost = x.total_flops;
    t.memory = x.total_bytes;
    t.canonical = "featuremaps|" + x.head + "|layers=" + names + "|images=" + a.images[i].id;
    x.add(std::move(t));
  }
}

}  // namespace

const SweepTechnique& sweep_technique_featuremaps() {
  static const SweepTechnique t{"featuremaps", 40, {"layers", "images"}, "images", nullptr, "", "", parse_section, expand_section};
  return t;
}

}  // namespace vizsweep::sweeps
