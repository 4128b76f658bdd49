#include "runner/slurm.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "kernels/error.h"
#include "runner/commands.h"
#include "runner/engine.h"
#include "runner/projection.h"
#include "runner/results_dir.h"
#include "runner/sbatch_body.h"
#include "sweeps/sweep.h"

namespace fs = std::filesystem;

namespace vizsweep::runner {

namespace {

// Single-quotes a string for bash.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Seconds of a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS), after check_time.
double time_seconds(const std::string& t) {
  double days = 0;
  std::string rest = t;
  if (auto dash = t.find('-'); dash != std::string::npos) days = std::atof(t.substr(0, dash).c_str()), rest = t.substr(dash + 1);
  std::vector<double> parts;
  std::stringstream ss(rest);
  for (std::string x; std::getline(ss, x, ':');) parts.push_back(std::atof(x.c_str()));
  double s = 0;
  const bool with_days = rest.size() != t.size();  // D-HH, D-HH:MM, D-HH:MM:SS (Slurm's forms)
  if (parts.size() == 1) s = with_days ? parts[0] * 3600 : parts[0] * 60;                          // HH or MM
  else if (parts.size() == 2) s = with_days ? parts[0] * 3600 + parts[1] * 60 : parts[0] * 60 + parts[1];  // HH:MM or MM:SS
  else if (parts.size() == 3) s = parts[0] * 3600 + parts[1] * 60 + parts[2];                     // HH:MM:SS
  return days * 86400 + s;
}

void check_time(const std::string& t) {
  static const std::regex re(R"(^(\d+-)?\d{1,3}(:\d{2}){0,2}$)");
  if (!std::regex_match(t, re)) throw Error("--time", "expected [D-]HH:MM:SS, MM or MM:SS, got '" + t + "'");
}

}  // namespace

std::string sbatch_script(const SlurmJob& j) {
  if (j.nodes < 1) throw Error("--nodes", "must be >= 1");
  if (j.gpus_per_node < 0) throw Error("--gpus-per-node", "must be >= 0");
  if (j.gpus_per_node == 0 && j.ranks_per_node < 1) throw Error("--ranks-per-node", "must be >= 1");
  if (j.drain_seconds < 30) throw Error("--drain-seconds", "must be >= 30 (Slurm's signals can come a minute early or late)");
  if (j.chain_limit < 0) throw Error("--chain-limit", "must be >= 0");
  if (j.gpu_form != "gpus-per-task" && j.gpu_form != "gres") throw Error("--gpu-form", "expected gpus-per-task or gres");
  if (j.journal != "wal" && j.journal != "delete") throw Error("--journal", "expected wal or delete, got '" + j.journal + "'");
  check_time(j.time);
  const int ranks = j.gpus_per_node > 0 ? j.gpus_per_node : j.ranks_per_node;
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# vizsweep sweep '" << j.name << "': written by `vizsweep slurm`. Review it, keep it, submit it with sbatch.\n"
    << "#SBATCH --job-name=vizsweep-" << j.name << "\n"
    << "#SBATCH --nodes=" << j.nodes << "\n"
    << "#SBATCH --ntasks-per-node=" << ranks << "\n";
  if (j.gpus_per_node > 0) {
    if (j.gpu_form == "gres") s << "#SBATCH --gres=gpu:" << j.gpus_per_node << "\n";
    else s << "#SBATCH --gpus-per-task=1\n";
  }
  if (j.cpus_per_rank > 0) s << "#SBATCH --cpus-per-task=" << j.cpus_per_rank << "\n";
  s << "#SBATCH --time=" << j.time << "\n";
  if (!j.partition.empty()) s << "#SBATCH --partition=" << j.partition << "\n";
  if (!j.account.empty()) s << "#SBATCH --account=" << j.account << "\n";
  if (!j.mem.empty()) s << "#SBATCH --mem=" << j.mem << "\n";
  s << "#SBATCH --signal=B:USR1@" << j.drain_seconds << "\n"
    << "#SBATCH --requeue\n"
    << "#SBATCH --open-mode=append\n"
    << "#SBATCH --output=" << j.out << "/slurm/" << j.name << "-%j.out\n";
  std::string extra = j.extra_sbatch;
  for (char& c : extra)
    if (c == ';') c = '\n';
  std::istringstream lines(extra);
  for (std::string line; std::getline(lines, line);) {
    line.erase(0, line.find_first_not_of(" \t"));
    if (line.empty()) continue;
    if (line.rfind("#SBATCH", 0) == 0) line = line.substr(7), line.erase(0, line.find_first_not_of(" \t"));
    if (line.find('\n') != std::string::npos || line[0] != '-') throw Error("--extra-sbatch", "expected sbatch options like --qos=high, got '" + line + "'");
    s << "#SBATCH " << line << "\n";
  }
  // The body: slurm/sbatch_body.sh, compiled in, with its @NAME@ fields filled here. The exit
  // codes come from runner/commands.h, the one place that defines them.
  const std::pair<std::string, std::string> fields[] = {
      {"VIZSWEEP", quote(j.vizsweep)},
      {"SWEEP", quote(j.sweep)},
      {"OUT", quote(j.out)},
      {"CHAIN_LIMIT", std::to_string(j.chain_limit)},
      {"RUN_DRAIN_SECONDS", std::to_string(std::max(10, j.drain_seconds - 20))},
      {"JOURNAL", j.journal},
      {"EXIT_USAGE", std::to_string(kExitUsage)},
      {"EXIT_TASKS_FAILED", std::to_string(kExitTasksFailed)},
      {"EXIT_DRAINED", std::to_string(kExitDrained)},
      {"EXIT_STORAGE", std::to_string(kExitStorage)}};
  std::string body = kSbatchBody;
  for (size_t at = body.find('@'); at != std::string::npos; at = body.find('@', at)) {
    const size_t end = body.find('@', at + 1);
    const std::string name = end == std::string::npos ? "" : body.substr(at + 1, end - at - 1);
    auto f = std::find_if(std::begin(fields), std::end(fields), [&](const auto& x) { return x.first == name; });
    if (f == std::end(fields)) throw std::logic_error("slurm/sbatch_body.sh: unknown field at '" + body.substr(at, 24) + "'");
    body.replace(at, end - at + 1, f->second);
    at += f->second.size();
  }
  s << body;
  return s.str();
}

namespace {

std::string self_path() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "vizsweep";
  buf[n] = 0;
  return buf;
}

}  // namespace

int slurm_command(const SlurmOptions& o) {
  auto spec = sweeps::load_sweep(o.sweep);  // validates the file before anything is written
  SlurmJob j;
  j.name = spec.name;
  j.vizsweep = self_path();
  j.sweep = fs::absolute(o.sweep).lexically_normal().string();
  const ResultsDir dir = ResultsDir::of(spec.name, o.out);
  j.out = dir.path();
  j.nodes = o.nodes;
  j.gpus_per_node = o.gpus_per_node;
  j.ranks_per_node = o.ranks_per_node > 0 ? o.ranks_per_node : 1;
  j.cpus_per_rank = o.cpus_per_gpu;
  // The projection (a tune file in the results directory) suggests --time and says how many
  // allocations (requeues) the sweep will take.
  const int ranks = o.nodes * (o.gpus_per_node > 0 ? o.gpus_per_node : j.ranks_per_node);
  std::optional<ProjectedRun> projected;
  std::string tune_file;
  if (auto f = Projection::find(dir.path(), "")) {
    Engine engine(spec, "cpu", 1, /*compute_format=*/false);
    std::vector<TaskCost> costs;
    for (const auto& t : sweeps::expand(spec, engine.model())) costs.push_back({t.technique, t.layer, t.setting, t.cost});
    projected = project(Projection::load(*f), costs, ranks);
    tune_file = *f;
  }
  if (o.time.empty()) {
    if (!projected) throw Error("--time", "required (the partition's limit or less, e.g. 04:00:00), or run `vizsweep tune` first for a suggestion");
    // A quarter more than projected and the drain margin, at most a day (most partitions'
    // limit); longer sweeps requeue.
    j.time = slurm_time(std::min(86400.0, projected->wall * 1.25 + o.drain_seconds + 300));
    std::printf("--time %s (suggested: the projected %s plus a quarter, plus the drain margin; at most a day)\n", j.time.c_str(),
                human_seconds(projected->wall).c_str());
  } else {
    check_time(o.time);
    j.time = o.time;
  }
  if (projected) {
    const double limit = time_seconds(j.time), usable = limit - o.drain_seconds - projected->startup;
    const int allocations = usable > 0 ? static_cast<int>(std::ceil(projected->makespan / usable)) : -1;
    std::printf("projected on %d rank%s: %s (from %s)", ranks, ranks == 1 ? "" : "s", human_seconds(projected->wall).c_str(), tune_file.c_str());
    if (allocations > 0) std::printf("; with --time %s: %d allocation%s (%d requeue%s)\n", j.time.c_str(), allocations, allocations == 1 ? "" : "s",
                                     allocations - 1, allocations == 2 ? "" : "s");
    else std::printf("; --time %s leaves no time for tasks after the drain margin\n", j.time.c_str());
    if (allocations - 1 > o.chain_limit)
      std::printf("warning: %d requeues exceed --chain-limit %d: raise it or --time\n", allocations - 1, o.chain_limit);
  }
  j.partition = o.partition, j.account = o.account, j.mem = o.mem, j.extra_sbatch = o.extra_sbatch, j.gpu_form = o.gpu_form;
  j.drain_seconds = o.drain_seconds;
  j.chain_limit = o.chain_limit;
  j.journal = o.journal;
  std::string text = sbatch_script(j);
  fs::create_directories(dir.slurm());
  std::string path = dir.sbatch(spec.name);
  {
    std::ofstream f(path);
    f << text;
    if (!f) throw Error(path, "cannot write the sbatch script");
  }
  std::printf("wrote %s\n", path.c_str());
  if (!o.submit) {
    std::printf("submit it with: sbatch %s\n", path.c_str());
    return kExitOk;
  }
  std::string cmd = "sbatch --parsable " + quote(path);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error("sbatch", "cannot run sbatch");
  char buf[256] = {0};
  std::string out;
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = pclose(p);
  if (rc != 0 || out.empty()) throw Error("sbatch", "failed (exit " + std::to_string(WEXITSTATUS(rc)) + "): " + out);
  out.erase(out.find_last_not_of("\n\r ") + 1);
  std::printf("submitted job %s\n", out.substr(0, out.find(';')).c_str());
  return kExitOk;
}

}  // namespace vizsweep::runner
