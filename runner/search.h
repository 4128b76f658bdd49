// actmax.search (sweeps/techniques/actmax.h): asynchronous successive halving over a layer's
// settings, decided by the coordinator as each trial's result arrives and recorded in the
// index's search_trials table, so a killed search resumes without deciding anything twice.
//
// A trial is one setting at one rung of one layer: the tasks of that setting's rung budget
// over the layer's sampled units. Its metric is the mean of the metric's column over the
// trial's result rows (the index's metrics table says which column and which way is better),
// read when its last task is recorded. Where the sweep's exemplars section scores a layer
// (machine interpretability: `bottom: true` and a feature model), that layer's trials wait for
// the exemplar scan: the search plans them once every exemplars task is done, and sends each
// trial task its units' exemplars (context()), so the worker scores the images in memory as the
// run's finishing step would (Engine::run), and a trial is ranked by the score the finished
// sweep reports. A promoted setting's next rung is computed afresh at
// eta times the iterations (the task keys differ by their iterations); nothing is continued
// from the previous rung's images, and the cost of that is counted in the search's
// unit-iterations (summary()).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/index.h"
#include "sweeps/sweep.h"

namespace vizsweep::runner {

// The promotion rule alone, for one layer (no index): Li et al., "A System for Massively
// Parallel Hyperparameter Tuning" (MLSys 2020), Algorithm 2, with a finite set of settings
// all started at rung 0. When a trial completes at rung r, every setting among the top
// floor(n_r / eta) of the n_r trials completed at r (better metric first, then the lower
// setting index) that was not yet promoted goes to rung r + 1.
class Asha {
 public:
  Asha(int settings, int rungs, int eta, bool higher_is_better);
  // Records the trial; returns the settings promoted from its rung now, in rank order.
  std::vector<int> complete(int setting, int rung, double metric);
  // Restores a recorded trial without deciding anything (resume).
  void restore(int setting, int rung, double metric, bool promoted);
  bool completed(int setting, int rung) const;
  bool promoted(int setting, int rung) const;
  // The best setting at the highest rung with a completed trial (-1: none yet), its rung and metric.
  struct Best {
    int setting = -1, rung = -1;
    double metric = 0;
  };
  Best best() const;
  // The settings of a rung's completed trials, best first.
  std::vector<int> ranking(int rung) const;
  double metric(int setting, int rung) const;

 private:
  bool better(double a, int sa, double b, int sb) const;
  int settings_, rungs_, eta_;
  bool higher_;
  std::vector<std::map<int, double>> done_;   // per rung: setting -> metric
  std::vector<std::vector<bool>> promoted_;   // per rung, per setting
};

// Checks the search's metric against the index schema's metrics table (before anything is
// written): it must be an actmax metric whose value exists when a trial's tasks are recorded.
// Throws vizsweep::Error naming actmax.search.metric.
void check_search(const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks, const std::string& output_layer);

// Whether a search's trials at `layer` are scored against natural exemplars as they complete:
// the sweep's exemplars section covers the layer, keeps bottom lists and has a feature model.
bool scored_by_exemplars(const sweeps::SweepSpec& spec, const std::string& layer);

// `plan`'s lines for a search: its expected cost (successive halving's trials: K, then
// floor(K / eta), ... per layer), its worst case (every trial promoted, which asynchronous
// promotion allows when results arrive in a bad order) and the full grid's at max_iterations.
std::string search_plan(const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks);

// `status`'s lines for a results directory a search writes into: per layer and rung, the
// trials completed and promoted and the best value so far ("" without search trials).
std::string search_progress(const ResultIndex& index);

// The search over a run's tasks: which tasks a run starts with, and the decisions as results
// arrive. One per run, on rank 0, next to the coordinator.
class SearchRun {
 public:
  // tasks: the sweep's full expansion (every setting at every rung). Reads the decisions the
  // index already holds.
  SearchRun(ResultIndex& index, const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks, int64_t sweep_id);
  ~SearchRun();
  // Whether task i is in the index's plan: rung 0 (once the exemplar scan is done, at a layer
  // scored by exemplars), or a rung its setting was promoted to.
  bool planned(size_t i) const;
  // Puts the tasks to run in a seeded random order (the search's seed), before the run sorts
  // them by cost: asynchronous promotion assumes trials arrive in no particular order, and a
  // grid's own order (a hyperparameter's values in turn) can arrive best-last, where nearly
  // every trial is promoted.
  void shuffle(std::vector<int64_t>& todo) const;
  // After the plan's tasks are in the index: records the trials whose tasks are all done but
  // that have no row yet, with their promotions (whose tasks it registers and returns).
  std::vector<int64_t> catch_up();
  // A task was recorded done (inside the coordinator's transaction): when it completes its
  // trial, records the trial and any promotions and registers the promoted trials' tasks.
  // Returns their indices, to be queued first.
  // The same for the exemplars task that completes the scan: the waiting rung-0 trials.
  std::vector<int64_t> on_done(int64_t task);
  // What task i needs with its assignment: for a trial at a layer scored by exemplars,
  // {"exemplars": {layer: {unit: {"top": [[image_id, y0, y1, x0, x1], ...], "bottom": [...],
  // "top1": activation}}}} for its units (from the index's exemplars view, the lists the
  // finishing step reads); null otherwise, or while the scan is incomplete (a resumed run
  // recomputing damaged exemplars: those images are scored by the finishing step instead).
  nlohmann::json context(int64_t task);
  // Per layer: the chosen setting, its metric and rung, the unit-iterations spent against the
  // full grid's at max_iterations, and each rung's rank correlation with the final ranking.
  std::string summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vizsweep::runner
