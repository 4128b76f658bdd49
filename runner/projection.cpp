#include "runner/projection.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <queue>
#include <sstream>

#include "kernels/error.h"
#include "sweeps/technique.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

std::string tune_path(const std::string& dir, const std::string& machine) {
  std::string slug;
  for (char c : machine) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0;
    if (ok) slug += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!slug.empty() && slug.back() != '-') slug += '-';
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  if (slug.size() > 80) slug.resize(80);
  return (fs::path(dir) / "tune" / (slug.empty() ? "machine.json" : slug + ".json")).string();
}

Projection Projection::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path, "cannot read tune file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(path, std::string("not a tune file (JSON: ") + e.what() + ")");
  }
  if (!j.is_object() || j.value("format", std::string()) != "vizsweep-tune 1" || !j.contains("groups") || !j["groups"].is_array())
    throw Error(path, "not a tune file (written by vizsweep tune, format \"vizsweep-tune 1\")");
  return Projection(std::move(j));
}

std::optional<std::string> Projection::find(const std::string& dir, const std::string& machine) {
  std::error_code ec;
  const fs::path d = fs::path(dir) / "tune";
  if (!fs::is_directory(d, ec)) return std::nullopt;
  std::optional<std::string> best;
  fs::file_time_type newest{};
  for (const auto& e : fs::directory_iterator(d, ec)) {
    if (e.path().extension() != ".json" || !e.is_regular_file(ec)) continue;
    if (!machine.empty()) {
      try {
        if (load(e.path().string()).machine() != machine) continue;
      } catch (const Error&) {
        continue;
      }
    }
    const auto t = e.last_write_time(ec);
    if (!best || t > newest) best = e.path().string(), newest = t;
  }
  return best;
}

std::optional<double> Projection::seconds(const TaskCost& t) const {
  // Rates (seconds per FLOP of estimated cost) at three levels of match.
  double s[3] = {0, 0, 0}, c[3] = {0, 0, 0};
  for (const auto& g : j_["groups"]) {
    if (g.value("technique", std::string()) != t.technique) continue;
    const double gs = g.value("seconds", 0.0), gc = g.value("cost", 0.0);
    if (gc <= 0) continue;
    const bool layer = g.value("layer", std::string()) == t.layer;
    const bool setting = layer && g.value("setting", -1) == t.setting;
    if (setting) s[0] += gs, c[0] += gc;
    if (layer) s[1] += gs, c[1] += gc;
    s[2] += gs, c[2] += gc;
  }
  for (int i = 0; i < 3; ++i)
    if (c[i] > 0) return s[i] / c[i] * t.cost;
  return std::nullopt;
}

std::optional<sweeps::ComputeFormat> Projection::measured_format(const std::string& layer) const {
  for (const auto& g : j_["groups"])
    if (sweeps::has_compute_formats(g.value("technique", std::string())) && g.value("layer", std::string()) == layer)
      return sweeps::ComputeFormat{g.value("precision", std::string("fp32")), g.value("channels_last", false), g.value("fp32_finish", 0.0)};
  return std::nullopt;
}

double Projection::makespan(std::vector<double> seconds, int ranks) {
  std::sort(seconds.begin(), seconds.end(), std::greater<>());
  std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
  for (int i = 0; i < std::max(1, ranks); ++i) free_at.push(0.0);
  double end = 0;
  for (double s : seconds) {
    const double t = free_at.top() + s;
    free_at.pop();
    free_at.push(t);
    end = std::max(end, t);
  }
  return end;
}

ProjectedRun project(const Projection& p, const std::vector<TaskCost>& tasks, int ranks) {
  ProjectedRun r;
  std::vector<double> each;
  for (const auto& t : tasks) {
    auto it = std::find_if(r.layers.begin(), r.layers.end(),
                           [&](const ProjectedRun::Layer& l) { return l.technique == t.technique && l.layer == t.layer; });
    if (it == r.layers.end()) {
      r.layers.push_back({t.technique, t.layer, 0, 0});
      it = r.layers.end() - 1;
    }
    ++it->tasks;
    const auto s = p.seconds(t);
    if (!s) {
      ++r.unmeasured;
      continue;
    }
    it->seconds += *s;
    r.task_seconds += *s;
    each.push_back(*s);
  }
  r.startup = p.startup();
  r.makespan = Projection::makespan(std::move(each), ranks);
  r.finish = p.finish();
  r.wall = r.startup + r.makespan + r.finish;
  return r;
}

std::string human_seconds(double s) {
  char b[48];
  if (s < 9.95) std::snprintf(b, sizeof b, "%.1f s", s);
  else if (s < 90) std::snprintf(b, sizeof b, "%.0f s", s);
  else if (s < 5400) std::snprintf(b, sizeof b, "%d min %02d s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else std::snprintf(b, sizeof b, "%d h %02d min", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  return b;
}

std::string slurm_time(double s) {
  const auto minutes = static_cast<long long>(std::ceil(std::max(60.0, s) / 60.0));
  const long long d = minutes / 1440, h = (minutes % 1440) / 60, m = minutes % 60;
  char b[32];
  if (d > 0) std::snprintf(b, sizeof b, "%lld-%02lld:%02lld:00", d, h, m);
  else std::snprintf(b, sizeof b, "%02lld:%02lld:00", h, m);
  return b;
}

}  // namespace vizsweep::runner
