// The vizsweep subcommands. Each returns the process exit code.
#pragma once

#include <cstdint>
#include <string>

namespace vizsweep::runner {

// Exit codes of `vizsweep run`.
constexpr int kExitOk = 0;            // every task done
constexpr int kExitUsage = 2;         // bad command line, sweep file, model or results directory
constexpr int kExitTasksFailed = 3;   // the sweep ran; some tasks failed past their attempts
constexpr int kExitDrained = 4;       // stopped early on SIGUSR1/SIGTERM (a time limit): work remains
constexpr int kExitInternal = 5;      // an unexpected error
constexpr int kExitStorage = 6;       // results could not be written (disk full, file size limit): work remains

struct RunOptions {
  std::string sweep;
  std::string out;               // results directory; "" = results/<sweep name>
  std::string journal = "wal";   // SQLite journal: wal (local disk) or delete (NFS, Lustre, GPFS)
  int threads = -1;              // per rank; -1 = the sweep's, 0 = cores / ranks on the node
  double progress_seconds = 10;  // period of progress lines when stderr is not a terminal
  double drain_seconds = 90;     // after SIGUSR1/SIGTERM: how long in-flight tasks may take
  bool noop_tasks = false;       // benchmark of the runner: tasks compute and write nothing
};

// Validates the sweep and prints task counts and the cost estimate; writes nothing. With a
// tune file (`tune`, or the one `vizsweep tune` wrote for this machine kind in the results
// directory), also the projected time per layer and the wall time on `ranks` ranks.
struct PlanOptions {
  std::string sweep, out, tune;
  int ranks = 0;  // 0: the tune file's
};
int plan_command(const PlanOptions& o);

struct TuneOptions {
  std::string sweep, out;
  std::string save;      // the tune file; "" = DIR/tune/<machine kind>.json
  std::string device;    // "" = cuda when the sweep allows it and there is one, else cpu
  int units = 8;         // units per format probe
  int iters = 50;        // iterations per format probe (at most the setting's)
  int repeats = 3;       // timed runs per format (the fastest counts)
  int ranks = 1;         // the run to project: threads per rank = cores / ranks
  int threads = 0;       // 0: the sweep's, else cores / ranks
  bool formats = true;   // false: only the projection's measurements, in the sweep's formats
  std::string layers;    // "conv5_3,fc8": tune only these actmax layers ("" = all)
};
// Times each actmax layer of the sweep in every compute format this device has, keeps those
// that pass the quality guard (kernels/tune.h), prints the fastest per layer and the
// `compute:` snippet, and measures one task of every group for `plan`'s projection.
int tune_command(const TuneOptions& o);
// Runs (or resumes) a sweep; call under mpirun/srun or alone. Initializes MPI itself.
int run_command(const RunOptions& o, int* argc, char*** argv);
// Progress of a results directory from its index (read-only; works during a run). With
// check, the exit code says what is left: 0 nothing, kExitDrained (4) tasks to run,
// kExitTasksFailed (3) only failed tasks.
int status_command(const std::string& dir, bool check = false);
// Checks every indexed result is readable in its shard and every shard group is indexed.
int verify_command(const std::string& dir);
// `vizsweep params`: every hyperparameter of every technique, from its one declaration (type,
// range, default, the value that switches it off, whether it is always in the task key, what it
// does), and every preset's values; with markdown, docs/sweep-files.md's generated reference.
int params_command(bool markdown);

// `vizsweep layers MODEL`: every layer (a graph model's every tap) with its type, output
// shape, unit count, receptive field, FLOPs from the input and other names. MODEL: a
// TorchScript file or a built-in VGG (vgg11, vgg13, vgg16, vgg19).
struct LayersOptions {
  std::string model;
  int64_t input_size = 0;  // 0: the model's own
};
int layers_command(const LayersOptions& o);

}  // namespace vizsweep::runner
