// vizsweep tune: the fastest compute format per actmax layer that passes the quality guard
// (kernels/tune.h), and the measured cost of every group of the sweep's tasks for `plan`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/error.h"
#include "kernels/tune.h"
#include "runner/commands.h"
#include "runner/engine.h"
#include "runner/finish.h"
#include "runner/projection.h"
#include "runner/results_dir.h"
#include "sweeps/sweep.h"
#include "sweeps/techniques/actmax.h"
#include "sweeps/techniques/exemplars.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

namespace k = vizsweep::kernels;
using Clock = std::chrono::steady_clock;

namespace {

// The most work (estimated FLOPs) one group's cost probe does: at about 100-500 GFLOP/s a few
// seconds, whatever the task's size.
constexpr double kProbeFlops = 1e12;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string gpu_kind() {
  std::string name;
  if (FILE* p = popen("nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null", "r")) {
    char b[256];
    if (std::fgets(b, sizeof b, p)) name = b;
    pclose(p);
  }
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return "cuda: " + (name.empty() ? std::string("GPU") : name);
}

std::string now_utc() {
  char b[32];
  std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

// The other ranks of the run being projected: while tune measures the tasks' costs, ranks - 1
// copies of the sweep run beside it (`vizsweep run SWEEP` with the run's threads per rank, each
// into a scratch directory, in its own process group), so each measurement shares the cores,
// caches and memory bandwidth as a rank of the real run does. Measured alone, a task of the
// quickstart took about 0.8x what it takes on 2 ranks of 2 cores (AMD EPYC Zen 5).
class LoadRuns {
 public:
  LoadRuns(std::string sweep, int copies, int threads) : sweep_(std::move(sweep)), threads_(threads) {
    char scratch[] = "/tmp/vizsweep-tune-load-XXXXXX";
    if (copies <= 0 || sweep_.find('\'') != std::string::npos || !mkdtemp(scratch)) return;
    dir_ = scratch;
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = 0;
    exe_ = self;
    pids_.assign(static_cast<size_t>(copies), -1);
    for (size_t i = 0; i < pids_.size(); ++i) spawn(i);
  }
  LoadRuns(const LoadRuns&) = delete;
  LoadRuns& operator=(const LoadRuns&) = delete;
  ~LoadRuns() {
    for (pid_t& p : pids_)
      if (p > 0) {
        kill(-p, SIGKILL);
        waitpid(p, nullptr, 0);
        p = -1;
      }
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  // Waits (up to a minute) until every copy is computing a task; false if one never did.
  bool wait_until_computing() {
    const auto until = Clock::now() + std::chrono::seconds(60);
    for (size_t i = 0; i < pids_.size(); ++i)
      while (!computing(i)) {
        if (pids_[i] <= 0 || Clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    return !pids_.empty();
  }
  // Between two measurements: a copy that finished its sweep starts again in a new directory.
  void keep_going() {
    for (size_t i = 0; i < pids_.size(); ++i) {
      int status = 0;
      if (pids_[i] > 0 && waitpid(pids_[i], &status, WNOHANG) == pids_[i]) spawn(i);
    }
  }

 private:
  std::string out(size_t i) const { return dir_ + "/load" + std::to_string(i) + "-" + std::to_string(runs_); }
  void spawn(size_t i) {
    ++runs_;
    outs_.resize(pids_.size());
    outs_[i] = out(i);
    const std::string threads = std::to_string(threads_);
    std::vector<std::string> args = {exe_, "run", sweep_, "--threads", threads, "--out", outs_[i]};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid = -1;
    if (posix_spawn(&pid, exe_.c_str(), &fa, &at, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    pids_[i] = pid;
  }
  bool computing(size_t i) const {
    sqlite3* db = nullptr;
    bool yes = false;
    const std::string path = outs_[i] + "/index.sqlite";
    if (fs::exists(path) && sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 100);
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM tasks WHERE state = 'running'", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW)
        yes = sqlite3_column_int64(st, 0) > 0;
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return yes;
  }

  std::string sweep_, exe_, dir_;
  int threads_;
  int runs_ = 0;
  std::vector<pid_t> pids_;
  std::vector<std::string> outs_;
};

}  // namespace

int tune_command(const TuneOptions& o) {
  if (o.units < 1 || o.iters < 2 || o.repeats < 1 || o.ranks < 1 || o.threads < 0)
    throw Error("tune", "--units >= 1, --iters >= 2, --repeats >= 1, --ranks >= 1, --threads >= 0");
  auto spec = sweeps::load_sweep(o.sweep);
  std::string device = o.device;
  if (device.empty()) device = spec.device == "cpu" || !Engine::cuda_available() ? "cpu" : "cuda";
  const bool cuda = device.rfind("cuda", 0) == 0;
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int threads = o.threads > 0 ? o.threads : spec.threads > 0 ? spec.threads : std::max(1, cores / o.ranks);
  const std::string machine = cuda ? gpu_kind() : "cpu: " + k::cpu_kind();
  const std::string dir = ResultsDir::of(spec.name, o.out).path();
  const std::string save = o.save.empty() ? tune_path(dir, machine) : o.save;

  const auto t0 = Clock::now();
  Engine engine(spec, device, threads);
  const double startup = since(t0);
  const auto tasks = sweeps::expand(spec, engine.model());
  std::printf("tune %s on %s, %s, %d thread%s per rank (a run on %d rank%s)\n", spec.name.c_str(), machine.c_str(), device.c_str(),
              threads, threads == 1 ? "" : "s", o.ranks, o.ranks == 1 ? "" : "s");

  // 1. The compute format of every actmax layer.
  std::vector<k::FormatTrial> skipped;
  const auto formats = k::candidate_formats(cuda, &skipped);
  const auto* actmax = spec.get<sweeps::ActmaxSection>();
  nlohmann::json layers = nlohmann::json::array();
  std::map<std::string, k::ComputeFormat> chosen;
  std::vector<std::string> order;
  if (o.formats && actmax) {
    std::printf("\nquality guard against fp32 NCHW from the same seed: reached >= %.2f of its objective (sum over the units), every "
                "unit >= %.2f of its own, mean hf_energy within %.2f; a format is chosen when it passes and is >= %.2fx faster\n",
                k::kMinReached, k::kMinUnitReached, k::kMaxHfDiff, k::kMinSpeedup);
    for (const auto& t : skipped) std::printf("not tried: %s: %s\n", t.format.name().c_str(), t.why.c_str());
    std::set<std::string> seen, only;
    for (size_t a = 0, b; a <= o.layers.size() && !o.layers.empty(); a = b + 1) {
      b = o.layers.find(',', a);
      if (b == std::string::npos) b = o.layers.size();
      if (b > a) only.insert(o.layers.substr(a, b - a));
    }
    for (const auto& l : only)
      if (std::none_of(tasks.begin(), tasks.end(), [&](const sweeps::Task& t) { return t.technique == "actmax" && t.layer == l; }))
        throw Error("--layers", "\"" + l + "\" is not a layer of the sweep's actmax section");
    for (const auto& task : tasks) {
      if (task.technique != "actmax" || (!only.empty() && !only.count(task.layer)) || !seen.insert(task.layer).second) continue;
      const auto& st = actmax->settings.at(static_cast<size_t>(task.setting));
      const int iters = std::min(o.iters, st.iterations);
      const size_t units = std::min<size_t>(static_cast<size_t>(o.units), task.items.size());
      std::printf("\n%s: %zu units, setting %s, %d iterations\n", task.layer.c_str(), units, st.name.c_str(), iters);
      std::fflush(stdout);
      auto probe = [&](const k::ComputeFormat& f, bool warm_up) {
        auto p = engine.probe_actmax(task, f, warm_up ? 2 : iters, units);
        return k::FormatProbe{p.seconds, p.objective, p.hf_energy};
      };
      auto r = k::tune_layer(task.layer, formats, probe, o.repeats);
      std::printf("  %-38s %9s %9s %9s %9s %9s  %s\n", "format", "seconds", "speed-up", "reached", "min unit", "hf diff", "guard");
      nlohmann::json trials = nlohmann::json::array();
      for (const auto& t : r.trials) {
        std::printf("  %-38s %9.4f %8.2fx %9.4f %9.4f %9.4f  %s%s\n", t.format.name().c_str(), t.seconds, t.speedup, t.reached, t.min_unit,
                    t.hf_diff, t.format == k::ComputeFormat{} ? "reference" : t.pass ? "pass" : "FAIL: ",
                    t.pass ? (t.format == r.chosen && t.format != k::ComputeFormat{} ? " (chosen)" : "") : t.why.c_str());
        trials.push_back({{"precision", t.format.precision}, {"channels_last", t.format.channels_last},
                          {"fp32_finish", t.format.fp32_finish}, {"seconds", t.seconds},
                          {"speedup", t.speedup}, {"reached", t.reached}, {"min_unit", t.min_unit}, {"hf_diff", t.hf_diff},
                          {"pass", t.pass}, {"why", t.why}});
      }
      std::printf("  -> %s (%.2fx fp32 NCHW)\n", r.chosen.name().c_str(), r.speedup);
      std::fflush(stdout);
      chosen[task.layer] = r.chosen;
      order.push_back(task.layer);
      layers.push_back({{"layer", task.layer}, {"units", units}, {"iterations", iters}, {"setting", st.name},
                        {"precision", r.chosen.precision}, {"channels_last", r.chosen.channels_last},
                        {"fp32_finish", r.chosen.fp32_finish}, {"speedup", r.speedup},
                        {"trials", trials}});
    }
  }

  // 2. The cost of each group of tasks (technique, layer, setting), actmax in its chosen format,
  // with the run's other ranks computing beside it (LoadRuns; on a CPU: ranks on one GPU are
  // not what a GPU run does).
  std::printf("\nmeasuring one task of each group for the plan's projection");
  std::optional<LoadRuns> load;
  if (!cuda && o.ranks > 1) {
    load.emplace(o.sweep, o.ranks - 1, threads);
    if (load->wait_until_computing()) {
      std::printf(", with %d cop%s of the sweep running beside it as the run's other ranks", o.ranks - 1, o.ranks == 2 ? "y" : "ies");
    } else {
      load.reset();
      std::printf(" (alone: the copies of the sweep meant to stand for the other ranks did not start)");
    }
  }
  std::printf("\n");
  nlohmann::json groups = nlohmann::json::array();
  std::set<std::tuple<std::string, std::string, int>> measured;
  for (const auto& task : tasks) {
    // A search's later rungs are its settings at more iterations: the plan projects them from
    // the layer's measured rate (Projection::seconds), not from a probe each.
    if (task.technique == "actmax" && actmax->search.active() && actmax->search.rung_of(task.setting) > 0) continue;
    if (!measured.insert({task.technique, task.layer, task.setting}).second) continue;
    nlohmann::json g = {{"technique", task.technique}, {"layer", task.layer}, {"setting", task.setting},
                        {"items", task.items.size()}, {"cost", task.cost}};
    double seconds = 0;
    if (task.technique == "actmax") {
      const auto& st = actmax->settings.at(static_cast<size_t>(task.setting));
      const auto it = chosen.find(task.layer);
      const k::ComputeFormat f = it != chosen.end() ? it->second : spec.format_for(task.layer);
      // The iteration loop is linear: two short runs give the fixed part (initial and final
      // passes, metrics) and the per-iteration part; the task's time is fixed + I x step.
      // Large tasks are probed on fewer units (about kProbeFlops of work in all), and scaled.
      // An fp32 finish's last n iterations take fp32's step: fixed + (I - n) x step + n x
      // fp32's step, each step measured without a finish.
      const int a = std::min(2, st.iterations), b = std::min(8, st.iterations);
      const double probe_cost = task.cost * (1 + a + b) / st.iterations;
      size_t units = task.items.size();
      if (probe_cost > kProbeFlops)
        units = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(units) * kProbeFlops / probe_cost));
      auto fixed_and_step = [&](const k::ComputeFormat& format) {
        engine.probe_actmax(task, format, 1, units);  // warm-up: this shape's kernels
        const double ta = engine.probe_actmax(task, format, a, units).seconds;
        if (b <= a) return std::make_pair(ta, 0.0);
        const double tb = engine.probe_actmax(task, format, b, units).seconds;
        const double step = std::max(0.0, (tb - ta) / (b - a));
        return std::make_pair(std::max(0.0, ta - a * step), step);
      };
      const auto [fixed, step] = fixed_and_step(k::ComputeFormat{f.precision, f.channels_last});
      const int n = f.finish_iterations(st.iterations);
      const double step32 = n > 0 ? fixed_and_step(k::ComputeFormat{}).second : 0.0;
      seconds = fixed + (st.iterations - n) * step + n * step32;
      seconds *= static_cast<double>(task.items.size()) / static_cast<double>(units);
      g["precision"] = f.precision, g["channels_last"] = f.channels_last, g["fp32_finish"] = f.fp32_finish, g["probe_units"] = units;
    } else {
      seconds = engine.time_task(task);
    }
    if (load) load->keep_going();
    g["seconds"] = seconds;
    std::printf("  %-12s %-10s setting %-3d %8.3f s per task (%zu %s)\n", task.technique.c_str(), task.layer.c_str(), task.setting,
                seconds, task.items.size(), sweeps::find_technique(task.technique)->items.c_str());
    std::fflush(stdout);
    groups.push_back(std::move(g));
  }
  load.reset();  // the finishing step runs on rank 0 alone, after every task

  // 3. The run's last step: machine interpretability of every visualization (runner/finish.h),
  // timed on one unit's worth of images (k top and k bottom exemplar crops, one image per
  // setting) and scaled by the units that have both.
  double finish = 0;
  const auto* ex = spec.get<sweeps::ExemplarsSection>();
  if (const std::string fm = mis_feature_model(spec); !fm.empty() && actmax && ex) {
    std::map<std::string, std::set<int64_t>> units;
    std::map<std::string, int64_t> vizs_per_unit;
    for (const auto& t : tasks)
      if (t.technique == "actmax") units[t.layer].insert(t.items.begin(), t.items.end());
    const auto S = engine.model().input_size, C = engine.model().in_channels;
    auto blank = [&](int64_t side) {
      ImageBlob b;
      b.height = b.width = side, b.channels = C;
      b.pixels.assign(static_cast<size_t>(side * side * C), 128);
      return b;
    };
    int64_t n = 0;
    std::string layer;
    for (const auto& [l, u] : units)
      if (ex->all_layers || std::any_of(ex->layers.begin(), ex->layers.end(), [&](const sweeps::Located& x) { return x.name == l; }))
        n += static_cast<int64_t>(u.size()), layer = l;
    if (n > 0) {
      const size_t per_unit = actmax->settings.size() * actmax->seeds.size();
      std::vector<ImageBlob> vizs(per_unit, blank(S)), top(static_cast<size_t>(ex->k), blank(S / 2)), bottom = top;
      engine.mis(fm, ex->feature_layer_for(layer), layer, true, vizs, top, bottom);  // loads the feature model
      const auto t1 = Clock::now();
      for (int r = 0; r < 3; ++r) engine.mis(fm, ex->feature_layer_for(layer), layer, true, vizs, top, bottom);
      finish = since(t1) / 3 * static_cast<double>(n);
      std::printf("  machine interpretability of %lld units x %zu images: %.1f s at the end of the run\n", static_cast<long long>(n),
                  per_unit, finish);
    }
  }

  // 4. The runner's own time for this sweep: start-up (MPI, model, index) and the dispatch and
  // commit of every task, from a run of it with --noop-tasks into a scratch directory.
  double overhead = startup;
  {
    char scratch[] = "/tmp/vizsweep-tune-XXXXXX";
    if (mkdtemp(scratch)) {
      char self[4096];
      const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
      if (n > 0) {
        self[n] = 0;
        const std::string cmd = "'" + std::string(self) + "' run '" + o.sweep + "' --noop-tasks --threads " + std::to_string(threads) +
                                " --out '" + std::string(scratch) + "/run' >/dev/null 2>&1";
        const auto t1 = Clock::now();
        if (o.sweep.find('\'') == std::string::npos && std::system(cmd.c_str()) == 0) overhead = since(t1);
      }
      std::error_code rm;
      fs::remove_all(scratch, rm);
    }
    std::printf("  the runner itself (start-up, dispatch and commits of %zu tasks): %.1f s\n", tasks.size(), overhead);
  }

  nlohmann::json j = {{"format", "vizsweep-tune 1"}, {"machine", machine}, {"device", device}, {"threads", threads},
                      {"ranks", o.ranks}, {"sweep", spec.name}, {"created_at", now_utc()}, {"startup_s", overhead}, {"finish_s", finish},
                      {"layers", layers}, {"groups", groups}};
  std::error_code ec;
  fs::create_directories(fs::path(save).parent_path(), ec);
  {
    const std::string tmp = save + ".tmp";
    std::ofstream f(tmp);
    f << j.dump(1) << "\n";
    if (!f.flush()) throw Error(save, "cannot write the tune file");
    f.close();
    fs::rename(tmp, save, ec);
    if (ec) throw Error(save, "cannot write the tune file: " + ec.message());
  }

  // 3. What to paste.
  std::string snippet;
  const k::ComputeFormat base = spec.default_format();
  for (const auto& layer : order) {
    const auto& f = chosen[layer];
    if (f == base) continue;
    snippet += "  " + layer + ": {precision: " + f.precision;
    if (f.channels_last != base.channels_last) snippet += std::string(", channels_last: ") + (f.channels_last ? "true" : "false");
    if (f.precision != "fp32" && f.fp32_finish != spec.fp32_finish) snippet += ", fp32_finish: " + f.finish_text();
    snippet += "}\n";
  }
  std::printf("\n");
  if (!o.formats || !actmax) std::printf("formats: not tuned (%s)\n", actmax ? "--no-formats" : "the sweep has no actmax section");
  else if (snippet.empty()) std::printf("formats: keep %s everywhere: no other format passes the guard and is faster here%s\n",
                                        base.name().c_str(), spec.compute.empty() ? "" : " (remove the compute: mapping)");
  else std::printf("formats: paste into %s (replacing any compute: mapping; the task keys of these layers change):\ncompute:\n%s",
                   o.sweep.c_str(), snippet.c_str());
  std::printf("measurements: %s\nprojection: vizsweep plan %s --ranks %d%s\n", save.c_str(), o.sweep.c_str(), o.ranks,
              o.save.empty() ? "" : (" --tune " + save).c_str());
  return kExitOk;
}

}  // namespace vizsweep::runner
