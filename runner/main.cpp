// vizsweep: map what every unit of a convolutional network responds to.
//
//   vizsweep plan SWEEP [--out DIR] [--ranks N] [--tune FILE]
//   vizsweep tune SWEEP [--out DIR] [--ranks N] [--units N] [--iters N] [--save FILE]
//   vizsweep run SWEEP [--out DIR] [--threads N] [--journal wal|delete]   (under mpirun/srun or alone)
//   vizsweep slurm SWEEP --nodes N --gpus-per-node G --time HH:MM:SS [...] [--submit]
//   vizsweep status DIR
//   vizsweep verify DIR
//   vizsweep params
//   vizsweep layers MODEL [--input-size N]
#include <boost/program_options.hpp>

#include <iostream>
#include <string>

#include "kernels/error.h"
#include "runner/commands.h"
#include "runner/schema.h"
#include "runner/version.h"
#include "runner/slurm.h"

namespace po = boost::program_options;
using namespace vizsweep::runner;

namespace {

const char* kUsage =
    "usage: vizsweep COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  plan SWEEP      validate a sweep file; print task counts per technique and layer and a cost estimate\n"
    "  tune SWEEP      measure each layer's fastest compute format that keeps the results (and the cost plan projects from)\n"
    "  run SWEEP       run or resume a sweep (under mpirun/srun for several ranks)\n"
    "  slurm SWEEP     write a reviewable sbatch script for a cluster (and submit it with --submit)\n"
    "  status DIR      progress of a results directory (also while a run is going)\n"
    "  verify DIR      check every indexed result is readable and every shard group is indexed\n"
    "  params          list every technique's hyperparameters: type, range, default, what each does\n"
    "  layers MODEL    list a model's layers (any network's taps) with shapes, units and receptive fields\n"
    "  schema          print the index's SQLite schema as this version writes it (results_schema.sql, filled in)\n"
    "\n"
    "'vizsweep COMMAND --help' lists a command's options; 'vizsweep --version' prints the version.\n";

int dispatch(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (cmd == "--version" || cmd == "version") {
    std::cout << "vizsweep " << VIZSWEEP_VERSION << "\n";
    return kExitOk;
  }
  if (cmd == "params") {
    const std::string opt = argc > 2 ? argv[2] : "";
    if (opt == "-h" || opt == "--help") {
      std::cout << "usage: vizsweep params [--markdown]\n"
                   "  --markdown    the reference part of docs/sweep-files.md (keys, hyperparameters, presets)\n";
      return kExitOk;
    }
    if (argc > 3 || (argc == 3 && opt != "--markdown")) {
      std::cerr << "vizsweep params: unknown option '" << (opt != "--markdown" ? opt : argv[3]) << "' (have --markdown)\n";
      return kExitUsage;
    }
    return params_command(opt == "--markdown");
  }
  if (cmd == "schema") {
    const std::string opt = argc > 2 ? argv[2] : "";
    if (opt == "-h" || opt == "--help") {
      std::cout << "usage: vizsweep schema\n"
                   "  prints the index's schema as this vizsweep writes it: results_schema.sql with each technique's\n"
                   "  hyperparameter columns and the technique lists filled in from the declarations\n";
      return kExitOk;
    }
    if (argc > 2) {
      std::cerr << "vizsweep schema: unknown option '" << opt << "'\n";
      return kExitUsage;
    }
    std::cout << schema_sql();
    return kExitOk;
  }
  if (cmd == "layers") {
    LayersOptions lo;
    po::options_description lopts("vizsweep layers options");
    lopts.add_options()("help,h", "show this help")("model", po::value(&lo.model), "a TorchScript file or vgg11/13/16/19")(
        "input-size", po::value(&lo.input_size)->default_value(0), "image side in pixels (default: the model's)");
    po::positional_options_description pos;
    pos.add("model", 1);
    po::variables_map vm;
    try {
      po::store(po::command_line_parser(argc - 1, argv + 1).options(lopts).positional(pos).run(), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      std::cerr << "vizsweep layers: " << e.what() << "\n";
      return kExitUsage;
    }
    if (vm.count("help")) {
      std::cout << "usage: vizsweep layers MODEL [--input-size N]\n" << lopts;
      return kExitOk;
    }
    if (lo.model.empty()) {
      std::cerr << "vizsweep layers: name a model (a TorchScript file, or vgg11/vgg13/vgg16/vgg19)\n";
      return kExitUsage;
    }
    return layers_command(lo);
  }
  if (cmd != "plan" && cmd != "tune" && cmd != "run" && cmd != "slurm" && cmd != "status" && cmd != "verify") {
    std::cerr << "vizsweep: unknown command '" << cmd << "'\n\n" << kUsage;
    return kExitUsage;
  }
  const bool on_sweep = cmd == "plan" || cmd == "tune" || cmd == "run" || cmd == "slurm";
  SlurmOptions so;
  po::options_description opts("vizsweep " + cmd + " options");
  std::string target;
  RunOptions ro;
  opts.add_options()("help,h", "show this help");
  if (on_sweep) opts.add_options()("out,o", po::value(&ro.out), "results directory (default: results/<sweep name>)");
  if (cmd == "run") {
    opts.add_options()("threads", po::value(&ro.threads), "ATen threads per rank (default: the sweep's, else cores / ranks per node)")(
        "journal", po::value(&ro.journal)->default_value("wal"),
        "SQLite journal mode: wal (local disks) or delete (NFS, Lustre, GPFS: WAL does not work there)")(
        "progress-seconds", po::value(&ro.progress_seconds)->default_value(10), "period of progress lines when not on a terminal")(
        "drain-seconds", po::value(&ro.drain_seconds)->default_value(90),
        "after SIGUSR1/SIGTERM (a time limit), how long in-flight tasks may finish before they are abandoned")(
        "noop-tasks", po::bool_switch(&ro.noop_tasks),
        "benchmark of the runner's overhead: tasks do no work and write no data (needs a new --out)");
  }
  PlanOptions plan;
  TuneOptions tune;
  if (cmd == "plan")
    opts.add_options()("ranks", po::value(&plan.ranks)->default_value(0), "ranks of the run to project (default: the tune file's)")(
        "tune", po::value(&plan.tune), "tune file to project from (default: this machine kind's in the results directory)");
  if (cmd == "tune")
    opts.add_options()("ranks", po::value(&tune.ranks)->default_value(1), "ranks of the run to project: threads per rank = cores / ranks")(
        "threads", po::value(&tune.threads)->default_value(0), "ATen threads (default: the sweep's, else cores / ranks)")(
        "device", po::value(&tune.device), "cpu or cuda (default: cuda when the sweep allows it and there is one)")(
        "units", po::value(&tune.units)->default_value(8), "units per format probe")(
        "iters", po::value(&tune.iters)->default_value(50), "iterations per format probe (at most the setting's)")(
        "repeats", po::value(&tune.repeats)->default_value(3), "timed runs per format; the fastest counts")(
        "no-formats", "only measure the projection's costs, in the sweep's formats")(
        "layers", po::value(&tune.layers), "tune only these actmax layers, e.g. conv5_3,fc8 (the others keep the sweep's formats)")(
        "save", po::value(&tune.save), "tune file to write (default: DIR/tune/<machine kind>.json in the results directory)");
  if (cmd == "slurm") {
    opts.add_options()("nodes", po::value(&so.nodes)->default_value(1), "nodes")(
        "gpus-per-node", po::value(&so.gpus_per_node)->default_value(0), "GPUs per node: one rank each (0: a CPU job)")(
        "ranks-per-node", po::value(&so.ranks_per_node)->default_value(1), "ranks per node of a CPU job")(
        "time", po::value(&so.time),
        "time limit of each allocation, [D-]HH:MM:SS (default: suggested from the projection after `vizsweep tune`; "
        "required without one)")(
        "partition", po::value(&so.partition), "partition")("account", po::value(&so.account), "account")(
        "cpus-per-gpu", po::value(&so.cpus_per_gpu)->default_value(0), "CPU cores per rank (0: the site's default)")(
        "mem", po::value(&so.mem), "memory per node, e.g. 64G")(
        "extra-sbatch", po::value(&so.extra_sbatch), "more sbatch options, separated by ';', e.g. '--qos=high;--constraint=a100'")(
        "gpu-form", po::value(&so.gpu_form)->default_value("gpus-per-task"), "how to ask for GPUs: gpus-per-task or gres")(
        "drain-seconds", po::value(&so.drain_seconds)->default_value(120), "signal the job this long before its time limit")(
        "chain-limit", po::value(&so.chain_limit)->default_value(20), "most automatic requeues of the job")(
        "journal", po::value(&so.journal)->default_value("wal"),
        "the run's SQLite journal mode: wal, or delete for results on NFS, Lustre or GPFS (WAL does not work there)")(
        "submit", po::bool_switch(&so.submit), "run sbatch and print the job id");
  }
  bool check = false;
  if (cmd == "status")
    opts.add_options()("check", po::bool_switch(&check),
                       "exit code says what is left: 0 nothing, 4 tasks to run, 3 only failed tasks");
  po::options_description hidden;
  hidden.add_options()("target", po::value(&target));
  po::positional_options_description pos;
  pos.add("target", 1);
  po::options_description all;
  all.add(opts).add(hidden);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc - 1, argv + 1).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "vizsweep " << cmd << ": " << e.what() << "\n" << opts;
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: vizsweep " << cmd << (on_sweep ? " SWEEP" : " DIR") << " [options]\n" << opts;
    return kExitOk;
  }
  if (target.empty()) {
    std::cerr << "vizsweep " << cmd << ": missing " << (on_sweep ? "SWEEP file" : "results DIR") << "\n" << opts;
    return kExitUsage;
  }
  if (cmd == "run") {
    if (ro.journal != "wal" && ro.journal != "delete") {
      std::cerr << "vizsweep run: --journal: expected wal or delete, got '" << ro.journal << "'\n";
      return kExitUsage;
    }
    ro.sweep = target;
    return run_command(ro, &argc, &argv);
  }
  // A count option below its least value: the option named, nothing run.
  auto at_least = [&](const char* name, int value, int least) {
    if (value >= least) return true;
    std::cerr << "vizsweep " << cmd << ": " << name << ": must be >= " << least << ", got " << value << "\n";
    return false;
  };
  if (cmd == "plan") {
    if (!at_least("--ranks", plan.ranks, 0)) return kExitUsage;  // 0: the tune file's
    plan.sweep = target, plan.out = ro.out;
    return plan_command(plan);
  }
  if (cmd == "tune") {
    if (!at_least("--ranks", tune.ranks, 1) || !at_least("--threads", tune.threads, 0) || !at_least("--units", tune.units, 1) ||
        !at_least("--iters", tune.iters, 1) || !at_least("--repeats", tune.repeats, 1))
      return kExitUsage;
    tune.sweep = target, tune.out = ro.out, tune.formats = vm.count("no-formats") == 0;
    return tune_command(tune);
  }
  if (cmd == "slurm") {
    so.sweep = target;
    so.out = ro.out;
    return slurm_command(so);
  }
  if (cmd == "status") return status_command(target, check);
  return verify_command(target);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const vizsweep::Error& e) {
    std::cerr << "vizsweep: error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "vizsweep: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
}
