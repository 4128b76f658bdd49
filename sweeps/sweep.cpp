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
#include "kernels/names.h"
#include "sweeps/hash.h"
#include "sweeps/idx.h"

namespace fs = std::filesystem;

namespace vizsweep::sweeps {

using kernels::ParamValue;

const LayerDesc* ModelDesc::find(const std::string& name) const {
  for (const auto& L : layers)
    if (L.alias == name) return &L;
  for (const auto& L : layers)
    if (L.path == name) return &L;
  return nullptr;
}

std::string ModelDesc::names() const {
  std::vector<std::string> aliases;
  for (const auto& L : layers) aliases.push_back(L.alias);
  return summarize_layer_names(aliases);
}

std::string ModelSpec::identity() const {
  if (!builtin()) return "file:" + file + ";input_size=" + std::to_string(input_size);
  std::ostringstream o;
  o << "builtin:" << arch << ";in=" << in_channels << ";classes=" << num_classes << ";width=" << kernels::format_number(width)
    << ";fc=" << fc_width << ";pool=" << pool << ";seed=" << seed << ";input_size=" << input_size;
  return o.str();
}

const char* technique_name(Technique t) {
  switch (t) {
    case Technique::Actmax: return "actmax";
    case Technique::Invert: return "invert";
    case Technique::Fgsm: return "fgsm";
    case Technique::Featuremaps: return "featuremaps";
  }
  return "?";
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

constexpr size_t kMaxSettings = 100000;
constexpr size_t kMaxNameLength = 100;
constexpr size_t kMaxTasks = 10000000;

// Reads a YAML document and raises errors that name file, line and field.
class Reader {
 public:
  Reader(std::string file, std::string dir) : file_(std::move(file)), dir_(std::move(dir)) {}

  [[noreturn]] void fail(const YAML::Node& n, const std::string& field, const std::string& reason) const {
    int line = n.IsDefined() ? n.Mark().line + 1 : 0;
    fail_at(line, field, reason);
  }
  [[noreturn]] void fail_at(int line, const std::string& field, const std::string& reason) const {
    std::string where = file_;
    if (line > 0) where += ":" + std::to_string(line);
    throw Error(where + ": " + field, reason);
  }

  // YAML leaves duplicate keys in a mapping to the reader, and yaml-cpp keeps the first: a
  // sweep file with `decay:` twice would silently lose one. Every mapping of the document is
  // checked once, up front; `budget` bounds the walk (anchors can repeat a subtree many times).
  void unique_keys(const YAML::Node& n, const std::string& field, int depth, size_t& budget) const {
    if (depth > 64 || budget == 0) return;
    --budget;
    if (n.IsSequence()) {
      for (const auto& item : n) unique_keys(item, field, depth + 1, budget);
    } else if (n.IsMap()) {
      std::map<std::string, int> seen;
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) continue;  // reported where the mapping is read
        const std::string name = kv.first.Scalar(), f = field.empty() ? name : field + "." + name;
        const int line = kv.first.Mark().line + 1;
        auto [at, fresh] = seen.emplace(name, line);
        if (!fresh) fail_at(line, f, "duplicate key (first given at line " + std::to_string(at->second) + ")");
        unique_keys(kv.second, f, depth + 1, budget);
      }
    }
  }

  // A mapping's key: a plain name (YAML allows lists and mappings as keys; sweep files do not).
  std::string key(const YAML::Node& k, const std::string& field) const {
    if (!k.IsScalar()) fail(k, field, "keys must be plain names, not lists or mappings");
    return k.Scalar();
  }

  void check_keys(const YAML::Node& n, const std::string& field, const std::vector<std::string>& valid) const {
    if (!n.IsMap()) fail(n, field, "expected a mapping of keys");
    for (const auto& kv : n) {
      auto key = this->key(kv.first, field.empty() ? "sweep" : field);
      if (std::find(valid.begin(), valid.end(), key) == valid.end()) {
        std::string list;
        for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
        fail(kv.first, field.empty() ? key : field + "." + key, "unknown key (valid: " + list + ")");
      }
    }
  }

  std::string str(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) fail(n, field, "expected a single value");
    return n.Scalar();
  }
  double number(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) fail(n, field, "expected a number");
    try {
      size_t used = 0;
      const std::string& s = n.Scalar();
      double d = std::stod(s, &used);
      if (used != s.size()) throw std::invalid_argument(s);
      return d;
    } catch (const std::exception&) {
      fail(n, field, "expected a number, got '" + n.Scalar() + "'");
    }
  }
  int64_t integer(const YAML::Node& n, const std::string& field, int64_t lo, int64_t hi) const {
    double d = number(n, field);
    if (d != std::floor(d)) fail(n, field, "expected an integer, got " + n.Scalar());
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
      fail(n, field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + n.Scalar());
    return static_cast<int64_t>(d);
  }
  bool boolean(const YAML::Node& n, const std::string& field) const {
    std::string s = str(n, field);
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
    fail(n, field, "expected true or false, got '" + s + "'");
  }
  // A scalar as a number when it reads as one, else as a word.
  ParamValue param(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) fail(n, field, "expected a number or a word");
    const std::string& s = n.Scalar();
    try {
      size_t used = 0;
      double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (const std::exception&) {
    }
    if (s == "true") return 1.0;
    if (s == "false") return 0.0;
    return s;
  }
  // A scalar or a list of scalars, as a non-empty list.
  std::vector<YAML::Node> items(const YAML::Node& n, const std::string& field) const {
    std::vector<YAML::Node> out;
    if (n.IsScalar()) {
      out.push_back(n);
    } else if (n.IsSequence()) {
      for (const auto& x : n) out.push_back(x);
      if (out.empty()) fail(n, field, "empty list");
    } else {
      fail(n, field, "expected a value or a list of values");
    }
    return out;
  }

  std::string path(const std::string& p) const {
    fs::path q(p);
    return (q.is_absolute() ? q : fs::path(dir_) / q).lexically_normal().string();
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_, dir_;
};

// Splits "0-63" / "7" into numbers.
void parse_unit_item(const Reader& r, const YAML::Node& n, const std::string& field, std::vector<int64_t>& out) {
  std::string s = r.str(n, field);
  auto dash = s.find('-', 1);
  try {
    if (dash == std::string::npos) {
      size_t used = 0;
      long long v = std::stoll(s, &used);
      if (used != s.size() || v < 0) throw std::invalid_argument(s);
      out.push_back(v);
    } else {
      size_t u1 = 0, u2 = 0;
      long long a = std::stoll(s.substr(0, dash), &u1), b = std::stoll(s.substr(dash + 1), &u2);
      if (u1 != dash || u2 != s.size() - dash - 1 || a < 0 || b < a) throw std::invalid_argument(s);
      if (b - a > 10000000) r.fail(n, field, "range '" + s + "' is too large");
      for (long long v = a; v <= b; ++v) out.push_back(v);
    }
  } catch (const std::invalid_argument&) {
    r.fail(n, field, "expected a unit number or a range like 0-63, got '" + s + "'");
  } catch (const std::out_of_range&) {
    r.fail(n, field, "number out of range in '" + s + "'");
  }
}

std::vector<Located> parse_layers(const Reader& r, const YAML::Node& n, const std::string& field, bool& all) {
  std::vector<Located> out;
  all = false;
  if (n.IsScalar() && n.Scalar() == "all") {
    all = true;
    return out;
  }
  auto list = r.items(n, field);
  for (size_t i = 0; i < list.size(); ++i) {
    std::string f = n.IsSequence() ? field + "[" + std::to_string(i) + "]" : field;
    out.push_back({r.str(list[i], f), list[i].Mark().line + 1, f});
  }
  return out;
}

std::vector<uint64_t> parse_seeds(const Reader& r, const YAML::Node& n, const std::string& field) {
  std::vector<uint64_t> out;
  for (const auto& x : r.items(n, field)) out.push_back(static_cast<uint64_t>(r.integer(x, field, 0, int64_t{1} << 53)));
  return out;
}

// Deterministic uniform doubles in [0, 1) from a seed (splitmix64), the same everywhere.
class Draw {
 public:
  explicit Draw(uint64_t seed) : s_(seed) {}
  double next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }

 private:
  uint64_t s_;
};

// Settings of one technique from presets, a grid and a random search.
template <typename S>
std::vector<S> parse_settings(const Reader& r, const YAML::Node& sec, const std::string& field,
                              const std::vector<kernels::ParamInfo>& params, const std::function<S(const std::string&)>& preset,
                              const S& defaults, std::vector<Located>* where = nullptr) {
  std::vector<S> out;
  // Where each setting was given, for the errors found later against the model.
  auto from = [&](const YAML::Node& at, const std::string& f) {
    if (where) where->push_back({"", at.Mark().line + 1, f});
  };
  auto validated = [&](S s, const YAML::Node& at, const std::string& f) {
    try {
      kernels::validate(s);
    } catch (const Error& e) {
      r.fail(at, f, e.what());
    }
    return s;
  };
  auto set = [&](S& s, const std::string& name, const ParamValue& v, const YAML::Node& at, const std::string& f) {
    try {
      kernels::set_param(s, name, v);
    } catch (const Error& e) {
      r.fail(at, f, e.reason_only());
    }
  };
  if (sec["presets"]) {
    if (!preset) r.fail(sec["presets"], field + ".presets", "this technique has no presets");
    auto list = r.items(sec["presets"], field + ".presets");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string f = field + ".presets[" + std::to_string(i) + "]";
      try {
        out.push_back(preset(r.str(list[i], f)));
        from(list[i], f);
      } catch (const Error& e) {
        r.fail(list[i], f, e.reason_only());
      }
    }
  }
  if (sec["grid"]) {
    const auto& g = sec["grid"];
    const std::string gf = field + ".grid";
    if (!g.IsMap() || g.size() == 0) r.fail(g, gf, "expected a mapping of hyperparameters to values or lists");
    std::vector<std::pair<std::string, std::vector<YAML::Node>>> axes;
    size_t total = 1;
    for (const auto& kv : g) {
      std::string name = r.key(kv.first, gf);
      auto vals = r.items(kv.second, gf + "." + name);
      total *= vals.size();
      if (total > kMaxSettings) r.fail(kv.second, gf, "grid has more than " + std::to_string(kMaxSettings) + " settings");
      axes.push_back({name, vals});
    }
    for (size_t k = 0; k < total; ++k) {
      S s = defaults;
      std::string varying;  // the setting is named by the values of the axes that vary
      size_t rest = k;
      for (auto it = axes.rbegin(); it != axes.rend(); ++it) {  // last axis varies fastest
        const auto& node = it->second[rest % it->second.size()];
        rest /= it->second.size();
        set(s, it->first, r.param(node, gf + "." + it->first), node, gf + "." + it->first);
        if (it->second.size() > 1) varying = it->first + "=" + node.Scalar() + (varying.empty() ? "" : ",") + varying;
      }
      s.name = varying.empty() ? "grid" : varying;
      out.push_back(validated(s, g, gf));
      from(sec["grid"], gf);
    }
  }
  if (sec["random"]) {
    const auto& rs = sec["random"];
    const std::string rf = field + ".random";
    if (!rs.IsMap()) r.fail(rs, rf, "expected a mapping with count, seed and hyperparameter ranges");
    if (!rs["count"]) r.fail(rs, rf + ".count", "missing: how many settings to draw");
    int64_t count = r.integer(rs["count"], rf + ".count", 1, kMaxSettings);
    uint64_t seed = rs["seed"] ? static_cast<uint64_t>(r.integer(rs["seed"], rf + ".seed", 0, int64_t{1} << 53)) : 0;
    Draw draw(seed);
    for (int64_t k = 0; k < count; ++k) {
      S s = defaults;
      s.name = "random-" + std::to_string(k);
      for (const auto& kv : rs) {
        std::string name = r.key(kv.first, rf);
        if (name == "count" || name == "seed") continue;
        const std::string f = rf + "." + name;
        auto info = std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.name == name; });
        if (info == params.end()) {
          S probe = defaults;
          set(probe, name, 0.0, kv.first, f);  // raises the unknown-name error listing valid ones
        }
        const auto& spec = kv.second;
        ParamValue v;
        if (spec.IsScalar()) {
          v = r.param(spec, f);
        } else if (spec.IsMap() && spec.size() == 1) {
          // Copies: a YAML iterator's pair lives only as long as the iterator (a reference to
          // begin()->second dangles; AddressSanitizer caught it).
          const auto entry = *spec.begin();
          std::string how = r.key(entry.first, f);
          const YAML::Node arg = entry.second;
          if (how == "choice") {
            auto opts = r.items(arg, f + ".choice");
            v = r.param(opts[static_cast<size_t>(draw.next() * opts.size())], f);
          } else if (how == "uniform" || how == "log_uniform") {
            if (!arg.IsSequence() || arg.size() != 2) r.fail(arg, f + "." + how, "expected [low, high]");
            double lo = r.number(arg[0], f), hi = r.number(arg[1], f);
            if (!(hi >= lo)) r.fail(arg, f + "." + how, "high must be >= low");
            double u = draw.next();
            if (how == "uniform") {
              v = lo + u * (hi - lo);
            } else {
              if (!(lo > 0)) r.fail(arg, f + ".log_uniform", "bounds must be > 0");
              v = std::exp(std::log(lo) + u * (std::log(hi) - std::log(lo)));
            }
            if (info->kind == kernels::ParamInfo::Int) v = std::round(std::get<double>(v));
          } else {
            r.fail(spec, f, "unknown distribution '" + how + "' (valid: uniform, log_uniform, choice)");
          }
        } else {
          r.fail(spec, f, "expected a value or one of {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {choice: [...]}");
        }
        set(s, name, v, spec, f);
      }
      out.push_back(validated(s, rs, rf));
      from(rs, rf);
    }
  }
  if (out.empty()) {
    S s = defaults;
    s.name = "default";
    out.push_back(validated(s, sec, field));
    from(sec, field);
  }
  if (out.size() > kMaxSettings) r.fail(sec, field, "more than " + std::to_string(kMaxSettings) + " settings");
  return out;
}

std::vector<ImageSource> parse_images(const Reader& r, const YAML::Node& n, const std::string& field) {
  if (!n) r.fail(n, field, "missing: list image files or a dataset slice");
  std::vector<ImageSource> out;
  std::vector<YAML::Node> list;
  if (n.IsMap()) list.push_back(n);
  else list = r.items(n, field);
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& it = list[i];
    std::string f = n.IsSequence() ? field + "[" + std::to_string(i) + "]" : field;
    if (it.IsScalar()) {
      ImageSource s;
      s.file = r.path(it.Scalar());
      s.id = it.Scalar();
      std::error_code ec;
      if (!fs::is_regular_file(s.file, ec)) r.fail(it, f, "no such image file: " + s.file);
      out.push_back(s);
      continue;
    }
    r.check_keys(it, f, {"dataset", "split", "root", "idx_images", "idx_labels", "start", "count"});
    std::string images, labels, name;
    if (it["dataset"]) {
      name = r.str(it["dataset"], f + ".dataset");
      if (name != "fashion-mnist" && name != "mnist")
        r.fail(it["dataset"], f + ".dataset", "unknown dataset '" + name + "' (valid: fashion-mnist, mnist; or give idx_images)");
      std::string split = it["split"] ? r.str(it["split"], f + ".split") : "test";
      if (split != "test" && split != "train") r.fail(it["split"], f + ".split", "expected test or train");
      std::string root = it["root"] ? r.path(r.str(it["root"], f + ".root")) : "/usr/share/datasets/" + name;
      std::string stem = split == "test" ? "t10k" : "train";
      images = root + "/" + stem + "-images-idx3-ubyte.gz";
      labels = root + "/" + stem + "-labels-idx1-ubyte.gz";
      name += "/" + split;
    } else if (it["idx_images"]) {
      images = r.path(r.str(it["idx_images"], f + ".idx_images"));
      if (it["idx_labels"]) labels = r.path(r.str(it["idx_labels"], f + ".idx_labels"));
      name = it["idx_images"].Scalar();
    } else {
      r.fail(it, f, "a dataset slice needs 'dataset' or 'idx_images'");
    }
    std::error_code ec;
    if (!fs::is_regular_file(images, ec)) r.fail(it, f, "no such dataset file: " + images + (it["dataset"] ? " (install dataset-" + it["dataset"].Scalar() + ")" : ""));
    int64_t total = 0;
    try {
      total = idx_count(images);
      if (!labels.empty() && idx_count(labels) != total) r.fail(it, f, "labels and images differ in count");
    } catch (const Error& e) {
      r.fail(it, f, e.what());
    }
    int64_t start = it["start"] ? r.integer(it["start"], f + ".start", 0, total) : 0;
    int64_t count = it["count"] ? r.integer(it["count"], f + ".count", 1, total) : total - start;
    if (start + count > total)
      r.fail(it["count"], f + ".count", "slice " + std::to_string(start) + "+" + std::to_string(count) + " exceeds the " +
                                          std::to_string(total) + " images of " + images);
    for (int64_t k = start; k < start + count; ++k) {
      ImageSource s;
      s.idx_images = images;
      s.idx_labels = labels;
      s.index = k;
      s.id = name + "#" + std::to_string(k);
      out.push_back(s);
    }
  }
  if (out.empty()) r.fail(n, field, "no images");
  return out;
}

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
  r.check_keys(root, "", {"name", "model", "device", "threads", "max_attempts", "batch_memory_gb", "precision", "channels_last", "actmax", "invert", "fgsm", "featuremaps"});
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
  if (root["precision"]) {
    spec.precision = r.str(root["precision"], "precision");
    if (spec.precision != "fp32" && spec.precision != "bf16" && spec.precision != "fp16")
      r.fail(root["precision"], "precision", "expected fp32, bf16 or fp16");
    if (spec.precision == "fp16" && spec.device == "cpu")
      r.fail(root["precision"], "precision", "fp16 needs device: cuda (or auto on GPU nodes); CPUs compute bf16");
  }
  if (root["channels_last"]) spec.channels_last = r.boolean(root["channels_last"], "channels_last");

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

  if (const auto& a = root["actmax"]) {
    r.check_keys(a, "actmax", {"layers", "units", "units_per_batch", "objective", "presets", "grid", "random", "seeds"});
    ActmaxSection s;
    if (!a["layers"]) r.fail(a, "actmax.layers", "missing: list layers or say all");
    s.layers = parse_layers(r, a["layers"], "actmax.layers", s.all_layers);
    if (a["units"]) {
      s.units_line = a["units"].Mark().line + 1;
      if (!(a["units"].IsScalar() && a["units"].Scalar() == "all")) {
        auto list = r.items(a["units"], "actmax.units");
        for (size_t i = 0; i < list.size(); ++i)
          parse_unit_item(r, list[i], a["units"].IsSequence() ? "actmax.units[" + std::to_string(i) + "]" : "actmax.units", s.units);
        std::sort(s.units.begin(), s.units.end());
        s.units.erase(std::unique(s.units.begin(), s.units.end()), s.units.end());
      }
    }
    if (a["units_per_batch"]) s.units_per_batch = r.integer(a["units_per_batch"], "actmax.units_per_batch", 1, 65536);
    if (a["objective"]) {
      try {
        s.objective = kernels::parse_objective_kind(r.str(a["objective"], "actmax.objective"));
      } catch (const Error& e) {
        r.fail(a["objective"], "actmax.objective", e.reason_only());
      }
    }
    kernels::ActMaxSettings defaults = kernels::actmax_preset("unregularized");
    s.settings = parse_settings<kernels::ActMaxSettings>(r, a, "actmax", kernels::actmax_params(), kernels::actmax_preset, defaults,
                                                         &s.setting_at);
    if (a["seeds"]) s.seeds = parse_seeds(r, a["seeds"], "actmax.seeds");
    spec.actmax = s;
  }
  if (const auto& a = root["invert"]) {
    r.check_keys(a, "invert", {"layers", "images", "images_per_batch", "grid", "random", "seeds"});
    InvertSection s;
    if (!a["layers"]) r.fail(a, "invert.layers", "missing: list layers or say all");
    s.layers = parse_layers(r, a["layers"], "invert.layers", s.all_layers);
    s.images = parse_images(r, a["images"], "invert.images");
    if (a["images_per_batch"]) s.images_per_batch = r.integer(a["images_per_batch"], "invert.images_per_batch", 1, 65536);
    s.settings = parse_settings<kernels::InversionSettings>(r, a, "invert", kernels::inversion_params(), nullptr,
                                                            kernels::InversionSettings{});
    if (a["seeds"]) s.seeds = parse_seeds(r, a["seeds"], "invert.seeds");
    spec.invert = s;
  }
  if (const auto& a = root["fgsm"]) {
    r.check_keys(a, "fgsm", {"images", "images_per_batch", "eps", "steps", "step_size", "targeted", "target_offset"});
    FgsmSection s;
    s.images = parse_images(r, a["images"], "fgsm.images");
    if (a["images_per_batch"]) s.images_per_batch = r.integer(a["images_per_batch"], "fgsm.images_per_batch", 1, 65536);
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
    if (a["target_offset"]) s.target_offset = r.integer(a["target_offset"], "fgsm.target_offset", 1, 1000000);
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
          s.settings.push_back(fs_);
          s.setting_names.push_back(std::string(t ? "targeted-" : "") + "eps" + kernels::format_number(e) + "-steps" +
                                    std::to_string(st));
        }
    spec.fgsm = s;
  }
  if (const auto& a = root["featuremaps"]) {
    r.check_keys(a, "featuremaps", {"layers", "images"});
    FeaturemapsSection s;
    bool all = true;
    if (a["layers"]) s.layers = parse_layers(r, a["layers"], "featuremaps.layers", all);
    s.images = parse_images(r, a["images"], "featuremaps.images");
    spec.featuremaps = s;
  }
  if (!spec.actmax && !spec.invert && !spec.fgsm && !spec.featuremaps)
    r.fail_at(1, "sweep", "no technique: add an actmax, invert, fgsm or featuremaps section");
  return spec;
}
}  // namespace

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

void finish(Task& t) {
  t.key = hash_hex(t.canonical);
  t.seed = seed_of(t.key);
}

std::vector<const LayerDesc*> resolve_layers(const Reader& r, const ModelDesc& model, const std::vector<Located>& layers,
                                             bool all, bool conv_and_fc) {
  std::vector<const LayerDesc*> out;
  if (all) {
    for (const auto& L : model.layers)
      if (!conv_and_fc || L.kind == "conv" || L.kind == "fc") out.push_back(&L);
    return out;
  }
  for (const auto& l : layers) {
    const LayerDesc* L = model.find(l.name);
    if (!L) r.fail_at(l.line, l.field, "no layer \"" + l.name + "\" in " + model.arch + " (has " + model.names() + ")");
    out.push_back(L);
  }
  return out;
}

std::string image_ids(const std::vector<ImageSource>& images, const std::vector<int64_t>& idx) {
  std::string s;
  for (int64_t i : idx) s += (s.empty() ? "" : ",") + images[static_cast<size_t>(i)].id;
  return s;
}

}  // namespace

std::vector<Task> expand(const SweepSpec& spec, const ModelDesc& model) {
  Reader r(spec.file, spec.dir);
  std::vector<Task> tasks;
  const std::string head = "model=" + spec.model.identity() + "|size=" + std::to_string(model.input_size) +
                           (spec.precision != "fp32" ? "|precision=" + spec.precision : "");
  const double total_flops = model.layers.empty() ? 0 : model.layers.back().flops_to_here;
  const double total_bytes = model.layers.empty() ? 0 : model.layers.back().bytes_per_item;
  // Items per task: what the sweep asks, lowered so that the working memory fits the budget.
  const double budget = spec.batch_memory_gb * 1024.0 * 1024.0 * 1024.0;
  auto fit = [&](int64_t asked, double bytes_per_item) -> size_t {
    if (bytes_per_item <= 0) return static_cast<size_t>(asked);
    double most = std::floor(budget / bytes_per_item);
    return static_cast<size_t>(std::max<double>(1.0, std::min<double>(static_cast<double>(asked), most)));
  };
  auto add = [&](Task t) {
    finish(t);
    tasks.push_back(std::move(t));
    if (tasks.size() > kMaxTasks) r.fail_at(1, "sweep", "expands to more than " + std::to_string(kMaxTasks) + " tasks");
  };
  if (spec.actmax) {
    const auto& a = *spec.actmax;
    for (size_t i = 0; i < a.settings.size(); ++i)
      if (a.settings[i].jitter >= model.input_size)
        r.fail_at(i < a.setting_at.size() ? a.setting_at[i].line : 1,
                  (i < a.setting_at.size() ? a.setting_at[i].field : std::string("actmax")) + ".jitter",
                  "setting " + a.settings[i].name + ": must be less than the input size (" + std::to_string(model.input_size) +
                      " px), got " + std::to_string(a.settings[i].jitter));
    for (const LayerDesc* L : resolve_layers(r, model, a.layers, a.all_layers, true)) {
      std::vector<int64_t> units = a.units;
      if (units.empty())
        for (int64_t u = 0; u < L->units; ++u) units.push_back(u);
      if (units.back() >= L->units)
        r.fail_at(a.units_line, "actmax.units", "unit " + std::to_string(units.back()) + " out of range for " + L->alias + " (" +
                                                    std::to_string(L->units) + " units: 0.." + std::to_string(L->units - 1) + ")");
      // The centre unit's optimization runs on its receptive-field crop (kernels/actmax).
      const bool crop = a.objective == kernels::ObjectiveKind::CentreUnit;
      const double flops = crop ? L->crop_flops_to_here : L->flops_to_here;
      const double bytes = crop ? L->crop_bytes_per_item : L->bytes_per_item;
      const size_t per_task = fit(a.units_per_batch, bytes);
      for (size_t s = 0; s < a.settings.size(); ++s) {
        const auto& st = a.settings[s];
        std::string sc = kernels::canonical(kernels::key_params(st));
        for (uint64_t seed : a.seeds)
          for (size_t b = 0; b < units.size(); b += per_task) {
            Task t;
            t.technique = Technique::Actmax;
            t.layer = L->alias;
            t.items.assign(units.begin() + static_cast<long>(b),
                           units.begin() + static_cast<long>(std::min(units.size(), b + per_task)));
            t.setting = static_cast<int>(s);
            t.user_seed = seed;
            t.cost = 3.0 * st.iterations * static_cast<double>(t.items.size()) * flops;
            t.memory = static_cast<double>(t.items.size()) * bytes;
            t.canonical = "actmax|" + head + "|layer=" + L->alias + "|units=" + format_ranges(t.items) +
                          "|objective=" + kernels::objective_kind_name(a.objective) + "|" + sc + "|seed=" + std::to_string(seed);
            add(std::move(t));
          }
      }
    }
  }
  if (spec.invert) {
    const auto& a = *spec.invert;
    for (const LayerDesc* L : resolve_layers(r, model, a.layers, a.all_layers, true)) {
      const size_t per_task = fit(a.images_per_batch, L->bytes_per_item);
      for (size_t s = 0; s < a.settings.size(); ++s) {
        std::string sc = kernels::canonical(kernels::key_params(a.settings[s]));
        for (uint64_t seed : a.seeds)
          for (size_t b = 0; b < a.images.size(); b += per_task) {
            Task t;
            t.technique = Technique::Invert;
            t.layer = L->alias;
            for (size_t i = b; i < std::min(a.images.size(), b + per_task); ++i) t.items.push_back(static_cast<int64_t>(i));
            t.setting = static_cast<int>(s);
            t.user_seed = seed;
            t.cost = 3.0 * a.settings[s].iterations * static_cast<double>(t.items.size()) * L->flops_to_here;
            t.memory = static_cast<double>(t.items.size()) * L->bytes_per_item;
            t.canonical = "invert|" + head + "|layer=" + L->alias + "|images=" + image_ids(a.images, t.items) + "|" + sc +
                          "|seed=" + std::to_string(seed);
            add(std::move(t));
          }
      }
    }
  }
  if (spec.fgsm) {
    const auto& a = *spec.fgsm;
    const size_t per_task = fit(a.images_per_batch, total_bytes);
    for (size_t s = 0; s < a.settings.size(); ++s) {
      std::string sc = kernels::canonical(kernels::key_params(a.settings[s]));
      for (size_t b = 0; b < a.images.size(); b += per_task) {
        Task t;
        t.technique = Technique::Fgsm;
        t.layer = "*";
        for (size_t i = b; i < std::min(a.images.size(), b + per_task); ++i) t.items.push_back(static_cast<int64_t>(i));
        t.setting = static_cast<int>(s);
        t.cost = 3.0 * (a.settings[s].steps + 1) * static_cast<double>(t.items.size()) * total_flops;
        t.memory = static_cast<double>(t.items.size()) * total_bytes;
        t.canonical = "fgsm|" + head + "|images=" + image_ids(a.images, t.items) + "|" + sc +
                      "|target_offset=" + std::to_string(a.target_offset);
        add(std::move(t));
      }
    }
  }
  if (spec.featuremaps) {
    const auto& a = *spec.featuremaps;
    auto layers = resolve_layers(r, model, a.layers, a.layers.empty(), false);
    std::string names;
    for (const auto* L : layers) names += (names.empty() ? "" : ",") + L->alias;
    for (size_t i = 0; i < a.images.size(); ++i) {
      Task t;
      t.technique = Technique::Featuremaps;
      t.layer = "*";
      t.items = {static_cast<int64_t>(i)};
      t.cost = total_flops;
      t.memory = total_bytes;
      t.canonical = "featuremaps|" + head + "|layers=" + names + "|images=" + a.images[i].id;
      add(std::move(t));
    }
  }
  // The same work twice (e.g. a preset listed twice) would be one task: refuse it.
  std::set<std::string> keys;
  for (const auto& t : tasks)
    if (!keys.insert(t.key).second)
      r.fail_at(1, technique_name(t.technique), "the same task appears twice (duplicate setting, seed or layer?): " + t.canonical);
  return tasks;
}

std::string spec_hash(const SweepSpec& spec, const std::vector<Task>& tasks) {
  Hasher h;
  h.update(spec.model.identity());
  for (const auto& t : tasks) h.update("|" + t.key);
  return h.hex();
}

}  // namespace vizsweep::sweeps
