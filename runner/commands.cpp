// vizsweep plan, status and verify.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <ctime>
#include <optional>
#include <set>
#include <thread>

#include "kernels/error.h"
#include "kernels/settings.h"
#include "kernels/tune.h"
#include "runner/commands.h"
#include "runner/engine.h"
#include "runner/index.h"
#include "runner/projection.h"
#include "runner/results_dir.h"
#include "runner/search.h"
#include "runner/shard.h"
#include "sweeps/sweep.h"
#include "sweeps/technique.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

using sweeps::thousands;

namespace {

// The projection of `tasks` from a tune file: per layer and the wall time on `ranks` ranks.
void print_projection(const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks, const std::string& file, int ranks) {
  const auto p = Projection::load(file);
  if (ranks <= 0) ranks = std::max(1, p.json().value("ranks", 1));
  std::vector<TaskCost> costs;
  for (const auto& t : tasks) costs.push_back({t.technique, t.layer, t.setting, t.cost});
  const auto r = project(p, costs, ranks);
  std::printf("\nprojected time on %s, %d rank%s x %d thread%s (measured by vizsweep tune %s, %s):\n", p.machine().c_str(), ranks,
              ranks == 1 ? "" : "s", p.threads(), p.threads() == 1 ? "" : "s", p.json().value("created_at", std::string("?")).c_str(),
              file.c_str());
  std::printf("%-12s %-10s %10s %14s  %s\n", "technique", "layer", "tasks", "rank time", "format");
  for (const auto& l : r.layers) {
    std::string format;
    if (sweeps::has_compute_formats(l.technique)) {
      format = spec.format_for(l.layer).name();
      const auto m = p.measured_format(l.layer);
      if (m && *m != spec.format_for(l.layer)) format += " (measured in " + m->name() + ": paste tune's compute: snippet or tune again)";
    }
    std::printf("%-12s %-10s %10s %14s  %s\n", l.technique.c_str(), l.layer.c_str(), thousands(l.tasks).c_str(),
                human_seconds(l.seconds).c_str(), format.c_str());
  }
  std::printf("total: %s of task time; wall on %d rank%s: about %s (%s of the runner itself, %s of tasks most expensive first, %s finishing)\n",
              human_seconds(r.task_seconds).c_str(), ranks, ranks == 1 ? "" : "s", human_seconds(r.wall).c_str(),
              human_seconds(r.startup).c_str(), human_seconds(r.makespan).c_str(), human_seconds(r.finish).c_str());
  if (r.unmeasured > 0)
    std::printf("not projected: %s tasks of techniques the tune file has no measurement of (tune this sweep again)\n",
                thousands(r.unmeasured).c_str());
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (spec.threads == 0 && p.threads() != std::max(1, cores / ranks))
    std::printf("note: measured with %d threads per rank; a run of %d ranks here gets %d (vizsweep tune --ranks %d)\n", p.threads(),
                ranks, std::max(1, cores / ranks), ranks);
}

// Seconds since the epoch of an index time ("2026-12-03T06:20:01.123Z"); -1 if unreadable.
double iso_seconds(const std::string& t) {
  std::tm tm{};
  double frac = 0;
  if (t.size() < 19 || !strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
  if (t.size() > 20 && t[19] == '.') frac = std::atof(t.substr(19).c_str());
  return static_cast<double>(timegm(&tm)) + frac;
}

// `status`: the projection of a tune file against what the done tasks took.
void print_projection_vs_run(const ResultIndex& index, const std::string& file) {
  std::optional<Projection> p;
  try {
    p = Projection::load(file);
  } catch (const Error& e) {
    std::printf("\nprojection: %s\n", e.what());
    return;
  }
  std::vector<TaskCost> costs;
  std::set<int> ranks;
  double first = -1, last = -1;
  std::map<std::pair<std::string, std::string>, double> took;
  for (const auto& t : index.task_timings()) {
    if (!t.done) continue;
    costs.push_back({t.technique, t.layer, t.setting, t.cost});
    took[{t.technique, t.layer}] += t.seconds;
    if (t.rank >= 0) ranks.insert(t.rank);
    const double a = iso_seconds(t.started), b = iso_seconds(t.finished);
    if (a >= 0 && (first < 0 || a < first)) first = a;
    if (b >= 0 && b > last) last = b;
  }
  if (costs.empty()) return;
  const int n = std::max<int>(1, static_cast<int>(ranks.size()));
  const auto r = project(*p, costs, n);
  std::printf("\nprojection (%s, %s) against the done tasks:\n", file.c_str(), p->machine().c_str());
  std::printf("%-12s %-10s %8s %12s %12s %7s\n", "technique", "layer", "tasks", "projected", "took", "ratio");
  double all = 0;
  for (const auto& l : r.layers) {
    const double t = took[{l.technique, l.layer}];
    all += t;
    std::printf("%-12s %-10s %8s %12s %12s %7s\n", l.technique.c_str(), l.layer.c_str(), thousands(l.tasks).c_str(),
                human_seconds(l.seconds).c_str(), human_seconds(t).c_str(),
                l.seconds > 0 ? (std::to_string(t / l.seconds).substr(0, 4) + "x").c_str() : "-");
  }
  std::printf("task time: projected %s, took %s (%.2fx)\n", human_seconds(r.task_seconds).c_str(), human_seconds(all).c_str(),
              r.task_seconds > 0 ? all / r.task_seconds : 0.0);
  if (first >= 0 && last >= first)
    std::printf("wall on %d rank%s, first task start to last finish: projected %s, took %s (%.2fx; a resumed run counts the pause)\n", n,
                n == 1 ? "" : "s", human_seconds(r.makespan).c_str(), human_seconds(last - first).c_str(),
                r.makespan > 0 ? (last - first) / r.makespan : 0.0);
}

}  // namespace

int plan_command(const PlanOptions& o) {
  const std::string& path = o.sweep;
  const std::string& out = o.out;
  auto spec = sweeps::load_sweep(path);
  Engine engine(spec, "cpu", 1, /*compute_format=*/false);
  auto tasks = sweeps::expand(spec, engine.model());
  check_search(spec, tasks, engine.model().layers.back().alias);
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
  int lw = 10;  // the layer column: a graph model's tap names are longer than VGG's aliases
  for (const auto& [tech, rows] : by_tech)
    for (const auto& r : rows) lw = std::max(lw, static_cast<int>(r.first.size()));
  for (const auto* technique : sweeps::techniques()) {
    auto it = by_tech.find(technique->name);
    if (it == by_tech.end()) continue;
    const char* tech = technique->name.c_str();
    const char* what = technique->items.c_str();
    std::printf("\n%-12s %-*s %10s %10s %9s %12s %9s %9s\n", tech, lw, "layer", "tasks", what, "settings", "TFLOP", "per task",
                "GiB/task");
    Row sum;
    for (const auto& [layer, r] : it->second) {
      std::printf("%-12s %-*s %10s %10s %9zu %12.3f %9lld %9.3f\n", "", lw, layer.c_str(), thousands(r.tasks).c_str(),
                  thousands(r.items).c_str(), r.settings.size(), r.flops / 1e12, static_cast<long long>(r.per_task),
                  r.memory / (1024.0 * 1024.0 * 1024.0));
      sum.tasks += r.tasks, sum.items += r.items, sum.flops += r.flops;
    }
    std::printf("%-12s %-*s %10s %10s %9s %12.3f\n", "", lw, "total", thousands(sum.tasks).c_str(), thousands(sum.items).c_str(), "",
                sum.flops / 1e12);
  }
  if (engine.model().graph) {
    std::string whole;
    std::set<std::string> spatial, uncropped;
    for (const auto& [tech, rows] : by_tech)
      for (const auto& r : rows)
        if (const auto* L = engine.model().find(r.first); L && L->spatial) {
          spatial.insert(r.first);
          if (L->crop_flops_to_here >= L->flops_to_here && uncropped.insert(r.first).second)
            whole += (whole.empty() ? "" : ", ") + r.first;
        }
    std::printf("\ngraph model: receptive fields from the graph (vizsweep layers %s); %s\n", spec.model.file.c_str(),
                spatial.empty()     ? "no spatial layer named"
                : whole.empty()     ? "every spatial layer named runs on its centre unit's crop"
                                    : ("uncropped, on the whole image: " + whole).c_str());
  }
  for (const auto& e : spec.sections) {
    const std::string note = e.section->plan_note(tasks);
    if (!note.empty()) std::printf("\n%s\n", note.c_str());
  }
  std::fputs(search_plan(spec, tasks).c_str(), stdout);
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
  std::printf("compute: %s (the image, steps and metrics stay fp32)\n", sweeps::compute_summary(spec).c_str());
  std::string tune = o.tune;
  if (tune.empty()) {  // this machine kind's, else the newest
    const std::string dir = ResultsDir::of(spec.name, out).path();
    auto f = Projection::find(dir, "cpu: " + kernels::cpu_kind());
    if (!f) f = Projection::find(dir, "");
    if (f) tune = *f;
  }
  if (!tune.empty()) print_projection(spec, tasks, tune, o.ranks);
  else std::printf("projected time: run `vizsweep tune %s` on the machine kind that will run it, then plan again\n", path.c_str());
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
  std::fputs(search_progress(index).c_str(), stdout);
  if (auto f = Projection::find(dir, "")) print_projection_vs_run(index, *f);
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

namespace {

// One hyperparameter's columns as `vizsweep params` shows them: type, range, default, off, help.
struct ParamRow {
  std::string name, type, range, def, off, help;
};
ParamRow param_row(const kernels::ParamInfo& p, const char* choice_sep) {
  static const char* kinds[] = {"int", "real", "choice", "reals", "bool"};
  ParamRow r{p.name, kinds[p.kind], "", kernels::param_text(p.default_value), p.off.empty() ? "-" : p.off, p.help};
  if (p.kind == kernels::ParamInfo::Choice)
    for (const auto& c : p.choices) r.range += (r.range.empty() ? "" : choice_sep) + c;
  else if (p.kind == kernels::ParamInfo::Bool)
    r.range = std::string("true") + choice_sep + "false";
  else
    r.range = p.range_text();
  if (r.range.empty()) r.range = "any";
  if (p.kind == kernels::ParamInfo::Bool) r.def = r.def == "1" ? "true" : "false";
  if (p.kind == kernels::ParamInfo::Bool && r.off == "0") r.off = "false";
  if (!p.always_in_key) r.help += " [in the task key only when set]";
  return r;
}

// The values of a preset that differ from the settings' defaults, as "key: value, ...".
std::string preset_values(const std::string& preset) {
  const auto defaults = kernels::params_of(kernels::ActMaxSettings{});
  const auto values = kernels::params_of(kernels::actmax_preset(preset));
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (kernels::param_text(values[i].second) == kernels::param_text(defaults[i].second)) continue;
    std::string v = kernels::param_text(values[i].second);
    const auto& info = kernels::param_info(kernels::actmax_params(), values[i].first);
    if (info.kind == kernels::ParamInfo::Bool) v = v == "1" ? "true" : "false";
    out += (out.empty() ? "" : ", ") + values[i].first + ": " + v;
  }
  return out;
}

// docs/sweep-files.md's reference part, generated: keys, hyperparameters, presets.
void params_markdown() {
  std::printf("<!-- generated by `vizsweep params --markdown` from the declarations (kernels/settings.cpp, "
              "sweeps/): do not edit; scripts/update_docs.py writes it -->\n\n");
  std::printf("### Keys\n\n| section | keys |\n|---|---|\n| (top level) |");
  bool first = true;
  for (const auto& k : sweeps::root_keys()) std::printf("%s `%s`", first ? "" : ",", k.c_str()), first = false;
  std::printf(" |\n");
  for (const auto* sec : sweeps::techniques()) {
    std::printf("| `%s` |", sec->name.c_str());
    first = true;
    for (const auto& k : sec->keys) std::printf("%s `%s`", first ? "" : ",", k.c_str()), first = false;
    std::printf(" |\n");
  }
  for (const auto* sec : sweeps::techniques()) {
    if (!sec->params) continue;
    std::printf("\n### %s hyperparameters\n\nIn a sweep file: %s; the index's `%s` has one column each.\n\n",
                sec->name.c_str(), sec->params_where.c_str(), sec->settings_table.c_str());
    std::printf("| name | type | range | default | off | what it does |\n|---|---|---|---|---|---|\n");
    for (const auto& p : *sec->params) {
      ParamRow r = param_row(p, ", ");
      std::string help = r.help;
      for (size_t at = help.find('|'); at != std::string::npos; at = help.find('|', at + 2)) help.replace(at, 1, "\\|");
      std::printf("| `%s` | %s | %s | %s | %s | %s |\n", r.name.c_str(), r.type.c_str(), r.range.c_str(), r.def.c_str(),
                  r.off.c_str(), help.c_str());
    }
    if (sec->params == &kernels::actmax_params()) {
      std::printf("\n### actmax presets\n\n`presets: [NAME, ...]` in the actmax section; `{NAME: {key: value}}` changes "
                  "some of a preset's values.\n\n| preset | values (the others at their defaults) |\n|---|---|\n");
      for (const auto& n : kernels::actmax_preset_names()) std::printf("| `%s` | %s |\n", n.c_str(), preset_values(n).c_str());
    }
  }
}

}  // namespace

int params_command(bool markdown) {
  if (markdown) {
    params_markdown();
    return kExitOk;
  }
  for (const auto* sec : sweeps::techniques()) {
    if (!sec->params) continue;
    std::printf("%s (in a sweep file: %s)\n", sec->name.c_str(), sec->params_where.c_str());
    std::printf("  %-16s %-7s %-28s %-9s %-5s %s\n", "name", "type", "range", "default", "off", "what it does");
    for (const auto& p : *sec->params) {
      ParamRow r = param_row(p, "|");
      std::printf("  %-16s %-7s %-28s %-9s %-5s %s\n", r.name.c_str(), r.type.c_str(), r.range.c_str(), r.def.c_str(), r.off.c_str(),
                  r.help.c_str());
    }
    std::printf("\n");
  }
  std::printf("actmax presets (the values that differ from the defaults):\n");
  for (const auto& n : kernels::actmax_preset_names()) std::printf("  %-14s %s\n", n.c_str(), preset_values(n).c_str());
  return kExitOk;
}

}  // namespace vizsweep::runner
