// Measured cost: what `vizsweep tune` writes and `plan`, `slurm` and `status` read to project
// a sweep's wall time on this kind of machine. No torch here.
//
// A tune file (JSON, docs/results-layout.md) records the machine kind, the threads per rank
// it was measured with, the compute format tune chose per actmax layer, and for every group
// of the sweep's tasks (technique, layer, setting) the seconds one measured task took and its
// estimated cost (sweeps::Task::cost, FLOPs). A task's projected time is its group's seconds
// scaled by its cost; tasks go to ranks most expensive first, as the coordinator hands them
// out.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sweeps/sweep.h"

namespace vizsweep::runner {

// The tune file of machine kind `machine` in results directory `dir`: DIR/tune/<slug>.json.
std::string tune_path(const std::string& dir, const std::string& machine);

struct TaskCost {
  std::string technique, layer;
  int setting = -1;
  double cost = 0;
};

class Projection {
 public:
  explicit Projection(nlohmann::json j) : j_(std::move(j)) {}
  // Reads a tune file; throws vizsweep::Error naming the file when it is not one.
  static Projection load(const std::string& path);
  // The newest tune file in DIR/tune/ for `machine` ("" = any machine), if there is one.
  static std::optional<std::string> find(const std::string& dir, const std::string& machine);

  const nlohmann::json& json() const { return j_; }
  std::string machine() const { return j_.value("machine", std::string("?")); }
  int threads() const { return j_.value("threads", 0); }
  // The runner's own seconds for the sweep: start-up (MPI, model, index) and the dispatch
  // and commit of every task (tune times a run with --noop-tasks).
  double startup() const { return j_.value("startup_s", 0.0); }
  // Seconds of the run's last step on rank 0 (machine interpretability, runner/finish.h).
  double finish() const { return j_.value("finish_s", 0.0); }
  // Projected seconds of one task: its group's measured seconds scaled by cost; a group not
  // measured takes its technique and layer's rate, then its technique's. nullopt: nothing
  // of its technique was measured.
  std::optional<double> seconds(const TaskCost& t) const;
  // The compute format the measurements of `layer`'s actmax tasks were taken in.
  std::optional<sweeps::ComputeFormat> measured_format(const std::string& layer) const;

  // Wall time of tasks of these durations on `ranks` ranks, dispatched most expensive first
  // to whichever rank is free (the coordinator's order).
  static double makespan(std::vector<double> seconds, int ranks);

 private:
  nlohmann::json j_;
};

// A sweep's projected run: per (technique, layer) the tasks' summed seconds, and the wall
// time on `ranks` ranks (startup, the tasks' makespan, the finishing step).
struct ProjectedRun {
  struct Layer {
    std::string technique, layer;
    int64_t tasks = 0;
    double seconds = 0;
  };
  std::vector<Layer> layers;  // in first-appearance order
  double startup = 0, task_seconds = 0, makespan = 0, finish = 0, wall = 0;  // wall = startup + makespan + finish
  int64_t unmeasured = 0;     // tasks of a technique the tune file has nothing of
};
ProjectedRun project(const Projection& p, const std::vector<TaskCost>& tasks, int ranks);

// "2 h 05 min", "4 min 10 s", "12 s".
std::string human_seconds(double s);
// "HH:MM:SS" or "D-HH:MM:SS" (Slurm's --time), rounded up to the minute.
std::string slurm_time(double s);

}  // namespace vizsweep::runner
