// Activation maximization (kernels/actmax.h): the sweep file's `actmax` section.
#pragma once

#include "kernels/objective_spec.h"
#include "sweeps/technique.h"

namespace vizsweep::sweeps {

// Settings are named: presets by their name, grid points by the values of the grid axes that
// vary ("decay=0.01,blur_radius=1", or "grid" when none varies), random draws "random-N".
// actmax.search: asynchronous successive halving (ASHA; Li et al., MLSys 2020) over the
// section's settings, per layer, on a seeded stratified sample of `units` units: every setting
// starts at min_iterations (rung 0); as each trial's result arrives, the top 1/eta of the
// trials completed at its rung go on to the next rung at eta times the iterations (the last
// rung at max_iterations). The coordinator decides and records (runner/search.h).
struct SearchSpec {
  std::string method;            // "asha"; empty: no search
  std::string metric = "score";  // a row of the index's metrics table for actmax
  int metric_line = 0;
  int64_t min_iterations = 25, max_iterations = 400, eta = 3, units = 16;
  int units_line = 0;
  uint64_t seed = 0;
  size_t settings = 0;            // K: the settings searched; the section's settings are K x rungs
  std::vector<int> budgets;       // each rung's iterations, min_iterations .. max_iterations
  bool active() const { return !method.empty(); }
  int rungs() const { return static_cast<int>(budgets.size()); }
  // The section's setting index of base setting k at rung r, and back.
  int setting_of(size_t k, int r) const { return static_cast<int>(k) * rungs() + r; }
  size_t base_of(int setting) const { return static_cast<size_t>(setting / rungs()); }
  int rung_of(int setting) const { return setting % rungs(); }
};

// The rungs' iterations: min x eta^r while below max, then max.
std::vector<int> search_budgets(int64_t min_iterations, int64_t max_iterations, int64_t eta);
// The search's sample of a layer's units: `n` strata of `units` (sorted) in order, one unit
// drawn from each with a generator seeded by the search's seed and the layer's name.
std::vector<int64_t> search_sample(const std::vector<int64_t>& units, int64_t n, uint64_t seed, const std::string& layer);

struct ActmaxSection : Section {
  std::vector<Located> layers;        // expanded ("all" -> every conv and fc layer)
  bool all_layers = false;
  std::vector<int64_t> units;         // empty = all units of each layer
  int units_line = 0;
  int64_t units_per_batch = 64;
  kernels::ObjectiveSpec objective;   // kernels/objective_spec.h; default: the centre unit
  int objective_line = 0;
  // The transforms that act first, in this order (the others follow in Lucid's); in the key
  // when given.
  std::vector<std::string> transform_order;
  std::vector<kernels::ActMaxSettings> settings;
  std::vector<Located> setting_at;    // where each setting was given (line, "actmax.grid")
  std::vector<uint64_t> seeds = {0};
  // An independent classifier (TorchScript, any architecture; absolute path) that judges the
  // class units' images: tasks at the model's output layer store the probability it gives each
  // unit's class, and its file's hash is in their keys. Empty: no judge.
  std::string judge, judge_hash;
  int judge_line = 0;
  // Images per unit, optimized together under Lucid's diversity penalty (its weight: the
  // diversity_weight hyperparameter); 1: one image per unit, no penalty.
  int64_t diversity = 1;
  // The layer the penalty reads (name as written; empty: the mapped layer when it has 4 x 4
  // positions, else the last such layer before it); in the key when given.
  Located diversity_layer;
  // The images whose mean spectrum magnitude param maco keeps (kernels/optvis/param.h), and
  // their identity's hash (in maco tasks' keys); empty: the 1/f magnitude.
  std::vector<ImageSource> spectrum;
  std::string spectrum_hash;
  SearchSpec search;

  SettingsRows settings_rows() const override;
  std::string plan_note(const std::vector<Task>& tasks) const override;
};

}  // namespace vizsweep::sweeps
