#include "runner/slurm.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "kernels/error.h"
#include "runner/commands.h"
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
  if (o.time.empty()) throw Error("--time", "required (the partition's limit or less, e.g. 04:00:00)");
  j.time = o.time;
  j.partition = o.partition, j.account = o.account, j.mem = o.mem, j.extra_sbatch = o.extra_sbatch, j.gpu_form = o.gpu_form;
  j.drain_seconds = o.drain_seconds;
  j.chain_limit = o.chain_limit;
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
