// Reading sweep files: the YAML reader whose errors name file, line and field, and the
// readers every technique's section shares (layers, units, seeds, images, settings from
// presets, grids and random search). Used by sweeps/sweep.cpp and sweeps/techniques/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/settings.h"
#include "sweeps/types.h"

namespace vizsweep::sweeps {

using kernels::ParamValue;

inline constexpr size_t kMaxSettings = 100000;

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
    std::filesystem::path q(p);
    return (q.is_absolute() ? q : std::filesystem::path(dir_) / q).lexically_normal().string();
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_, dir_;
};

// Unit lists: "0-63" or "7" appended to `out`.
void parse_unit_item(const Reader& r, const YAML::Node& n, const std::string& field, std::vector<int64_t>& out);
// `units:` as a list of numbers and ranges, sorted and without repeats; `all` gives the empty
// list (every unit). `line` gets the field's line, for range errors found against the model.
std::vector<int64_t> parse_units(const Reader& r, const YAML::Node& n, const std::string& field, int& line);
// A layer list, or `all` (sets `all`).
std::vector<Located> parse_layers(const Reader& r, const YAML::Node& n, const std::string& field, bool& all);
std::vector<uint64_t> parse_seeds(const Reader& r, const YAML::Node& n, const std::string& field);
// Image files, IDX dataset slices and folders of PNG/JPEG images (recursively, in path order;
// `skipped` counts the other files there); files must exist, slices must fit their dataset.
std::vector<ImageSource> parse_images(const Reader& r, const YAML::Node& n, const std::string& field,
                                      int64_t* skipped = nullptr);

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
inline std::vector<S> parse_settings(const Reader& r, const YAML::Node& sec, const std::string& field,
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
      // A preset by name, or {name: {hyperparameter: value, ...}}: the preset with those
      // values changed, named "name+key=value,...".
      const bool changed = list[i].IsMap();
      if (changed && list[i].size() != 1) r.fail(list[i], f, "expected a preset name or {preset: {hyperparameter: value}}");
      const YAML::Node name_node = changed ? YAML::Node(list[i].begin()->first) : list[i];
      S s;
      try {
        s = preset(r.str(name_node, f));
      } catch (const Error& e) {
        r.fail(name_node, f, e.reason_only());
      }
      if (changed) {
        const YAML::Node values = list[i].begin()->second;
        if (!values.IsMap() || values.size() == 0) r.fail(values, f, "expected a mapping of hyperparameters to values");
        std::string suffix;
        for (const auto& kv : values) {
          const std::string key = r.key(kv.first, f), kf = f + "." + key;
          const YAML::Node value = kv.second;
          set(s, key, r.param(value, kf), value, kf);
          suffix += (suffix.empty() ? "" : ",") + key + "=" + value.Scalar();
        }
        s.name += "+" + suffix;
        s = validated(s, list[i], f);
      }
      out.push_back(s);
      from(list[i], f);
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

}  // namespace vizsweep::sweeps
