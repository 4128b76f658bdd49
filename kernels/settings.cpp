#include "kernels/settings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
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

namespace {
std::string fmt(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
}  // namespace

std::vector<std::string> actmax_preset_names() {
  return {"unregularized", "yosinski1", "yosinski2", "yosinski3", "yosinski4", "olah2017"};
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
  } else if (name == "olah2017") {
    // Lucid's render_vis defaults: fft_image (decay_power 1) through to_valid_rgb (decorrelated
    // colour, sigmoid), Adam 0.05, 512 steps, standard_transforms: pad(12), jitter(8), random
    // scale 0.9..1.1, random rotate -10..10 degrees (its final jitter(4) is not modelled).
    // Sizes as fractions of Lucid's 224 px input: 12/224 -> 0.054, 8/224 -> 0.036.
    s.iterations = 512, s.lr_policy = LrPolicy::Adam, s.lr = 0.05, s.init_std = 0;
    s.param = ImageParam::Fft, s.decay_power = 1, s.decorrelate = true;
    s.pad = 0.054, s.jitter = 0.036, s.scale = 0.1, s.rotate = 10;
  } else {
    std::string have;
    for (const auto& n : actmax_preset_names()) have += (have.empty() ? "" : ", ") + n;
    throw Error("preset", "unknown preset '" + name + "' (have " + have + ")");
  }
  return s;
}

double effective_step_size(const FgsmSettings& s) {
  if (s.attack == Attack::ApgdCe || s.attack == Attack::ApgdDlr) return 2 * s.eps;
  if (s.step_size > 0) return s.step_size;
  if (s.steps == 1) return s.eps;
  if (s.attack == Attack::MiFgsm) return s.eps / s.steps;
  return std::min(s.eps, 2.5 * s.eps / s.steps);
}

const char* attack_name(Attack a) {
  static const char* const names[] = {"fgsm", "pgd", "mifgsm", "apgd-ce", "apgd-dlr"};
  return names[static_cast<int>(a)];
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

constexpr double kInf = std::numeric_limits<double>::infinity();

// One hyperparameter of settings struct S: its declaration and how to read and write it.
template <typename S>
struct Field {
  ParamInfo info;
  std::function<ParamValue(const S&)> get;
  std::function<void(S&, const ParamValue&)> set;

  // Builders for the tables below.
  Field& range(double lo, double hi, bool lo_open = false, bool hi_open = false) {
    info.lo = lo, info.hi = hi, info.lo_open = lo_open, info.hi_open = hi_open;
    return *this;
  }
  Field& at_least(double lo) { return range(lo, kInf); }
  Field& above(double lo) { return range(lo, kInf, true); }
  Field& off(const char* v) { return info.off = v, *this; }
  Field& note(const char* v) { return info.note = v, *this; }
  Field& help(const char* v) { return info.help = v, *this; }
  // Added after schema 1.1: in a task key only when not at its default.
  Field& new_in_key_only_when_set() { return info.always_in_key = false, *this; }
  Field& transform() { return info.transform = true, *this; }
};

// A field of type T stored in member m: `out` turns its value into a ParamValue, `in` reads
// one back (with the type checks and the error naming the field).
template <typename S, typename T, typename Out>
Field<S> make_field(const char* name, ParamInfo::Kind kind, T S::*m, Out out, T (*in)(const std::string&, const ParamValue&)) {
  Field<S> f;
  f.info.name = name;
  f.info.kind = kind;
  f.get = [m, out](const S& s) { return ParamValue(out(s.*m)); };
  f.set = [m, name, in](S& s, const ParamValue& v) { s.*m = in(name, v); };
  return f;
}

template <typename S>
Field<S> int_field(const char* name, int S::*m) {
  return make_field<S>(name, ParamInfo::Int, m, [](int v) { return double(v); }, integer);
}
template <typename S>
Field<S> real_field(const char* name, double S::*m) {
  return make_field<S>(name, ParamInfo::Real, m, [](double v) { return v; }, number);
}
template <typename S>
Field<S> bool_field(const char* name, bool S::*m) {
  return make_field<S>(name, ParamInfo::Bool, m, [](bool v) { return double(v); }, boolean);
}
// A number kept in the settings' `extra` map (no struct field), `fallback` when not set.
template <typename S>
Field<S> extra_real_field(const char* name, double fallback) {
  Field<S> f;
  f.info.name = name;
  f.info.kind = ParamInfo::Real;
  f.get = [name, fallback](const S& s) {
    auto it = s.extra.find(name);
    return ParamValue(it == s.extra.end() ? fallback : it->second);
  };
  f.set = [name](S& s, const ParamValue& v) { s.extra[name] = number(name, v); };
  return f;
}
template <typename S>
Field<S> real_list_field(const char* name, std::vector<double> S::*m) {
  return make_field<S>(name, ParamInfo::RealList, m, join_numbers, real_list);
}

// An enum whose values are 0..choices-1 in the order of `choices`; `noun` names a value in
// errors ("unknown policy 'adam'").
template <typename S, typename E>
Field<S> choice_field(const char* name, E S::*m, std::vector<std::string> choices, const char* noun) {
  Field<S> f;
  f.info.name = name;
  f.info.kind = ParamInfo::Choice;
  f.info.choices = choices;
  f.get = [m, choices](const S& s) { return ParamValue(choices.at(static_cast<size_t>(s.*m))); };
  f.set = [m, name, choices, noun](S& s, const ParamValue& v) {
    const std::string t = text(name, v);
    auto it = std::find(choices.begin(), choices.end(), t);
    if (it == choices.end()) {
      std::string have;
      for (const auto& c : choices) have += (have.empty() ? "" : ", ") + c;
      throw Error(name, std::string("unknown ") + noun + " '" + t + "' (have " + have + ")");
    }
    s.*m = static_cast<E>(it - choices.begin());
  };
  return f;
}

// The declarations. Order = the settings table's column order and the canonical key's.
using A = ActMaxSettings;
const std::vector<Field<A>>& actmax_table() {
  static const std::vector<Field<A>> t = [] {
    std::vector<Field<A>> v;
    v.push_back(int_field<A>("iterations", &A::iterations).at_least(1).help("gradient steps per image"));
    v.push_back(choice_field<A>("lr_policy", &A::lr_policy, {"constant", "progress", "normalized", "adam"}, "policy")
                    .help("step size: constant lr * grad; progress min(lr, target / |grad|^2) * grad; "
                          "normalized lr * grad / mean|grad| (pixels move about lr grey levels); adam: Adam "
                          "with adam_beta1/adam_beta2 (pixels move about lr grey levels)"));
    v.push_back(real_field<A>("lr", &A::lr).above(0).help("learning rate (the cap under the progress policy)"));
    v.push_back(real_field<A>("progress_target", &A::progress_target)
                    .help("first-order gain per step under the progress policy (> 0 there)"));
    v.push_back(real_field<A>("decay", &A::decay).range(0, 1, false, true).off("0").help("L2 decay per step"));
    v.push_back(real_field<A>("blur_radius", &A::blur_radius).at_least(0).off("0").help("Gaussian blur sigma, pixels"));
    v.push_back(int_field<A>("blur_every", &A::blur_every).at_least(0).off("0")
                    .help("blur every k steps (>= 1 when blur_radius > 0)"));
    v.push_back(real_field<A>("norm_pct", &A::norm_pct).range(0, 100, false, true).off("0")
                    .help("zero the pixels whose norm is below this percentile"));
    v.push_back(real_field<A>("contrib_pct", &A::contrib_pct).range(0, 100, false, true).off("0")
                    .help("zero the pixels whose contribution |x * grad| is below this percentile"));
    v.push_back(real_field<A>("init_std", &A::init_std).at_least(0).help("initial noise, pixel scale 0..255"));
    // Schema 1.2.
    v.push_back(real_field<A>("adam_beta1", &A::adam_beta1).range(0, 1, false, true).new_in_key_only_when_set()
                    .help("adam policy: decay of the gradient's running mean"));
    v.push_back(real_field<A>("adam_beta2", &A::adam_beta2).range(0, 1, false, true).new_in_key_only_when_set()
                    .help("adam policy: decay of the squared gradient's running mean"));
    v.push_back(real_field<A>("jitter", &A::jitter).at_least(0).off("0").new_in_key_only_when_set().transform()
                    .help("every step, translate each image by a random (dy, dx) in [-jitter, jitter] pixels "
                          "before the forward pass (wrap-around, or against the background under pad); below 1 a fraction "
                          "of the input size, else whole pixels; less than the input size"));
    v.push_back(choice_field<A>("param", &A::param, {"pixel", "fft", "maco"}, "parameterization").new_in_key_only_when_set()
                    .help("what is optimized: the pixels; a 1/f-scaled spectrum rendered through a sigmoid "
                          "(Lucid's fft; the regularizers act on the rendered pixels); or maco, the spectrum's phase "
                          "under a fixed natural-image magnitude (Fel et al. 2023; the exemplar dataset's when the "
                          "sweep has one, else 1/f; no regularizers)"));
    v.push_back(real_field<A>("decay_power", &A::decay_power).at_least(0).new_in_key_only_when_set()
                    .help("fft: the spectrum's scale is 1 / max(f, 1/size)^decay_power (0: white)"));
    // Schema 1.3.
    v.push_back(real_field<A>("scale", &A::scale).range(0, 1, false, true).off("0").new_in_key_only_when_set().transform()
                    .help("every step, scale each image about its centre by a random factor in "
                          "[1 - scale, 1 + scale] (after jitter; the uncovered border takes the background level)"));
    v.push_back(real_field<A>("rotate", &A::rotate).range(0, 180).off("0").new_in_key_only_when_set().transform()
                    .help("every step, rotate each image about its centre by a random angle in "
                          "[-rotate, rotate] degrees (with scale, one resampling)"));
    // Schema 1.4.
    v.push_back(real_field<A>("pad", &A::pad).at_least(0).off("0").new_in_key_only_when_set().transform()
                    .help("the transforms act on the image framed by pad pixels of the background level and the "
                          "model sees the centre (jitter then moves it against that frame); below 1 a fraction of the "
                          "input size, else whole pixels; less than the input size"));
    v.push_back(bool_field<A>("decorrelate", &A::decorrelate).off("0").new_in_key_only_when_set()
                    .help("fft on 3-channel models: optimize in Lucid's decorrelated colour basis (no effect "
                          "on other channel counts)"));
    v.push_back(real_field<A>("background", &A::background).range(0, 1, true, true).new_in_key_only_when_set()
                    .help("the empty image's grey level in (0, 1): what a zero fft spectrum renders to and what "
                          "pad, scale and rotation fill in (Lucid 0.5; near 0 for a dataset with a black "
                          "background such as Fashion-MNIST)"));
    v.push_back(bool_field<A>("flip", &A::flip).off("0").new_in_key_only_when_set().transform()
                    .help("every step, mirror each image left-right with probability 1/2 before the other "
                          "transforms (for models trained with random flips)"));
    // Schema 1.6.
    v.push_back(real_field<A>("diversity_weight", &A::diversity_weight).at_least(0).new_in_key_only_when_set()
                    .help("under actmax.diversity N > 1: the weight of the diversity penalty (Lucid's: each "
                          "image's Gram matrix over channels against the unit's other images) added to the unit's "
                          "activation; no effect with one image per unit"));
    // The transforms of kernels/optvis/transforms/ (schema 1.6 on), one row each, last: a new
    // one is a new column at the end of an index's table.
    v.push_back(extra_real_field<A>("brightness", 0).range(0, 1, false, true).off("0").new_in_key_only_when_set().transform()
                    .help("every step, add a random offset in [-brightness, brightness] to each image's pixels "
                          "(all channels, [0, 1] scale) after the spatial transforms"));
    v.push_back(extra_real_field<A>("contrast", 0).range(0, 1, false, true).off("0").new_in_key_only_when_set().transform()
                    .help("every step, scale each image's pixels about the background level by a random factor in "
                          "[1 - contrast, 1 + contrast] after the spatial transforms"));
    // Schema 1.9.
    v.push_back(extra_real_field<A>("diversity_until", 1).range(0, 1, true, false).new_in_key_only_when_set()
                    .help("under actmax.diversity N > 1: the share of the iterations the diversity penalty acts "
                          "in; the rest ascend the unit alone, each image from where the penalty left it (1: "
                          "every iteration, Lucid's)"));
    return v;
  }();
  return t;
}

using I = InversionSettings;
const std::vector<Field<I>>& inversion_table() {
  static const std::vector<Field<I>> t = [] {
    std::vector<Field<I>> v;
    v.push_back(int_field<I>("iterations", &I::iterations).at_least(1).help("gradient steps"));
    v.push_back(real_field<I>("lr", &I::lr).above(0).help("initial learning rate, pixel space [0, 1]"));
    v.push_back(real_field<I>("momentum", &I::momentum).range(0, 1, false, true).help("SGD momentum"));
    v.push_back(real_list_field<I>("lr_steps", &I::lr_steps).range(0, 1, true, true)
                    .help("fractions of the run where the learning rate is cut"));
    v.push_back(real_field<I>("lr_decay", &I::lr_decay).range(0, 1, true, false).help("factor applied at each cut"));
    v.push_back(real_field<I>("alpha", &I::alpha).at_least(1).help("exponent of the alpha-norm prior"));
    v.push_back(real_field<I>("beta", &I::beta).at_least(1).help("exponent of the total-variation prior"));
    v.push_back(real_field<I>("l_alpha", &I::l_alpha).at_least(0).off("0").help("weight of the alpha-norm prior"));
    v.push_back(real_field<I>("l_tv", &I::l_tv).note("(negative = by depth)")
                    .help("weight of the total-variation prior; negative: by depth, as in the paper"));
    v.push_back(real_field<I>("init_std", &I::init_std).at_least(0).help("initial noise around the mean image"));
    v.push_back(bool_field<I>("normalize_grad", &I::normalize_grad).help("scale each image's gradient to unit mean |g|"));
    // Schema 1.6.
    v.push_back(choice_field<I>("param", &I::param, {"pixel", "fft"}, "parameterization").new_in_key_only_when_set()
                    .help("what is optimized: the pixels, or the image's 1/f-scaled spectrum rendered through a "
                          "sigmoid (activation maximization's fft: a spectral prior on the reconstruction)"));
    v.push_back(real_field<I>("decay_power", &I::decay_power).at_least(0).new_in_key_only_when_set()
                    .help("fft: the spectrum's scale is 1 / max(f, 1/size)^decay_power (0: white)"));
    return v;
  }();
  return t;
}

using F = FgsmSettings;
const std::vector<Field<F>>& fgsm_table() {
  static const std::vector<Field<F>> t = [] {
    std::vector<Field<F>> v;
    v.push_back(real_field<F>("eps", &F::eps).at_least(0).note("(pixel space)")
                    .help("budget, pixel space: L-inf in [0, 1]; L2 the radius of the ball"));
    v.push_back(int_field<F>("steps", &F::steps).at_least(1).help("1 = FGSM; more = iterative FGSM"));
    v.push_back(real_field<F>("step_size", &F::step_size).at_least(0).note("(0 = automatic)")
                    .help("per step; 0 = automatic: eps for one step, else min(eps, 2.5 eps / steps) (mifgsm: "
                          "eps / steps; apgd-*: 2 eps at the start, halved at its checkpoints)"));
    v.push_back(bool_field<F>("targeted", &F::targeted).help("labels are targets: move towards them"));
    // Schema 1.8.
    v.push_back(choice_field<F>("attack", &F::attack, {"fgsm", "pgd", "mifgsm", "apgd-ce", "apgd-dlr"}, "attack")
                    .new_in_key_only_when_set()
                    .help("fgsm (iterative with steps > 1); pgd: from a random start, with restarts; mifgsm: "
                          "momentum; apgd-ce: APGD on the cross-entropy; apgd-dlr: APGD on the targeted DLR loss "
                          "against each of the top 9 other classes"));
    v.push_back(choice_field<F>("norm", &F::norm, {"linf", "l2"}, "norm").new_in_key_only_when_set()
                    .help("the ball of the budget: linf (each pixel moves at most eps) or l2 (the perturbation's "
                          "Euclidean norm at most eps)"));
    v.push_back(int_field<F>("restarts", &F::restarts).at_least(1).new_in_key_only_when_set()
                    .help("pgd, apgd-*: runs from independent random starts (apgd-dlr: per target); broken when "
                          "any run breaks the image"));
    v.push_back(real_field<F>("momentum", &F::momentum).range(0, 1).new_in_key_only_when_set()
                    .help("mifgsm: decay factor of the accumulated gradient (1 in the paper)"));
    v.push_back(int_field<F>("seed", &F::seed).at_least(0).new_in_key_only_when_set()
                    .help("random starts: image i's run r draws from a generator seeded by (seed, i, r) alone"));
    v.push_back(choice_field<F>("target_mode", &F::target_mode, {"offset", "random", "least_likely", "all"}, "target mode")
                    .new_in_key_only_when_set()
                    .help("targeted attacks: the class (label + target_offset) mod classes, one drawn at random per "
                          "image (seeded by seed and its id), the one the clean image scores lowest, or every other "
                          "class in turn (broken when any is reached)"));
    return v;
  }();
  return t;
}

template <typename S>
std::vector<ParamInfo> infos(const std::vector<Field<S>>& table) {
  std::vector<ParamInfo> out;
  const S defaults{};
  for (const auto& f : table) {
    out.push_back(f.info);
    out.back().default_value = f.get(defaults);
  }
  return out;
}

template <typename S>
const Field<S>& field_of(const std::vector<Field<S>>& table, const std::vector<ParamInfo>& infos, const std::string& name) {
  for (const auto& f : table)
    if (f.info.name == name) return f;
  param_info(infos, name);  // throws the unknown-name error
  throw Error(name, "unknown hyperparameter");
}

template <typename S>
std::vector<std::pair<std::string, ParamValue>> values(const std::vector<Field<S>>& table, const S& s, bool key_only) {
  std::vector<std::pair<std::string, ParamValue>> out;
  const S defaults{};
  for (const auto& f : table) {
    ParamValue v = f.get(s);
    if (key_only && !f.info.always_in_key && v == f.get(defaults)) continue;
    out.push_back({f.info.name, v});
  }
  return out;
}

// The range checks of every field, in table order; `prefix` names the setting.
template <typename S>
void check_ranges(const std::vector<Field<S>>& table, const S& s, const std::string& prefix) {
  for (const auto& f : table) {
    ParamValue v = f.get(s);
    if (f.info.kind == ParamInfo::Int || f.info.kind == ParamInfo::Real) {
      f.info.check(std::get<double>(v), prefix);
    } else if (f.info.kind == ParamInfo::RealList) {
      for (double d : real_list(f.info.name, v)) f.info.check(d, prefix);
    }
  }
}

}  // namespace

bool ParamInfo::in_range(double v) const {
  if (!std::isfinite(v)) return false;
  if (lo_open ? !(v > lo) : !(v >= lo)) return false;
  if (hi_open ? !(v < hi) : !(v <= hi)) return false;
  return true;
}

std::string ParamInfo::range_text() const {
  const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
  if (has_lo && has_hi)
    return std::string(lo_open ? "(" : "[") + format_number(lo) + ", " + format_number(hi) + (hi_open ? ")" : "]");
  if (has_lo) return std::string(lo_open ? "> " : ">= ") + format_number(lo);
  if (has_hi) return std::string(hi_open ? "< " : "<= ") + format_number(hi);
  return "";
}

void ParamInfo::check(double v, const std::string& prefix) const {
  if (in_range(v)) return;
  const std::string r = range_text();
  std::string what = r.empty() ? "" : (r[0] == '[' || r[0] == '(' ? "in " : "") + r;
  if (!note.empty()) what += (what.empty() ? "" : " ") + note;
  std::string reason = std::isfinite(v) ? "must be " + what : "must be a finite number" + (what.empty() ? "" : " " + what);
  throw Error(name, prefix + reason + ", got " + fmt(v));
}

const ParamInfo& param_info(const std::vector<ParamInfo>& table, const std::string& name) {
  for (const auto& p : table)
    if (p.name == name) return p;
  std::string have;
  for (const auto& p : table) have += (have.empty() ? "" : ", ") + p.name;
  throw Error(name, "unknown hyperparameter (valid: " + have + ")");
}

const std::vector<ParamInfo>& actmax_params() {
  static const std::vector<ParamInfo> p = infos(actmax_table());
  return p;
}
std::vector<std::string> transform_names() {
  std::vector<std::string> v;
  for (const auto& p : actmax_params())
    if (p.transform) v.push_back(p.name);
  return v;
}
const std::vector<ParamInfo>& inversion_params() {
  static const std::vector<ParamInfo> p = infos(inversion_table());
  return p;
}
const std::vector<ParamInfo>& fgsm_params() {
  static const std::vector<ParamInfo> p = infos(fgsm_table());
  return p;
}

void set_param(ActMaxSettings& s, const std::string& n, const ParamValue& v) {
  field_of(actmax_table(), actmax_params(), n).set(s, v);
}
void set_param(InversionSettings& s, const std::string& n, const ParamValue& v) {
  field_of(inversion_table(), inversion_params(), n).set(s, v);
}
void set_param(FgsmSettings& s, const std::string& n, const ParamValue& v) {
  field_of(fgsm_table(), fgsm_params(), n).set(s, v);
}

std::vector<std::pair<std::string, ParamValue>> params_of(const ActMaxSettings& s) { return values(actmax_table(), s, false); }
std::vector<std::pair<std::string, ParamValue>> params_of(const InversionSettings& s) {
  return values(inversion_table(), s, false);
}
std::vector<std::pair<std::string, ParamValue>> params_of(const FgsmSettings& s) { return values(fgsm_table(), s, false); }
std::vector<std::pair<std::string, ParamValue>> key_params(const ActMaxSettings& s) { return values(actmax_table(), s, true); }
std::vector<std::pair<std::string, ParamValue>> key_params(const InversionSettings& s) {
  return values(inversion_table(), s, true);
}
std::vector<std::pair<std::string, ParamValue>> key_params(const FgsmSettings& s) { return values(fgsm_table(), s, true); }

// The policy names are the lr_policy declaration's choices, in the enum's order.
const char* lr_policy_name(LrPolicy p) {
  const auto& choices = param_info(actmax_params(), "lr_policy").choices;
  return static_cast<size_t>(p) < choices.size() ? choices[static_cast<size_t>(p)].c_str() : "?";
}

LrPolicy parse_lr_policy(const std::string& name) {
  ActMaxSettings s;
  set_param(s, "lr_policy", name);
  return s.lr_policy;
}

std::string param_text(const ParamValue& v) {
  return std::holds_alternative<double>(v) ? format_number(std::get<double>(v)) : std::get<std::string>(v);
}

void validate(const ActMaxSettings& s) {
  const std::string p = s.name.empty() ? "" : "setting " + s.name + ": ";
  check_ranges(actmax_table(), s, p);
  // The checks that depend on another field.
  if (s.lr_policy == LrPolicy::Progress && !(s.progress_target > 0 && std::isfinite(s.progress_target)))
    throw Error("progress_target", p + "must be > 0 under the progress policy, got " + fmt(s.progress_target));
  if (!std::isfinite(s.progress_target)) throw Error("progress_target", p + "must be a finite number");
  if (s.blur_radius > 0 && s.blur_every < 1)
    throw Error("blur_every", p + "must be >= 1 when blur_radius > 0, got " + std::to_string(s.blur_every));
  for (const auto& [name, v] : {std::pair<const char*, double>{"jitter", s.jitter}, {"pad", s.pad}})
    if (v >= 1 && v != std::floor(v))
      throw Error(name, p + "below 1 a fraction of the input size, else whole pixels; got " + fmt(v));
  if (s.decorrelate && s.param != ImageParam::Fft)
    throw Error("decorrelate", p + "applies to param fft (the pixel parameterization has no colour basis)");
  if (s.param == ImageParam::Maco)
    for (const auto& [name, v] : {std::pair<const char*, double>{"decay", s.decay}, {"blur_radius", s.blur_radius},
                                  {"norm_pct", s.norm_pct}, {"contrib_pct", s.contrib_pct}})
      if (v > 0) throw Error(name, p + "param maco keeps the spectrum's magnitude fixed: no regularizers on the pixels");
}

double extra_param(const ActMaxSettings& s, const std::string& name) {
  return std::get<double>(field_of(actmax_table(), actmax_params(), name).get(s));
}

int transform_pixels(double value, int64_t size) {
  if (value <= 0) return 0;
  if (value < 1) return static_cast<int>(std::lround(value * static_cast<double>(size)));
  return static_cast<int>(value);
}

void validate(const InversionSettings& s) { check_ranges(inversion_table(), s, s.name.empty() ? "" : "setting " + s.name + ": "); }

void validate(const FgsmSettings& s) {
  check_ranges(fgsm_table(), s, "");
  if (s.norm == AttackNorm::Linf && s.eps > 1)
    throw Error("eps", "must be in [0, 1] for an L-inf attack (pixel space), got " + format_number(s.eps));
  const bool random_start = s.attack == Attack::Pgd || s.attack == Attack::ApgdCe || s.attack == Attack::ApgdDlr;
  if (s.restarts > 1 && !random_start)
    throw Error("restarts", std::string(attack_name(s.attack)) + " starts from the image itself: every restart "
                "would be the same run (pgd and apgd-* start at random)");
  if ((s.attack == Attack::ApgdCe || s.attack == Attack::ApgdDlr) && s.step_size > 0)
    throw Error("step_size", "APGD sets its own step size (2 eps, halved at its checkpoints): leave it out");
  if (s.target_mode != TargetMode::Offset && !s.targeted)
    throw Error("target_mode", "chooses a targeted attack's target: set targeted: true");
  if (s.attack == Attack::ApgdDlr && s.targeted)
    throw Error("targeted", "apgd-dlr chooses its own targets (the top 9 other classes): leave targeted out");
}

std::string canonical(const std::vector<std::pair<std::string, ParamValue>>& params) {
  std::string out;
  for (const auto& [k, v] : params) out += (out.empty() ? "" : ";") + k + "=" + param_text(v);
  return out;
}

}  // namespace vizsweep::kernels
