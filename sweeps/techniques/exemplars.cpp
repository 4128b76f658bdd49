#include "sweeps/techniques/exemplars.h"

#include <algorithm>
#include <filesystem>

#include "sweeps/hash.h"
#include "sweeps/reader.h"

namespace vizsweep::sweeps {

std::string ExemplarsSection::plan_note(const std::vector<Task>& tasks) const {
  int64_t shards = 0;
  for (const auto& t : tasks) shards += t.technique == "exemplars";
  std::string note = "exemplars: " + thousands(static_cast<int64_t>(images.size())) + " images in " + thousands(shards) +
                     " shards, top-" + std::to_string(k) + (bottom ? " and bottom-" + std::to_string(k) : "") +
                     " of every unit by its " + (position == "max" ? "maximum over positions" : "centre position");
  if (bottom) note += "; machine interpretability of the actmax images once all are done";
  if (skipped_files) note += "; " + thousands(skipped_files) + " non-image files in the folder skipped";
  return note;
}

namespace {

std::shared_ptr<const Section> parse_section(const Reader& r, const YAML::Node& a) {
  auto s = std::make_shared<ExemplarsSection>();
  if (!a["layers"]) r.fail(a, "exemplars.layers", "missing: list layers or say all");
  s->layers = parse_layers(r, a["layers"], "exemplars.layers", s->all_layers);
  if (a["units"]) s->units = parse_units(r, a["units"], "exemplars.units", s->units_line);
  s->images = parse_images(r, a["images"], "exemplars.images", &s->skipped_files);
  if (a["k"]) {
    s->k = r.integer(a["k"], "exemplars.k", 1, 1000);
    if (s->k > static_cast<int64_t>(s->images.size()))
      r.fail(a["k"], "exemplars.k", "must be at most the " + std::to_string(s->images.size()) + " images scanned, got " + a["k"].Scalar());
  }
  if (a["bottom"]) s->bottom = r.boolean(a["bottom"], "exemplars.bottom");
  if (a["position"]) {
    s->position = r.str(a["position"], "exemplars.position");
    if (s->position == "center") s->position = "centre";
    if (s->position != "max" && s->position != "centre")
      r.fail(a["position"], "exemplars.position", "unknown position '" + s->position + "' (valid: max, centre)");
  }
  if (a["batch"]) s->batch = r.integer(a["batch"], "exemplars.batch", 1, 65536);
  if (a["images_per_task"]) {
    s->images_per_task = r.integer(a["images_per_task"], "exemplars.images_per_task", 1, int64_t{1} << 40);
    // Every image's activations come from the same batch however the dataset is split into
    // tasks, so any split gives the single scan's lists exactly (kernels/exemplars.h).
    if (s->images_per_task % s->batch != 0)
      r.fail(a["images_per_task"], "exemplars.images_per_task",
             "must be a multiple of exemplars.batch (" + std::to_string(s->batch) + "), got " + a["images_per_task"].Scalar());
  } else {
    s->images_per_task = std::max<int64_t>(s->batch, s->images_per_task / s->batch * s->batch);
  }
  if (a["feature_model"]) {
    s->feature_model = r.path(r.str(a["feature_model"], "exemplars.feature_model"));
    std::error_code ec;
    if (!std::filesystem::is_regular_file(s->feature_model, ec))
      r.fail(a["feature_model"], "exemplars.feature_model", "no such model file: " + s->feature_model);
  }
  if (const auto& f = a["feature_layer"]) {
    if (f.IsMap()) {
      for (const auto& kv : f) {
        const std::string layer = r.str(kv.first, "exemplars.feature_layer");
        s->feature_layers.push_back({{layer, kv.first.Mark().line + 1, "exemplars.feature_layer." + layer},
                                     r.str(kv.second, "exemplars.feature_layer." + layer)});
      }
    } else {
      s->feature_layer = r.str(f, "exemplars.feature_layer");
    }
  }
  // A shard's list holds k images (the index's merge reads k from the lists).
  if (s->images_per_task < s->k)
    r.fail(a["images_per_task"] ? a["images_per_task"] : a["k"], "exemplars.images_per_task",
           "must be at least k (" + std::to_string(s->k) + "), got " + std::to_string(s->images_per_task));
  return s;
}

void expand_section(const Section& section, Expansion& x) {
  const auto& a = static_cast<const ExemplarsSection&>(section);
  const auto layers = x.layers(a.layers, a.all_layers, true);
  std::string names;
  const LayerDesc* deepest = layers.front();
  int64_t unit_count = 0;
  for (const auto* L : layers) {
    names += (names.empty() ? "" : ",") + L->alias;
    if (L->flops_to_here > deepest->flops_to_here) deepest = L;
    if (!a.units.empty() && a.units.back() >= L->units)
      x.reader.fail_at(a.units_line, "exemplars.units",
                       "unit " + std::to_string(a.units.back()) + " out of range for " + L->alias + " (" + std::to_string(L->units) +
                           " units: 0.." + std::to_string(L->units - 1) + ")");
    unit_count += a.units.empty() ? L->units : static_cast<int64_t>(a.units.size());
  }
  // A per-layer feature space names one of the scanned layers (its tap is checked against the
  // feature model when the run starts: runner/engine.cpp).
  for (const auto& entry : a.feature_layers) {
    const Located& l = entry.first;
    if (std::none_of(layers.begin(), layers.end(), [&](const LayerDesc* L) { return L->alias == l.name; }))
      x.reader.fail_at(l.line, l.field, "'" + l.name + "' is not a layer of this exemplars section (" + names + ")");
  }
  // The dataset's identity: its image ids in order (paths or dataset items).
  std::string ids;
  for (const auto& im : a.images) ids += im.id + "\n";
  const std::string dataset = a.images.front().id + ".." + a.images.back().id + "@" + hash_hex(ids).substr(0, 16);
  const std::string scan = "exemplars|" + x.head + "|layers=" + names + "|units=" + (a.units.empty() ? "all" : format_ranges(a.units)) +
                           "|k=" + std::to_string(a.k) + "|bottom=" + (a.bottom ? "1" : "0") + "|position=" + a.position +
                           "|batch=" + std::to_string(a.batch) + "|dataset=" + dataset;
  const auto n = static_cast<int64_t>(a.images.size());
  for (int64_t b = 0; b < n; b += a.images_per_task) {
    Task t;
    t.technique = "exemplars";
    t.layer = "*";
    for (int64_t i = b; i < std::min(n, b + a.images_per_task); ++i) t.items.push_back(i);
    const auto count = static_cast<double>(t.items.size());
    t.cost = count * deepest->flops_to_here;
    // One batch's forward pass up to the deepest layer (every output kept), and the lists.
    t.memory = static_cast<double>(std::min<int64_t>(a.batch, n)) * deepest->bytes_per_item +
               static_cast<double>(unit_count * a.k * (a.bottom ? 2 : 1)) * 20.0;
    t.canonical = scan + "|images=" + std::to_string(b) + "-" + std::to_string(t.items.back());
    x.add(std::move(t));
  }
}

}  // namespace

const SweepTechnique& sweep_technique_exemplars() {
  static const SweepTechnique t{"exemplars",
                                50,
                                {"layers", "units", "images", "k", "bottom", "position", "batch", "images_per_task", "feature_model",
                                 "feature_layer"},
                                "images",
                                nullptr,
                                "",
                                "",
                                parse_section,
                                expand_section};
  return t;
}

}  // namespace vizsweep::sweeps
