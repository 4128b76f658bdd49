// vizsweep slurm: a reviewable sbatch script for a sweep, and its submission.
#pragma once

#include <string>

namespace vizsweep::runner {

struct SlurmJob {
  std::string name;             // the sweep's name
  std::string vizsweep;         // absolute path of the vizsweep binary
  std::string sweep;            // absolute path of the sweep file
  std::string out;              // absolute results directory
  int nodes = 1;
  int gpus_per_node = 0;        // 0: a CPU job with ranks_per_node ranks per node
  int ranks_per_node = 1;       // CPU jobs only (GPU jobs: one rank per GPU)
  int cpus_per_rank = 0;        // 0: not set (the site's default)
  std::string time = "01:00:00";
  std::string partition, account, mem;
  std::string extra_sbatch;     // extra #SBATCH options, separated by newlines or ';'
  std::string gpu_form = "gpus-per-task";  // or "gres": --gres=gpu:G per node
  int drain_seconds = 120;      // signal this long before the time limit
  int chain_limit = 20;         // most requeues of one job before it gives up
  std::string journal = "wal";  // the index's SQLite journal: wal, or delete for NFS, Lustre, GPFS
};

// The script (pure: same job, same text). Throws vizsweep::Error for a bad option.
std::string sbatch_script(const SlurmJob& job);

struct SlurmOptions {
  std::string sweep, out;
  int nodes = 1, gpus_per_node = 0, ranks_per_node = 0, cpus_per_gpu = 0, drain_seconds = 120, chain_limit = 20;
  std::string time, partition, account, mem, extra_sbatch, gpu_form = "gpus-per-task", journal = "wal";
  bool submit = false;
};
// Validates the sweep, writes <results dir>/slurm/<name>.sbatch and, with submit, runs
// sbatch and prints the job id. Returns the exit code.
int slurm_command(const SlurmOptions& o);

}  // namespace vizsweep::runner
