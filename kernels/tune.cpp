#include "kernels/tune.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

namespace vizsweep::kernels {

namespace {

std::string cpuinfo_field(const std::string& key) {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string head = line.substr(0, colon);
    while (!head.empty() && (head.back() == ' ' || head.back() == '\t')) head.pop_back();
    if (head != key) continue;
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(' '));
    return v;
  }
  return "";
}

bool has_flag(const std::string& flag) {
  static const std::string flags = " " + cpuinfo_field("flags") + " ";
  return flags.find(" " + flag + " ") != std::string::npos;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

}  // namespace

bool cpu_has_bf16_units() { return has_flag("avx512_bf16") || has_flag("amx_bf16"); }

std::string cpu_kind() {
  std::string model = cpuinfo_field("model name");
  if (model.empty()) model = "unknown CPU";
  std::string units;
  for (const char* f : {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    if (has_flag(f)) units += std::string(units.empty() ? "" : " ") + f;
  return model + " (family " + cpuinfo_field("cpu family") + ", model " + cpuinfo_field("model") + "); " +
         (units.empty() ? "no AVX2" : units) + (has_flag("amx_bf16") ? "" : ", no AMX");
}

std::vector<ComputeFormat> candidate_formats(bool cuda, std::vector<FormatTrial>* skipped) {
  std::vector<ComputeFormat> out;
  for (const char* p : {"fp32", "bf16", "fp16"}) {
    for (bool cl : {false, true}) {
      ComputeFormat f{p, cl};
      std::string why;
      if (f.precision == "fp16" && !cuda) why = "fp16 convolutions need CUDA";
      if (f.precision == "bf16" && !cuda && !cpu_has_bf16_units())
        why = "this CPU has no bf16 units (neither avx512_bf16 nor amx_bf16): oneDNN emulates bf16, slower than fp32";
      if (why.empty()) {
        out.push_back(f);
      } else if (skipped && f.precision != "fp16") {
        FormatTrial t;
        t.format = f, t.tried = false, t.pass = false, t.why = why;
        skipped->push_back(t);
      }
    }
  }
  return out;
}

LayerTuning tune_layer(const std::string& layer, const std::vector<ComputeFormat>& formats,
                       const std::function<FormatProbe(const ComputeFormat&, bool warm_up)>& probe, int repeats) {
  LayerTuning out;
  out.layer = layer;
  auto measure = [&](const ComputeFormat& f) {
    probe(f, true);
    FormatProbe best;
    for (int r = 0; r < std::max(1, repeats); ++r) {
      FormatProbe p = probe(f, false);
      const bool enough = p.seconds >= kLongProbe;
      if (r == 0 || p.seconds < best.seconds) best = std::move(p);
      if (enough) break;
    }
    return best;
  };
  std::vector<FormatProbe> probes;
  for (const auto& f : formats) probes.push_back(measure(f));
  const ComputeFormat base{};
  const auto it = std::find(formats.begin(), formats.end(), base);
  if (it == formats.end()) return out;  // nothing to compare with: keep fp32
  const FormatProbe ref = probes[static_cast<size_t>(it - formats.begin())];
  double ref_sum = 0;
  for (double v : ref.objective) ref_sum += v;
  auto judge = [&](const ComputeFormat& f, const FormatProbe& p) {
    FormatTrial t;
    t.format = f;
    t.seconds = p.seconds;
    t.speedup = p.seconds > 0 ? ref.seconds / p.seconds : 1;
    double sum = 0;
    t.min_unit = 1;
    for (size_t u = 0; u < p.objective.size() && u < ref.objective.size(); ++u) {
      sum += p.objective[u];
      if (ref.objective[u] > 0) t.min_unit = std::min(t.min_unit, p.objective[u] / ref.objective[u]);
    }
    t.reached = ref_sum != 0 ? sum / ref_sum : (sum == 0 ? 1 : 0);
    t.hf_diff = std::fabs(mean(p.hf_energy) - mean(ref.hf_energy));
    char buf[160];
    if (!std::isfinite(sum) || !(t.reached >= kMinReached)) {
      std::snprintf(buf, sizeof buf, "reached %.4f of fp32's objective (< %.2f)", t.reached, kMinReached);
      t.pass = false, t.why = buf;
    } else if (!(t.min_unit >= kMinUnitReached)) {
      std::snprintf(buf, sizeof buf, "a unit reached %.3f of its fp32 objective (< %.2f)", t.min_unit, kMinUnitReached);
      t.pass = false, t.why = buf;
    } else if (!(t.hf_diff <= kMaxHfDiff)) {
      std::snprintf(buf, sizeof buf, "hf_energy moved by %.3f (> %.2f)", t.hf_diff, kMaxHfDiff);
      t.pass = false, t.why = buf;
    }
    return t;
  };
  for (size_t i = 0; i < formats.size(); ++i) out.trials.push_back(judge(formats[i], probes[i]));
  // A reduced precision that fails the guard is tried again with an fp32 finish of
  // kFp32Finish: the fp32 steps at the end recover what the rounding lost, at a few percent
  // of the time saved. It too must pass the guard to be chosen.
  for (size_t i = 0, n = out.trials.size(); i < n; ++i) {
    if (out.trials[i].pass || out.trials[i].format.precision == "fp32" || out.trials[i].format.fp32_finish > 0) continue;
    ComputeFormat f = out.trials[i].format;
    f.fp32_finish = kFp32Finish;
    out.trials.push_back(judge(f, measure(f)));
  }
  // fp32 NCHW first, then the others in order of speed.
  std::stable_sort(out.trials.begin(), out.trials.end(), [&](const FormatTrial& a, const FormatTrial& b) {
    if ((a.format == base) != (b.format == base)) return a.format == base;
    return a.seconds < b.seconds;
  });
  double best = 1;
  for (const auto& t : out.trials)
    if (t.pass && t.format != base && t.speedup >= best * kMinSpeedup) best = t.speedup, out.chosen = t.format;
  out.speedup = best;
  return out;
}

}  // namespace vizsweep::kernels
