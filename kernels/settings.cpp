#include "kernels/settings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "kernels/error.h"

namespace vizsweep::kernels {

const char* objective_kind_name(ObjectiveKind kind) {
  return kind == ObjectiveKind::CentreUnit ? "centre" : "channel_mean";
}

ObjectiveKind parse_objective_kind(const std::string& name) {
  if (name == "centre" || name == "center") return ObjectiveKind::CentreUnit;
  if (name == "channel_mean") return ObjectiveKind::ChannelMean;
  throw Error("objective", "unknown objective '" + name + "' (have centre, channel_mean)");
}

const char* lr_policy_name(LrPolicy p) {
  switch (p) {
    case LrPolicy::Constant: return "constant";
    case LrPolicy::Progress: return "progress";
    case LrPolicy::Normalized: return "normalized";
  }
  return "?";
}

LrPolicy parse_lr_policy(const std::string& name) {
  if (name == "constant") return LrPolicy::Constant;
  if (name == "progress") return LrPolicy::Progress;
  if (name == "normalized") return LrPolicy::Normalized;
  throw Error("lr_policy", "unknown policy '" + name + "' (have constant, progress, normalized)");
}

namespace {
std::string fmt(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
}  // namespace

void validate(const ActMaxSettings& s) {
  const std::string p = s.name.empty() ? "" : "setting " + s.name + ": ";
  if (s.iterations < 1) throw Error("iterations", p + "must be >= 1, got " + std::to_string(s.iterations));
  if (!(s.lr > 0) || !std::isfinite(s.lr)) throw Error("lr", p + "must be a finite number > 0, got " + fmt(s.lr));
  if (s.lr_policy == LrPolicy::Progress && !(s.progress_target > 0 && std::isfinite(s.progress_target)))
    throw Error("progress_target", p + "must be > 0, got " + fmt(s.progress_target));
  if (!(s.decay >= 0 && s.decay < 1)) throw Error("decay", p + "must be in [0, 1), got " + fmt(s.decay));
  if (!(s.blur_radius >= 0 && std::isfinite(s.blur_radius))) throw Error("blur_radius", p + "must be >= 0");
  if (s.blur_radius > 0 && s.blur_every < 1)
    throw Error("blur_every", p + "must be >= 1 when blur_radius > 0, got " + std::to_string(s.blur_every));
  if (s.blur_every < 0) throw Error("blur_every", p + "must be >= 0");
  if (!(s.norm_pct >= 0 && s.norm_pct < 100)) throw Error("norm_pct", p + "must be in [0, 100), got " + fmt(s.norm_pct));
  if (!(s.contrib_pct >= 0 && s.contrib_pct < 100))
    throw Error("contrib_pct", p + "must be in [0, 100), got " + fmt(s.contrib_pct));
  if (!(s.init_std >= 0 && std::isfinite(s.init_std))) throw Error("init_std", p + "must be >= 0");
}

std::vector<std::string> actmax_preset_names() {
  return {"unregularized", "yosinski1", "yosinski2", "yosinski3", "yosinski4"};
}

ActMaxSettings actmax_preset(const std::string& name) {
  ActMaxSettings s;
  s.name = name;
  if (name == "unregularized") {
    s.iterations = 200;
    s.lr_policy = LrPolicy::Normalized;
    s.lr = 2.0;
  } else if (name == "yosinski1") {
    s.iterations = 500, s.lr_policy = LrPolicy::Progress, s.lr = 100, s.progress_target = 2.0;
    s.blur_radius = 0.5, s.blur_every = 4, s.norm_pct = 50;
  } else if (name == "yosinski2") {
    s.iterations = 750, s.lr_policy = LrPolicy::Constant, s.lr = 100;
    s.decay = 0.3, s.norm_pct = 20;
  } else if (name == "yosinski3") {
    s.iterations = 1000, s.lr_policy = LrPolicy::Constant, s.lr = 100;
    s.decay = 0.0001, s.blur_radius = 1.0, s.blur_every = 4;
  } else if (name == "yosinski4") {
    s.iterations = 1000, s.lr_policy = LrPolicy::Progress, s.lr = 1e8, s.progress_target = 2.0;
    s.blur_radius = 0.5, s.blur_every = 4, s.contrib_pct = 90;
  } else {
    std::string have;
    for (const auto& n : actmax_preset_names()) have += (have.empty() ? "" : ", ") + n;
    throw Error("preset", "unknown preset '" + name + "' (have " + have + ")");
  }
  return s;
}

void validate(const InversionSettings& s) {
  const std::string p = s.name.empty() ? "" : "setting " + s.name + ": ";
  if (s.iterations < 1) throw Error("iterations", p + "must be >= 1");
  if (!(s.lr > 0) || !std::isfinite(s.lr)) throw Error("lr", p + "must be a finite number > 0");
  if (!(s.momentum >= 0 && s.momentum < 1)) throw Error("momentum", p + "must be in [0, 1)");
  for (double f : s.lr_steps)
    if (!(f > 0 && f < 1)) throw Error("lr_steps", p + "fractions must be in (0, 1)");
  if (!(s.lr_decay > 0 && s.lr_decay <= 1)) throw Error("lr_decay", p + "must be in (0, 1]");
  if (!(s.alpha >= 1)) throw Error("alpha", p + "must be >= 1");
  if (!(s.beta >= 1)) throw Error("beta", p + "must be >= 1");
  if (!(s.l_alpha >= 0) || !std::isfinite(s.l_alpha)) throw Error("l_alpha", p + "must be >= 0");
  if (!std::isfinite(s.l_tv)) throw Error("l_tv", p + "must be finite (negative = by depth)");
  if (!(s.init_std >= 0)) throw Error("init_std", p + "must be >= 0");
}

void validate(const FgsmSettings& s) {
  std::ostringstream v;
  v << s.eps;
  if (!(s.eps >= 0 && s.eps <= 1)) throw Error("eps", "must be in [0, 1] (pixel space), got " + v.str());
  if (s.steps < 1) throw Error("steps", "must be >= 1, got " + std::to_string(s.steps));
  if (!(s.step_size >= 0 && s.step_size <= 1)) throw Error("step_size", "must be in [0, 1] (0 = automatic)");
}

double effective_step_size(const FgsmSettings& s) {
  if (s.step_size > 0) return s.step_size;
  if (s.steps == 1) return s.eps;
  return std::min(s.eps, 2.5 * s.eps / s.steps);
}


std::string format_number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest of %.15g..%.17g that reads back as the same double.
  char buf[40];
  for (int prec = 15; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

namespace {

double number(const std::string& name, const ParamValue& v) {
  if (const double* d = std::get_if<double>(&v)) return *d;
  throw Error(name, "expected a number, got '" + std::get<std::string>(v) + "'");
}

int integer(const std::string& name, const ParamValue& v) {
  double d = number(name, v);
  if (d != std::floor(d) || std::fabs(d) > 2e9) throw Error(name, "expected an integer, got " + format_number(d));
  return static_cast<int>(d);
}

std::string text(const std::string& name, const ParamValue& v) {
  if (const std::string* s = std::get_if<std::string>(&v)) return *s;
  throw Error(name, "expected a word, got " + format_number(std::get<double>(v)));
}

bool boolean(const std::string& name, const ParamValue& v) {
  if (const double* d = std::get_if<double>(&v)) {
    if (*d == 0 || *d == 1) return *d == 1;
  } else {
    const auto& s = std::get<std::string>(v);
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
  }
  throw Error(name, "expected true or false");
}

std::vector<double> real_list(const std::string& name, const ParamValue& v) {
  if (const double* d = std::get_if<double>(&v)) return {*d};
  std::vector<double> out;
  std::stringstream ss(std::get<std::string>(v));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(name, "expected comma-separated numbers, got '" + std::get<std::string>(v) + "'");
    }
  }
  return out;
}

std::string join_numbers(const std::vector<double>& v) {
  std::string s;
  for (double d : v) s += (s.empty() ? "" : ",") + format_number(d);
  return s;
}

[[noreturn]] void unknown(const std::string& name, const std::vector<ParamInfo>& params) {
  std::string have;
  for (const auto& p : params) have += (have.empty() ? "" : ", ") + p.name;
  throw Error(name, "unknown hyperparameter (valid: " + have + ")");
}

}  // namespace

const std::vector<ParamInfo>& actmax_params() {
  static const std::vector<ParamInfo> p = {
      {"iterations", ParamInfo::Int, {}},
      {"lr_policy", ParamInfo::Choice, {"constant", "progress", "normalized"}},
      {"lr", ParamInfo::Real, {}},
      {"progress_target", ParamInfo::Real, {}},
      {"decay", ParamInfo::Real, {}},
      {"blur_radius", ParamInfo::Real, {}},
      {"blur_every", ParamInfo::Int, {}},
      {"norm_pct", ParamInfo::Real, {}},
      {"contrib_pct", ParamInfo::Real, {}},
      {"init_std", ParamInfo::Real, {}},
  };
  return p;
}

const std::vector<ParamInfo>& inversion_params() {
  static const std::vector<ParamInfo> p = {
      {"iterations", ParamInfo::Int, {}},   {"lr", ParamInfo::Real, {}},
      {"momentum", ParamInfo::Real, {}},    {"lr_steps", ParamInfo::RealList, {}},
      {"lr_decay", ParamInfo::Real, {}},    {"alpha", ParamInfo::Real, {}},
      {"beta", ParamInfo::Real, {}},        {"l_alpha", ParamInfo::Real, {}},
      {"l_tv", ParamInfo::Real, {}},        {"init_std", ParamInfo::Real, {}},
      {"normalize_grad", ParamInfo::Bool, {}},
  };
  return p;
}

const std::vector<ParamInfo>& fgsm_params() {
  static const std::vector<ParamInfo> p = {
      {"eps", ParamInfo::Real, {}},
      {"steps", ParamInfo::Int, {}},
      {"step_size", ParamInfo::Real, {}},
      {"targeted", ParamInfo::Bool, {}},
  };
  return p;
}

void set_param(ActMaxSettings& s, const std::string& n, const ParamValue& v) {
  if (n == "iterations") s.iterations = integer(n, v);
  else if (n == "lr_policy") s.lr_policy = parse_lr_policy(text(n, v));
  else if (n == "lr") s.lr = number(n, v);
  else if (n == "progress_target") s.progress_target = number(n, v);
  else if (n == "decay") s.decay = number(n, v);
  else if (n == "blur_radius") s.blur_radius = number(n, v);
  else if (n == "blur_every") s.blur_every = integer(n, v);
  else if (n == "norm_pct") s.norm_pct = number(n, v);
  else if (n == "contrib_pct") s.contrib_pct = number(n, v);
  else if (n == "init_std") s.init_std = number(n, v);
  else unknown(n, actmax_params());
}

void set_param(InversionSettings& s, const std::string& n, const ParamValue& v) {
  if (n == "iterations") s.iterations = integer(n, v);
  else if (n == "lr") s.lr = number(n, v);
  else if (n == "momentum") s.momentum = number(n, v);
  else if (n == "lr_steps") s.lr_steps = real_list(n, v);
  else if (n == "lr_decay") s.lr_decay = number(n, v);
  else if (n == "alpha") s.alpha = number(n, v);
  else if (n == "beta") s.beta = number(n, v);
  else if (n == "l_alpha") s.l_alpha = number(n, v);
  else if (n == "l_tv") s.l_tv = number(n, v);
  else if (n == "init_std") s.init_std = number(n, v);
  else if (n == "normalize_grad") s.normalize_grad = boolean(n, v);
  else unknown(n, inversion_params());
}

void set_param(FgsmSettings& s, const std::string& n, const ParamValue& v) {
  if (n == "eps") s.eps = number(n, v);
  else if (n == "steps") s.steps = integer(n, v);
  else if (n == "step_size") s.step_size = number(n, v);
  else if (n == "targeted") s.targeted = boolean(n, v);
  else unknown(n, fgsm_params());
}

std::vector<std::pair<std::string, ParamValue>> params_of(const ActMaxSettings& s) {
  return {{"iterations", double(s.iterations)}, {"lr_policy", std::string(lr_policy_name(s.lr_policy))},
          {"lr", s.lr},                         {"progress_target", s.progress_target},
          {"decay", s.decay},                   {"blur_radius", s.blur_radius},
          {"blur_every", double(s.blur_every)}, {"norm_pct", s.norm_pct},
          {"contrib_pct", s.contrib_pct},       {"init_std", s.init_std}};
}

std::vector<std::pair<std::string, ParamValue>> params_of(const InversionSettings& s) {
  return {{"iterations", double(s.iterations)}, {"lr", s.lr},
          {"momentum", s.momentum},             {"lr_steps", join_numbers(s.lr_steps)},
          {"lr_decay", s.lr_decay},             {"alpha", s.alpha},
          {"beta", s.beta},                     {"l_alpha", s.l_alpha},
          {"l_tv", s.l_tv},                     {"init_std", s.init_std},
          {"normalize_grad", double(s.normalize_grad)}};
}

std::vector<std::pair<std::string, ParamValue>> params_of(const FgsmSettings& s) {
  return {{"eps", s.eps}, {"steps", double(s.steps)}, {"step_size", s.step_size}, {"targeted", double(s.targeted)}};
}

std::string canonical(const std::vector<std::pair<std::string, ParamValue>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    out += (out.empty() ? "" : ";") + k + "=";
    out += std::holds_alternative<double>(v) ? format_number(std::get<double>(v)) : std::get<std::string>(v);
  }
  return out;
}

}  // namespace vizsweep::kernels
