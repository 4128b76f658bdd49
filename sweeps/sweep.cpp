#include "sweeps/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "kernels/error.h"
#include <fnmatch.h>

#include "kernels/names.h"
#include "sweeps/hash.h"
#include "sweeps/idx.h"
#include "sweeps/reader.h"
#include "sweeps/technique.h"

namespace fs = std::filesystem;

namespace vizsweep::sweeps {

using kernels::ParamValue;

const LayerDesc* ModelDesc::find(const std::string& name) const {
  for (const auto& L : layers)
    if (L.alias == name) return &L;
  for (const auto& L : layers)
    if (L.path == name) return &L;
  for (const auto& L : layers)
    for (const auto& n : L.other_names)
      if (n == name) return &L;
  return nullptr;
}

std::string ModelDesc::names() const {
  std::vector<std::string> aliases;
  bool graph = false;
  for (const auto& L : layers) {
    aliases.push_back(L.alias);
    graph = graph || !L.other_names.empty() || L.alias.find_first_of(".:") != std::string::npos;
  }
  if (graph && aliases.size() > 6)  // a graph model's call sites: a few, and where to see them all
    return std::to_string(aliases.size()) + " taps: " + aliases[0] + ", " + aliases[1] + ", " + aliases[2] + ", ..., " +
           aliases.back() + "; vizsweep layers MODEL lists them";
  return summarize_layer_names(aliases);
}

std::string ModelSpec::identity() const {
  if (!builtin()) return "file:" + file + ";input_size=" + std::to_string(input_size);
  std::ostringstream o;
  o << "builtin:" << arch << ";in=" << in_channels << ";classes=" << num_classes << ";width=" << kernels::format_number(width)
    << ";fc=" << fc_width << ";pool=" << pool << ";seed=" << seed << ";input_size=" << input_size;
  return o.str();
}

std::string thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; (s[0] == '-' ? i > 1 : i > 0); i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string format_ranges(const std::vector<int64_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(v[i]);
    if (j > i) out += "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

namespace {

constexpr size_t kMaxNameLength = 100;
constexpr size_t kMaxTasks = 10000000;

}  // namespace

namespace {
SweepSpec parse_checked(const std::string& text, const std::string& file, const std::string& dir);
}

SweepSpec parse_sweep(const std::string& text, const std::string& file, const std::string& dir) {
  // The parser checks every node it reads; should a yaml-cpp conversion still throw, it
  // becomes a vizsweep::Error with the line, like every other error in a sweep file.
  try {
    return parse_checked(text, file, dir);
  } catch (const YAML::Exception& e) {
    throw Error(file + (e.mark.is_null() ? "" : ":" + std::to_string(e.mark.line + 1)) + ": yaml", e.msg);
  }
}

namespace {
SweepSpec parse_checked(const std::string& text, const std::string& file, const std::string& dir) {
  Reader r(file, dir);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    r.fail_at(e.mark.line + 1, "yaml", e.msg);
  }
  SweepSpec spec;
  spec.file = file;
  spec.dir = dir;
  spec.text = text;
  if (!root.IsMap()) r.fail_at(1, "sweep", "expected a mapping with model and technique sections");
  size_t budget = 1000000;
  r.unique_keys(root, "", 0, budget);
  std::vector<std::string> keys = root_keys();
  r.check_keys(root, "", keys);
  spec.name = root["name"] ? r.str(root["name"], "name") : fs::path(file).stem().string();
  if (spec.name.empty() || spec.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != std::string::npos ||
      spec.name[0] == '.')
    r.fail(root["name"], "name", "use letters, digits, '_', '.', '-' (it names the results directory)");
  if (spec.name.size() > kMaxNameLength)
    r.fail(root["name"], "name", "at most " + std::to_string(kMaxNameLength) + " characters (it names the results directory), got " +
                                     std::to_string(spec.name.size()));
  if (root["device"]) {
    spec.device = r.str(root["device"], "device");
    if (spec.device != "auto" && spec.device != "cpu" && spec.device != "cuda")
      r.fail(root["device"], "device", "expected auto, cpu or cuda");
  }
  if (root["threads"]) spec.threads = static_cast<int>(r.integer(root["threads"], "threads", 0, 4096));
  if (root["max_attempts"]) spec.max_attempts = static_cast<int>(r.integer(root["max_attempts"], "max_attempts", 1, 100));
  if (root["batch_memory_gb"]) {
    spec.batch_memory_gb = r.number(root["batch_memory_gb"], "batch_memory_gb");
    if (!(spec.batch_memory_gb >= 0.01 && spec.batch_memory_gb <= 1e5))
      r.fail(root["batch_memory_gb"], "batch_memory_gb", "must be between 0.01 and 100000 (GiB of working memory per task)");
  }
  auto precision = [&](const YAML::Node& n, const std::string& field) {
    std::string p = r.str(n, field);
    if (p != "fp32" && p != "bf16" && p != "fp16") r.fail(n, field, "expected fp32, bf16 or fp16, got '" + p + "'");
    if (p == "fp16" && spec.device == "cpu")
      r.fail(n, field, "fp16 needs device: cuda (or auto on GPU nodes); CPUs compute bf16");
    return p;
  };
  if (root["precision"]) spec.precision = precision(root["precision"], "precision");
  if (root["channels_last"]) spec.channels_last = r.boolean(root["channels_last"], "channels_last");
  auto finish = [&](const YAML::Node& n, const std::string& field) {
    const double f = r.number(n, field);
    if (!(f >= 0 && f <= 1)) r.fail(n, field, "must be in [0, 1] (the share of each optimization's last iterations run in fp32)");
    return f;
  };
  if (root["fp32_finish"]) spec.fp32_finish = finish(root["fp32_finish"], "fp32_finish");
  if (const auto& c = root["compute"]) {
    if (!c.IsMap())
      r.fail(c, "compute", "expected a mapping of layer names to {precision, channels_last, fp32_finish}, e.g. fc6: {precision: bf16}");
    for (const auto& kv : c) {
      SweepSpec::LayerCompute lc;
      lc.layer.name = r.key(kv.first, "compute");
      lc.layer.line = kv.first.Mark().line + 1;
      lc.layer.field = "compute." + lc.layer.name;
      const auto& v = kv.second;
      if (!v.IsMap() || v.size() == 0)
        r.fail(v, lc.layer.field, "expected {precision: fp32|bf16|fp16, channels_last: true|false, fp32_finish: 0..1}");
      r.check_keys(v, lc.layer.field, {"precision", "channels_last", "fp32_finish"});
      if (v["precision"]) lc.precision = precision(v["precision"], lc.layer.field + ".precision");
      if (v["channels_last"]) lc.channels_last = r.boolean(v["channels_last"], lc.layer.field + ".channels_last") ? 1 : 0;
      if (v["fp32_finish"]) {
        lc.fp32_finish = finish(v["fp32_finish"], lc.layer.field + ".fp32_finish");
        if (lc.fp32_finish > 0 && (lc.precision.empty() ? spec.precision : lc.precision) == "fp32")
          r.fail(v["fp32_finish"], lc.layer.field + ".fp32_finish", "needs a reduced precision (bf16 or fp16) for this layer: it computes in fp32 already");
      }
      for (const auto& other : spec.compute)
        if (other.layer.name == lc.layer.name) r.fail(kv.first, lc.layer.field, "given twice");
      spec.compute.push_back(std::move(lc));
    }
  }
  if (spec.fp32_finish > 0 && spec.precision == "fp32" &&
      std::none_of(spec.compute.begin(), spec.compute.end(), [](const SweepSpec::LayerCompute& c) { return !c.precision.empty() && c.precision != "fp32"; }))
    r.fail(root["fp32_finish"], "fp32_finish", "needs a reduced precision (precision: bf16 or fp16, for the sweep or a layer of compute:): every layer computes in fp32 already");

  const auto& m = root["model"];
  if (!m) r.fail_at(1, "model", "missing: give model.file (TorchScript) or model.builtin (vgg11/13/16/19)");
  r.check_keys(m, "model", {"file", "builtin", "seed", "width", "in_channels", "num_classes", "fc_width", "pool", "input_size"});
  if (m["file"] && m["builtin"]) r.fail(m, "model", "give file or builtin, not both");
  if (m["file"]) {
    spec.model.file = r.path(r.str(m["file"], "model.file"));
    std::error_code ec;
    if (!fs::is_regular_file(spec.model.file, ec)) r.fail(m["file"], "model.file", "no such model file: " + spec.model.file);
    for (const char* k : {"seed", "width", "in_channels", "num_classes", "fc_width", "pool"})
      if (m[k]) r.fail(m[k], std::string("model.") + k, "only for built-in models (the file defines the model)");
  } else if (m["builtin"]) {
    spec.model.arch = r.str(m["builtin"], "model.builtin");
    if (spec.model.arch != "vgg11" && spec.model.arch != "vgg13" && spec.model.arch != "vgg16" && spec.model.arch != "vgg19")
      r.fail(m["builtin"], "model.builtin", "unknown architecture '" + spec.model.arch + "' (valid: vgg11, vgg13, vgg16, vgg19)");
    if (m["seed"]) spec.model.seed = static_cast<uint64_t>(r.integer(m["seed"], "model.seed", 0, int64_t{1} << 53));
    if (m["width"]) {
      spec.model.width = r.number(m["width"], "model.width");
      if (!(spec.model.width > 0 && spec.model.width <= 16)) r.fail(m["width"], "model.width", "must be in (0, 16]");
    }
    if (m["in_channels"]) spec.model.in_channels = r.integer(m["in_channels"], "model.in_channels", 1, 4);
    if (m["num_classes"]) spec.model.num_classes = r.integer(m["num_classes"], "model.num_classes", 1, 1000000);
    if (m["fc_width"]) spec.model.fc_width = r.integer(m["fc_width"], "model.fc_width", 1, 1000000);
    if (m["pool"]) spec.model.pool = r.integer(m["pool"], "model.pool", 1, 64);
  } else {
    r.fail(m, "model", "give model.file (TorchScript) or model.builtin (vgg11/13/16/19)");
  }
  if (m["input_size"]) spec.model.input_size = r.integer(m["input_size"], "model.input_size", 8, 4096);

  for (const SweepTechnique* t : techniques())
    if (const auto& node = root[t->name]) {
      r.check_keys(node, t->name, t->keys);
      spec.sections.push_back({t, t->parse(r, node)});
    }
  if (spec.sections.empty()) {
    std::string list;
    const auto& all = techniques();
    for (size_t i = 0; i < all.size(); ++i)
      list += (i == 0 ? "" : i + 1 == all.size() ? " or " : ", ") + all[i]->name;
    r.fail_at(1, "sweep", "no technique: add an " + list + " section");
  }
  return spec;
}
}  // namespace

const std::vector<std::string>& root_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = {"name", "model", "device", "threads", "max_attempts", "batch_memory_gb", "precision",
                                  "channels_last", "fp32_finish", "compute"};
    for (const SweepTechnique* t : techniques()) k.push_back(t->name);
    return k;
  }();
  return keys;
}

SweepSpec load_sweep(const std::string& path) {
  std::ifstream f(path);
  std::error_code ec;
  if (!f || fs::is_directory(path, ec)) throw Error(path, "cannot read sweep file");
  std::stringstream ss;
  ss << f.rdbuf();
  fs::path p = fs::absolute(path);
  return parse_sweep(ss.str(), path, p.parent_path().string());
}

namespace {

uint64_t seed_of(const std::string& key) {
  Hasher h;
  h.update("seed:" + key);
  return h.low() >> 11;  // 53 bits: exact in a double, an SQLite INTEGER and JSON
}

}  // namespace

std::string image_ids(const std::vector<ImageSource>& images, const std::vector<int64_t>& idx) {
  std::string s;
  for (int64_t i : idx) s += (s.empty() ? "" : ",") + images[static_cast<size_t>(i)].id;
  return s;
}

ComputeFormat SweepSpec::default_format() const { return {precision, channels_last, precision == "fp32" ? 0.0 : fp32_finish}; }

ComputeFormat SweepSpec::format_for(const std::string& alias, const std::string& path) const {
  ComputeFormat f{precision, channels_last, fp32_finish};
  for (const auto& c : compute)
    if (c.layer.name == alias || (!path.empty() && c.layer.name == path)) {
      if (!c.precision.empty()) f.precision = c.precision;
      if (c.channels_last >= 0) f.channels_last = c.channels_last != 0;
      if (c.fp32_finish >= 0) f.fp32_finish = c.fp32_finish;
    }
  if (f.precision == "fp32") f.fp32_finish = 0;  // nothing to finish
  return f;
}

std::string compute_summary(const SweepSpec& spec) {
  std::string s = spec.default_format().name(), layers;
  for (const auto& c : spec.compute) layers += (layers.empty() ? "" : "; ") + c.layer.name + ": " + spec.format_for(c.layer.name).name();
  return layers.empty() ? s : s + " (" + layers + ")";
}

namespace {
// Reduced precision and its fp32 finish change the math: both are in the key (neither is
// there at their defaults, so keys from before them stay the same).
std::string head_of(const SweepSpec& spec, const ModelDesc& model, const ComputeFormat& format) {
  std::string head = "model=" + spec.model.identity() + "|size=" + std::to_string(model.input_size);
  if (format.precision != "fp32") head += "|precision=" + format.precision;
  if (format.precision != "fp32" && format.fp32_finish > 0) head += "|fp32_finish=" + format.finish_text();
  return head;
}
}  // namespace

std::string Expansion::head_for(const LayerDesc& layer) const {
  return head_of(spec, model, spec.format_for(layer.alias, layer.path));
}

Expansion::Expansion(const SweepSpec& s, const ModelDesc& m, const Reader& r, std::vector<Task>& out)
    : spec(s), model(m), reader(r), out_(out) {
  // The other techniques compute in the sweep's precision, without a finish (it belongs to
  // activation maximization's iterations, SweepSpec::compute).
  head = head_of(spec, model, ComputeFormat{spec.precision});
  total_flops = model.layers.empty() ? 0 : model.layers.back().flops_to_here;
  total_bytes = model.layers.empty() ? 0 : model.layers.back().bytes_per_item;
}

size_t Expansion::fit(int64_t asked, double bytes_per_item) const {
  if (bytes_per_item <= 0) return static_cast<size_t>(asked);
  const double budget = spec.batch_memory_gb * 1024.0 * 1024.0 * 1024.0;
  double most = std::floor(budget / bytes_per_item);
  return static_cast<size_t>(std::max<double>(1.0, std::min<double>(static_cast<double>(asked), most)));
}

// " (nearest: a, b, c)": the model's names closest to a name that is not one, by edit distance.
std::string Expansion::nearest(const std::string& name) const {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> d(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) d[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t prev = d[0];
      d[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t cur = d[j];
        d[j] = std::min({d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
        prev = cur;
      }
    }
    return d[b.size()];
  };
  std::vector<std::pair<size_t, std::string>> v;
  for (const auto& L : model.layers) {
    v.emplace_back(distance(name, L.alias), L.alias);
    for (const auto& n : L.other_names) v.emplace_back(distance(name, n), n);
  }
  std::sort(v.begin(), v.end());
  std::string s;
  for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", " : "") + v[i].second;
  return s.empty() ? "" : "; nearest: " + s;
}

std::vector<const LayerDesc*> Expansion::layers(const std::vector<Located>& names, bool all, bool conv_and_fc) const {
  std::vector<const LayerDesc*> out;
  if (all) {
    for (const auto& L : model.layers)
      if (!conv_and_fc || L.kind == "conv" || L.kind == "fc") out.push_back(&L);
    return out;
  }
  for (const auto& l : names) {
    if (l.name.find_first_of("*?[") != std::string::npos) {  // a glob: every layer one of whose names matches
      const size_t before = out.size();
      for (const auto& L : model.layers) {
        bool hit = fnmatch(l.name.c_str(), L.alias.c_str(), 0) == 0 || fnmatch(l.name.c_str(), L.path.c_str(), 0) == 0;
        for (const auto& n : L.other_names) hit = hit || fnmatch(l.name.c_str(), n.c_str(), 0) == 0;
        if (hit && std::find(out.begin(), out.end(), &L) == out.end()) out.push_back(&L);
      }
      if (out.size() == before)
        reader.fail_at(l.line, l.field, "no layer matches \"" + l.name + "\" in " + model.arch + " (has " + model.names() + ")");
      continue;
    }
    const LayerDesc* L = model.find(l.name);
    if (!L) reader.fail_at(l.line, l.field, "no layer \"" + l.name + "\" in " + model.arch + " (has " + model.names() + ")" + nearest(l.name));
    out.push_back(L);
  }
  return out;
}

void Expansion::add(Task t) {
  t.key = hash_hex(t.canonical);
  t.seed = seed_of(t.key);
  out_.push_back(std::move(t));
  if (out_.size() > kMaxTasks) reader.fail_at(1, "sweep", "expands to more than " + std::to_string(kMaxTasks) + " tasks");
}

std::vector<Task> expand(const SweepSpec& spec, const ModelDesc& model) {
  Reader r(spec.file, spec.dir);
  std::vector<Task> tasks;
  Expansion x(spec, model, r, tasks);
  for (const auto& c : spec.compute) {
    const LayerDesc* L = model.find(c.layer.name);
    if (!L) r.fail_at(c.layer.line, c.layer.field, "no layer \"" + c.layer.name + "\" in " + model.arch + " (has " + model.names() + ")");
    if (L->kind != "conv" && L->kind != "fc")
      r.fail_at(c.layer.line, c.layer.field, "\"" + c.layer.name + "\" is a " + L->kind + " layer; formats are set on the conv and fc layers tasks run on");
  }
  for (const auto& e : spec.sections) e.technique->expand(*e.section, x);
  // The same work twice (e.g. a preset listed twice) would be one task: refuse it.
  std::set<std::string> keys;
  for (const auto& t : tasks)
    if (!keys.insert(t.key).second)
      r.fail_at(1, t.technique, "the same task appears twice (duplicate setting, seed or layer?): " + t.canonical);
  return tasks;
}

std::string spec_hash(const SweepSpec& spec, const std::vector<Task>& tasks) {
  Hasher h;
  h.update(spec.model.identity());
  for (const auto& t : tasks) h.update("|" + t.key);
  return h.hex();
}

}  // namespace vizsweep::sweeps
