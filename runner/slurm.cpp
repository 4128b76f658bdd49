#include "runner/slurm.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "kernels/error.h"
#include "runner/commands.h"
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
  s << "\n"
    << "# One rank per GPU (or per --ranks-per-node on CPU nodes), started by srun through PMIx:\n"
    << "# Open MPI without PMIx would start independent rank-0 processes (vizsweep checks the world\n"
    << "# size against SLURM_NTASKS). Each rank takes the GPU of its SLURM_LOCALID.\n"
    << "VIZSWEEP=" << quote(j.vizsweep) << "\n"
    << "SWEEP=" << quote(j.sweep) << "\n"
    << "OUT=" << quote(j.out) << "\n"
    << "CHAIN_LIMIT=" << j.chain_limit << "\n"
    << "\n"
    << "echo \"[$(date -Is)] job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}, nodes $SLURM_JOB_NODELIST\"\n"
    << "# A requeued job can start while the last allocation's step is still being torn down.\n"
    << "if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then sleep 10; fi\n"
    << "# Slurm signals the batch shell drain_seconds before the time limit; the run stops taking\n"
    << "# tasks, lets in-flight ones finish, and exits 4 (work remains).\n"
    << "# SIGTERM before that signal is scancel (or a preemption, which Slurm requeues itself): the\n"
    << "# run drains the same way, and the script does not requeue the job.\n"
    << "DRAINING=0; CANCELLED=0\n"
    << "drain() { DRAINING=1; echo \"[$(date -Is)] time limit near: draining\"; kill -USR1 \"$STEP\" 2>/dev/null; }\n"
    << "cancelled() {\n"
    << "  if [ \"$DRAINING\" -eq 0 ]; then CANCELLED=1; echo \"[$(date -Is)] cancelled: finishing the tasks in flight\"; fi\n"
    << "  kill -USR1 \"$STEP\" 2>/dev/null\n"
    << "}\n"
    << "trap drain USR1\n"
    << "trap cancelled TERM\n"
    << "srun --mpi=pmix --kill-on-bad-exit=1 \"$VIZSWEEP\" run \"$SWEEP\" --out \"$OUT\" --drain-seconds "
    << std::max(10, j.drain_seconds - 20) << " --progress-seconds 60 &\n"
    << "STEP=$!\n"
    << "while true; do  # wait returns early when the trap runs: wait until the step has ended\n"
    << "  wait \"$STEP\"; RC=$?\n"
    << "  kill -0 \"$STEP\" 2>/dev/null || break\n"
    << "done\n"
    << "echo \"[$(date -Is)] vizsweep exited with $RC\"\n"
    << "# A step that failed to launch or died leaves work behind: the index says so. Not after\n"
    << "# bad input (2), failed tasks (3) or results that cannot be written (6): a rerun would not help.\n"
    << "if [ \"$RC\" -ne 4 ] && [ \"$RC\" -ne 3 ] && [ \"$RC\" -ne 2 ] && [ \"$RC\" -ne 6 ]; then\n"
    << "  \"$VIZSWEEP\" status \"$OUT\" --check >/dev/null 2>&1\n"
    << "  if [ $? -eq 4 ]; then echo \"[$(date -Is)] the step ended (exit $RC) with tasks left\"; RC=4; fi\n"
    << "fi\n"
    << "if [ \"$CANCELLED\" -eq 1 ]; then\n"
    << "  echo \"[$(date -Is)] job cancelled: not requeueing; submit this script again to go on\"\n"
    << "  exit \"$RC\"\n"
    << "fi\n"
    << "if [ \"$RC\" -eq 4 ]; then\n"
    << "  if [ \"${SLURM_RESTART_COUNT:-0}\" -ge \"$CHAIN_LIMIT\" ]; then\n"
    << "    echo \"requeued $CHAIN_LIMIT times already: stopping; 'vizsweep status $OUT' tells what is left\"\n"
    << "    exit 1\n"
    << "  fi\n"
    << "  echo \"[$(date -Is)] work remains: requeueing job $SLURM_JOB_ID\"\n"
    << "  # A requeued job waits about two minutes for its begin time; ask for now instead.\n"
    << "  setsid bash -c \"sleep 2; scontrol update JobId=$SLURM_JOB_ID StartTime=now\" >/dev/null 2>&1 < /dev/null &\n"
    << "  scontrol requeue \"$SLURM_JOB_ID\"\n"
    << "  exit 0\n"
    << "fi\n"
    << "exit \"$RC\"\n";
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
  j.out = results_dir(spec.name, o.out);
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
  fs::create_directories(fs::path(j.out) / "slurm");
  std::string path = (fs::path(j.out) / "slurm" / (spec.name + ".sbatch")).string();
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
