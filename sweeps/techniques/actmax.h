// Activation maximization (kernels/actmax.h): the sweep file's `actmax` section.
#pragma once

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
  kernels::ObjectiveKind objective = kernels::ObjectiveKind::CentreUnit;
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
  // The images whose mean spectrum magnitude param maco keeps (kernels/optvis/param.h), and
  // their identity's hash (in maco tasks' keys); empty: the 1/f magnitude.
  std::vector<ImageSource> spectrum;
  std::string spectrum_hash;

  SettingsRows settings_rows() const override;
  std::string plan_note(const std::vector<Task>& tasks) const override;
};

}  // namespace vizsweep::sweeps
