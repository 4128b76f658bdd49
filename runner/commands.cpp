// vizsweep plan, status and verify.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "kernels/error.h"
#include "kernels/settings.h"
#include "runner/commands.h"
#include "runner/engine.h"
#include "runner/index.h"
#include "runner/results_dir.h"
#include "runner/shard.h"
#include "sweeps/sweep.h"
#include "sweeps/technique.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

using sweeps::thousands;

int plan_command(const std::string& path, const std::string& out) {
  auto spec = sweeps::load_sweep(path);
  Engine engine(spec, "cpu", 1, /*compute_format=*/false);
  auto tasks = sweeps::expand(spec, engine.model());
  std::printf("sweep %s: model %s (%s), input %lldx%lldx%lld, %zu tasks -> %s\n", spec.name.c_str(), engine.model().arch.c_str(),
              spec.model.builtin() ? "built-in" : spec.model.file.c_str(), static_cast<long long>(engine.model().in_channels),
              static_cast<long long>(engine.model().input_size), static_cast<long long>(engine.model().input_size), tasks.size(), ResultsDir::of(spec.name, out).path().c_str());
  struct Row {
    int64_t tasks = 0, items = 0, per_task = 0;
    std::set<int> settings;
    double flops = 0, memory = 0;
  };
  std::map<std::string, std::vector<std::pair<std::string, Row>>> by_tech;
  double total_flops = 0;
  for (const auto& t : tasks) {
    auto& rows = by_tech[t.technique];
    auto it = std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r.first == t.layer; });
    if (it == rows.end()) {
      rows.push_back({t.layer, Row{}});
      it = rows.end() - 1;
    }
    it->second.tasks++;
    it->second.items += static_cast<int64_t>(t.items.size());
    it->second.settings.insert(t.setting);
    it->second.flops += t.cost;
    it->second.per_task = std::max<int64_t>(it->second.per_task, static_cast<int64_t>(t.items.size()));
    it->second.memory = std::max(it->second.memory, t.memory);
    total_flops += t.cost;
  }
  for (const auto* technique : sweeps::techniques()) {
    auto it = by_tech.find(technique->name);
    if (it == by_tech.end()) continue;
    const char* tech = technique->name.c_str();
    const char* what = technique->items.c_str();
    std::printf("\n%-12s %-10s %10s %10s %9s %12s %9s %9s\n", tech, "layer", "tasks", what, "settings", "TFLOP", "per task",
                "GiB/task");
    Row sum;
    for (const auto& [layer, r] : it->second) {
      std::printf("%-12s %-10s %10s %10s %9zu %12.3f %9lld %9.3f\n", "", layer.c_str(), thousands(r.tasks).c_str(),
                  thousands(r.items).c_str(), r.settings.size(), r.flops / 1e12, static_cast<long long>(r.per_task),
                  r.memory / (1024.0 * 1024.0 * 1024.0));
      sum.tasks += r.tasks, sum.items += r.items, sum.flops += r.flops;
    }
    std::printf("%-12s %-10s %10s %10s %9s %12.3f\n", "", "total", thousands(sum.tasks).c_str(), thousands(sum.items).c_str(), "",
                sum.flops / 1e12);
  }
  for (const auto& e : spec.sections) {
    const std::string note = e.section->plan_note(tasks);
    if (!note.empty()) std::printf("\n%s\n", note.c_str());
  }
  auto human = [](double seconds) {
    char b[32];
    if (seconds < 90) std::snprintf(b, sizeof b, "%.0f s", seconds);
    else if (seconds < 5400) std::snprintf(b, sizeof b, "%.0f min", seconds / 60);
    else std::snprintf(b, sizeof b, "%.1f h", seconds / 3600);
    return std::string(b);
  };
  std::printf("cost estimate: %.3f TFLOP (forward and backward passes as each technique needs them): about %s at 100 GFLOP/s (a few CPU cores), %s at 100 TFLOP/s "
              "(a large GPU)\n",
              total_flops / 1e12, human(total_flops / 1e11).c_str(), human(total_flops / 1e14).c_str());
  std::printf("per task: items in the largest task of the layer; GiB/task: its estimated working memory (batch_memory_gb: %g)\n",
              spec.batch_memory_gb);
  std::printf("compute: %s%s (the image, steps and metrics stay fp32)\n", spec.precision.c_str(),
              spec.channels_last ? ", channels_last" : "");
  return kExitOk;
}

int status_command(const std::string& dir, bool check) {
  ResultIndex index(ResultsDir(dir).index(), /*read_only=*/true);
  auto info = index.sweep_info();
  if (info.is_null()) {
    std::printf("%s: index has no sweep yet\n", dir.c_str());
    return kExitOk;
  }
  std::printf("sweep %s (spec %s), started %s\n", info["name"].get<std::string>().c_str(),
              info["spec_hash"].get<std::string>().substr(0, 12).c_str(), info["created_at"].get<std::string>().c_str());
  auto prog = index.progress();
  std::map<std::string, std::map<std::string, int64_t>> t;
  std::map<std::string, int64_t> all;
  for (const auto& [k, n] : prog) t[k.first][k.second] += n, all[k.second] += n;
  std::printf("%-12s %10s %10s %10s %10s %10s\n", "technique", "done", "running", "pending", "failed", "total");
  auto line = [](const std::string& name, std::map<std::string, int64_t>& m) {
    int64_t total = m["done"] + m["running"] + m["pending"] + m["failed"];
    std::printf("%-12s %10lld %10lld %10lld %10lld %10lld\n", name.c_str(), static_cast<long long>(m["done"]),
                static_cast<long long>(m["running"]), static_cast<long long>(m["pending"]), static_cast<long long>(m["failed"]),
                static_cast<long long>(total));
  };
  for (auto& [tech, m] : t) line(tech, m);
  line("all", all);
  auto fails = index.failures(5);
  if (!fails.empty()) {
    std::printf("\nlast failures:\n");
    for (const auto& f : fails) std::printf("  %s %s %s: %s\n", f[0].substr(0, 12).c_str(), f[1].c_str(), f[2].c_str(), f[3].c_str());
  }
  if (!check) return kExitOk;
  if (all["pending"] + all["running"] > 0) return kExitDrained;
  return all["failed"] > 0 ? kExitTasksFailed : kExitOk;
}

int verify_command(const std::string& dir) {
  ResultIndex index(ResultsDir(dir).index(), /*read_only=*/true);
  auto locs = index.locations();
  auto rows = index.tasks();
  std::map<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>> by_shard;
  for (auto& [key, loc] : locs) by_shard[loc.first].push_back({key, loc.second});
  int problems = 0;
  int64_t datasets = 0;
  std::map<std::string, std::string> home;  // key -> shard its index rows name
  for (const auto& [shard, entries] : by_shard) {
    std::vector<std::string> ds;
    for (const auto& e : entries) {
      ds.insert(ds.end(), e.second.begin(), e.second.end());
      home[e.first] = shard;
    }
    datasets += static_cast<int64_t>(ds.size());
    auto rep = check_shard((fs::path(dir) / shard).string(), ds, /*full_read=*/true);
    if (!rep.opened) {
      std::printf("BAD   %s: %s (%zu tasks affected)\n", shard.c_str(), rep.error.c_str(), entries.size());
      for (const auto& e : entries) std::printf("      task %s\n", e.first.c_str());
      problems += static_cast<int>(entries.size());
      continue;
    }
    for (const auto& e : entries) {
      std::vector<std::string> bad;
      for (const auto& d : e.second)
        if (rep.unreadable.count(d)) bad.push_back(d);
      if (!bad.empty()) {
        std::printf("BAD   task %s: %zu unreadable dataset(s) in %s, e.g. %s\n", e.first.c_str(), bad.size(), shard.c_str(),
                    bad[0].c_str());
        ++problems;
      }
    }
  }
  // Done tasks without result rows.
  for (const auto& [key, row] : rows)
    if (row.state == TaskState::Done && !locs.count(key)) {
      std::printf("BAD   task %s: done but has no result rows\n", key.c_str());
      ++problems;
    }
  // Every group in every shard file belongs to an indexed task.
  int64_t superseded = 0, uncommitted = 0;
  std::error_code ec;
  if (fs::is_directory(ResultsDir(dir).shards(), ec)) {
    for (const auto& f : fs::directory_iterator(ResultsDir(dir).shards())) {
      if (!ResultsDir::is_shard(f.path().string())) continue;
      std::string rel = (fs::path(ResultsDir::shards_rel()) / f.path().filename()).string();
      auto rep = check_shard(f.path().string(), {}, false);
      if (!rep.opened) {
        if (!by_shard.count(rel)) {
          std::printf("note  %s: unreadable, but holds no indexed result (a run killed while writing it)\n", rel.c_str());
        }
        continue;
      }
      for (const auto& key : rep.tasks) {
        auto it = rows.find(key);
        if (it == rows.end()) {
          std::printf("BAD   %s: group %s belongs to no task of this sweep\n", rel.c_str(), key.c_str());
          ++problems;
        } else if (home.count(key) && home[key] != rel) {
          ++superseded;
        } else if (it->second.state != TaskState::Done) {
          ++uncommitted;
        }
      }
    }
  }
  std::printf("verify %s: %zu done tasks, %lld datasets read, %d problem(s)", dir.c_str(), locs.size(), static_cast<long long>(datasets),
              problems);
  if (superseded) std::printf("; %lld superseded copies from interrupted runs", static_cast<long long>(superseded));
  if (uncommitted) std::printf("; %lld uncommitted groups (tasks still to run)", static_cast<long long>(uncommitted));
  std::printf("\n");
  return problems ? 1 : kExitOk;
}

int params_command() {
  const char* kinds[] = {"int", "real", "choice", "reals", "bool"};
  for (const auto* sec : sweeps::techniques()) {
    if (!sec->params) continue;
    std::printf("%s (in a sweep file: %s)\n", sec->name.c_str(), sec->params_where.c_str());
    std::printf("  %-16s %-7s %-28s %-9s %-4s %s\n", "name", "type", "range", "default", "off", "what it does");
    for (const auto& p : *sec->params) {
      std::string range = p.kind == kernels::ParamInfo::Choice ? "" : p.range_text();
      if (p.kind == kernels::ParamInfo::Choice)
        for (const auto& c : p.choices) range += (range.empty() ? "" : "|") + c;
      if (p.kind == kernels::ParamInfo::Bool) range = "true|false";
      std::string help = p.help + (p.always_in_key ? "" : " [in the task key only when set]");
      std::string def = kernels::param_text(p.default_value);
      if (p.kind == kernels::ParamInfo::Bool) def = def == "1" ? "true" : "false";
      std::printf("  %-16s %-7s %-28s %-9s %-4s %s\n", p.name.c_str(), kinds[p.kind], range.empty() ? "any" : range.c_str(),
                  def.c_str(), p.off.empty() ? "-" : p.off.c_str(), help.c_str());
    }
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace vizsweep::runner
