#include "sweeps/techniques/actmax.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "sweeps/hash.h"
#include "sweeps/reader.h"

namespace vizsweep::sweeps {

SettingsRows ActmaxSection::settings_rows() const {
  SettingsRows out{"actmax_settings", {}};
  for (const auto& s : settings) {
    auto p = kernels::params_of(s);
    p.insert(p.begin(), {"objective", objective.canonical()});
    out.rows.push_back({s.name, p});
  }
  return out;
}

std::string ActmaxSection::plan_note(const std::vector<Task>& tasks) const {
  if (search.active()) {
    std::set<std::string> layers;
    for (const auto& t : tasks)
      if (t.technique == "actmax") layers.insert(t.layer);
    std::string rungs;
    for (int b : search.budgets) rungs += (rungs.empty() ? "" : ", ") + std::to_string(b);
    return "actmax search (" + search.method + ", eta " + std::to_string(search.eta) + ", metric " + search.metric + "): " +
           std::to_string(search.settings) + " settings on " + thousands(search.units) + " sampled units of each of " +
           std::to_string(layers.size()) + " layer" + (layers.size() == 1 ? "" : "s") + ", rungs of " + rungs + " iterations";
  }
  int64_t units = 0;
  for (const auto& t : tasks)
    if (t.technique == "actmax" && t.setting == 0 && t.user_seed == seeds[0]) units += static_cast<int64_t>(t.items.size());
  const int64_t images = units * static_cast<int64_t>(settings.size() * seeds.size()) * diversity;
  return "actmax: " + thousands(units) + " units x " + std::to_string(settings.size()) + " settings x " +
         std::to_string(seeds.size()) + " seeds" + (diversity > 1 ? " x " + std::to_string(diversity) + " diverse images" : "") +
         " = " + thousands(images) + " optimized images";
}

std::vector<int> search_budgets(int64_t min_iterations, int64_t max_iterations, int64_t eta) {
  std::vector<int> out;
  for (int64_t b = min_iterations; b < max_iterations; b *= eta) out.push_back(static_cast<int>(b));
  out.push_back(static_cast<int>(max_iterations));
  return out;
}

std::vector<int64_t> search_sample(const std::vector<int64_t>& units, int64_t n, uint64_t seed, const std::string& layer) {
  Hasher h;
  h.update("search|" + std::to_string(seed) + "|" + layer);
  SplitMix64 next(h.low());
  const auto N = static_cast<int64_t>(units.size());
  n = std::min(n, N);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t lo = i * N / n, hi = (i + 1) * N / n;
    out.push_back(units[static_cast<size_t>(lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo)))]);
  }
  return out;
}

namespace {

void parse_search(const Reader& r, const YAML::Node& a, ActmaxSection& s) {
  const YAML::Node& n = a["search"];
  r.check_keys(n, "actmax.search", {"method", "metric", "min_iterations", "max_iterations", "eta", "units", "seed"});
  SearchSpec& q = s.search;
  q.method = n["method"] ? r.str(n["method"], "actmax.search.method") : "asha";
  if (q.method != "asha") r.fail(n["method"], "actmax.search.method", "expected asha, got '" + q.method + "'");
  if (n["metric"]) {
    q.metric = r.str(n["metric"], "actmax.search.metric");
    q.metric_line = n["metric"].Mark().line + 1;
  } else {
    q.metric_line = n.Mark().line + 1;
  }
  if (n["min_iterations"]) q.min_iterations = r.integer(n["min_iterations"], "actmax.search.min_iterations", 1, 1000000);
  if (n["max_iterations"]) q.max_iterations = r.integer(n["max_iterations"], "actmax.search.max_iterations", 1, 1000000);
  if (n["eta"]) q.eta = r.integer(n["eta"], "actmax.search.eta", 2, 100);
  if (q.min_iterations > q.max_iterations)
    r.fail(n["min_iterations"] ? n["min_iterations"] : n, "actmax.search.min_iterations",
           "must be at most max_iterations (" + std::to_string(q.max_iterations) + "), got " + std::to_string(q.min_iterations));
  if (n["units"]) q.units = r.integer(n["units"], "actmax.search.units", 1, 65536);
  q.units_line = (n["units"] ? n["units"] : n).Mark().line + 1;
  if (n["seed"]) q.seed = static_cast<uint64_t>(r.integer(n["seed"], "actmax.search.seed", 0, int64_t{1} << 53));
  if (a["grid"] && a["grid"].IsMap() && a["grid"]["iterations"])
    r.fail(a["grid"]["iterations"], "actmax.grid.iterations",
           "the search sets each setting's iterations (search.min_iterations to search.max_iterations)");
  if (s.seeds.size() != 1) r.fail(a["seeds"], "actmax.seeds", "a search runs one seed per setting");
  q.budgets = search_budgets(q.min_iterations, q.max_iterations, q.eta);
  q.settings = s.settings.size();
  // Every setting at every rung's iterations: setting k at rung r is k x rungs + r.
  std::vector<kernels::ActMaxSettings> rungs;
  std::vector<Located> at;
  for (size_t k = 0; k < s.settings.size(); ++k)
    for (int b : q.budgets) {
      kernels::ActMaxSettings st = s.settings[k];
      st.iterations = b;
      st.name += "@" + std::to_string(b);
      rungs.push_back(st);
      if (k < s.setting_at.size()) at.push_back(s.setting_at[k]);
    }
  s.settings = std::move(rungs);
  s.setting_at = std::move(at);
}

std::shared_ptr<const Section> parse_section(const Reader& r, const YAML::Node& a) {
  auto s = std::make_shared<ActmaxSection>();
  if (!a["layers"]) r.fail(a, "actmax.layers", "missing: list layers or say all");
  s->layers = parse_layers(r, a["layers"], "actmax.layers", s->all_layers);
  if (a["units"]) s->units = parse_units(r, a["units"], "actmax.units", s->units_line);
  if (a["units_per_batch"]) s->units_per_batch = r.integer(a["units_per_batch"], "actmax.units_per_batch", 1, 65536);
  if (a["objective"]) {
    try {
      s->objective = kernels::parse_objective(r.str(a["objective"], "actmax.objective"));
      s->objective_line = a["objective"].Mark().line + 1;
    } catch (const Error& e) {
      r.fail(a["objective"], "actmax.objective", e.reason_only());
    }
  }
  kernels::ActMaxSettings defaults = kernels::actmax_preset("unregularized");
  s->settings = parse_settings<kernels::ActMaxSettings>(r, a, "actmax", kernels::actmax_params(), kernels::actmax_preset, defaults,
                                                        &s->setting_at);
  if (a["seeds"]) s->seeds = parse_seeds(r, a["seeds"], "actmax.seeds");
  if (a["transform_order"]) {
    const YAML::Node& n = a["transform_order"];
    if (!n.IsSequence()) r.fail(n, "actmax.transform_order", "expected a list of transforms");
    const auto names = kernels::transform_names();
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string field = "actmax.transform_order[" + std::to_string(i) + "]";
      const std::string t = r.str(n[i], field);
      if (std::find(names.begin(), names.end(), t) == names.end()) {
        std::string have;
        for (const auto& x : names) have += (have.empty() ? "" : ", ") + x;
        r.fail(n[i], field, "no transform '" + t + "' (have " + have + ")");
      }
      if (std::find(s->transform_order.begin(), s->transform_order.end(), t) != s->transform_order.end())
        r.fail(n[i], field, "'" + t + "' given twice");
      s->transform_order.push_back(t);
    }
  }
  if (a["diversity"]) s->diversity = r.integer(a["diversity"], "actmax.diversity", 1, 64);
  if (a["diversity_layer"]) {
    s->diversity_layer.name = r.str(a["diversity_layer"], "actmax.diversity_layer");
    s->diversity_layer.line = a["diversity_layer"].Mark().line + 1;
    s->diversity_layer.field = "actmax.diversity_layer";
  }
  if (a["spectrum"]) {
    s->spectrum = parse_images(r, a["spectrum"], "actmax.spectrum");
    std::string ids;
    for (const auto& im : s->spectrum) ids += im.id + "\n";
    s->spectrum_hash = hash_hex(ids).substr(0, 16);
  }
  if (a["search"]) parse_search(r, a, *s);
  if (a["judge"]) {
    s->judge = r.path(r.str(a["judge"], "actmax.judge"));
    s->judge_line = a["judge"].Mark().line + 1;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(s->judge, ec)) r.fail(a["judge"], "actmax.judge", "no such model file: " + s->judge);
    s->judge_hash = file_hash(s->judge);
    if (s->judge_hash.empty()) r.fail(a["judge"], "actmax.judge", "cannot read " + s->judge);
  }
  return s;
}

void expand_section(const Section& section, Expansion& x) {
  const auto& a = static_cast<const ActmaxSection&>(section);
  const auto& r = x.reader;
  // Transform sizes in pixels of this model's input must leave some of the image.
  for (size_t i = 0; i < a.settings.size(); ++i) {
    const auto& st = a.settings[i];
    for (const auto& [name, v] : {std::pair<const char*, double>{"jitter", st.jitter}, {"pad", st.pad}}) {
      const int px = kernels::transform_pixels(v, x.model.input_size);
      if (px >= x.model.input_size)
        r.fail_at(i < a.setting_at.size() ? a.setting_at[i].line : 1,
                  (i < a.setting_at.size() ? a.setting_at[i].field : std::string("actmax")) + "." + name,
                  "setting " + st.name + ": must be less than the input size (" + std::to_string(x.model.input_size) +
                      " px), got " + kernels::format_number(v) + (v < 1 ? " (" + std::to_string(px) + " px)" : ""));
    }
  }
  for (const LayerDesc* L : x.layers(a.layers, a.all_layers, true)) {
    // The output layer's units are the classes: a judge scores them (and is in their keys).
    const bool judged = !a.judge.empty() && L == &x.model.layers.back();
    std::vector<int64_t> units = a.units;
    if (units.empty())
      for (int64_t u = 0; u < L->units; ++u) units.push_back(u);
    if (units.back() >= L->units)
      r.fail_at(a.units_line, "actmax.units", "unit " + std::to_string(units.back()) + " out of range for " + L->alias + " (" +
                                                  std::to_string(L->units) + " units: 0.." + std::to_string(L->units - 1) + ")");
    if (a.search.active()) {
      if (a.search.units > static_cast<int64_t>(units.size()))
        r.fail_at(a.search.units_line, "actmax.search.units",
                  std::to_string(a.search.units) + " is more than " + L->alias + " has to sample (" + std::to_string(units.size()) + ")");
      units = search_sample(units, a.search.units, a.search.seed, L->alias);
      std::sort(units.begin(), units.end());
    }
    // The centre unit's optimization runs on its receptive-field crop (kernels/actmax), under
    // every transform too; the diversity penalty reads the whole output. A unit's images
    // under diversity are one batch of `diversity` images.
    const std::string bad = kernels::check_objective(a.objective, L->units, L->height, L->width);
    if (!bad.empty()) r.fail_at(a.objective_line, "actmax.objective", bad + " (" + L->alias + ")");
    const bool crop = a.objective.reads_one_position() && a.diversity == 1;
    std::string order;
    for (const auto& t : a.transform_order) order += (order.empty() ? "|transform_order=" : ",") + t;
    std::string diversity_key;
    if (a.diversity > 1 && !a.diversity_layer.name.empty()) {
      const LayerDesc* d = x.model.find(a.diversity_layer.name);
      if (!d)
        r.fail_at(a.diversity_layer.line, a.diversity_layer.field, "no layer \"" + a.diversity_layer.name + "\" (" + x.model.names() + ")");
      if (d > L)
        r.fail_at(a.diversity_layer.line, a.diversity_layer.field, d->alias + " comes after " + L->alias + ": name a layer on the way to it");
      diversity_key = "|diversity_layer=" + d->alias;
    }
    const double flops = (crop ? L->crop_flops_to_here : L->flops_to_here) * static_cast<double>(a.diversity);
    const double bytes = (crop ? L->crop_bytes_per_item : L->bytes_per_item) * static_cast<double>(a.diversity);
    const size_t per_task = x.fit(a.units_per_batch, bytes);
    for (size_t s = 0; s < a.settings.size(); ++s) {
      const auto& st = a.settings[s];
      std::string sc = kernels::canonical(kernels::key_params(st));
      for (uint64_t seed : a.seeds)
        for (size_t b = 0; b < units.size(); b += per_task) {
          Task t;
          t.technique = "actmax";
          t.layer = L->alias;
          t.items.assign(units.begin() + static_cast<long>(b), units.begin() + static_cast<long>(std::min(units.size(), b + per_task)));
          t.setting = static_cast<int>(s);
          t.user_seed = seed;
          t.cost = 3.0 * st.iterations * static_cast<double>(t.items.size()) * flops;
          t.memory = static_cast<double>(t.items.size()) * bytes;
          t.canonical = "actmax|" + x.head_for(*L) + "|layer=" + L->alias + "|units=" + format_ranges(t.items) +
                        "|objective=" + a.objective.canonical() + "|" + sc + "|seed=" + std::to_string(seed) +
                        (judged ? "|judge=" + a.judge_hash : "") +
                        (a.diversity > 1 ? "|diversity=" + std::to_string(a.diversity) : "") + diversity_key + order +
                        (st.param == kernels::ImageParam::Maco && !a.spectrum.empty() ? "|spectrum=" + a.spectrum_hash : "");
          x.add(std::move(t));
        }
    }
  }
}

}  // namespace

const SweepTechnique& sweep_technique_actmax() {
  static const SweepTechnique t{"actmax",
                                10,
                                {"layers", "units", "units_per_batch", "objective", "presets", "grid", "random", "seeds", "judge", "diversity", "spectrum",
                                 "transform_order", "diversity_layer", "search"},
                                "units",
                                &kernels::actmax_params(),
                                "actmax.grid, actmax.random (presets: actmax.presets)",
                                "actmax_settings",
                                parse_section,
                                expand_section,
                                /*compute_formats=*/true};
  return t;
}

}  // namespace vizsweep::sweeps
