// Activation maximization (kernels/actmax.h): the sweep file's `actmax` section.
#pragma once

#include "kernels/objective_spec.h"
#include "sweeps/technique.h"

namespace vizsweep::sweeps {

// Settings are named: presets by their name, grid points by the values of the grid axes that
// vary ("decay=0.01,blur_radius=1", or "grid" when none varies), random draws "random-N".
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

  SettingsRows settings_rows() const override;
  std::string plan_note(const std::vector<Task>& tasks) const override;
};

}  // namespace vizsweep::sweeps
