// FGSM and iterative FGSM (kernels/fgsm.h): the sweep file's `fgsm` section.
#pragma once

#include "sweeps/technique.h"

namespace vizsweep::sweeps {

struct FgsmSection : Section {
  std::vector<ImageSource> images;
  int64_t images_per_batch = 100;
  std::vector<kernels::FgsmSettings> settings;  // eps x steps (x targeted)
  std::vector<std::string> setting_names;
  int64_t target_offset = 1;  // targeted: target = (true label + offset) mod classes
  int attack_line = 0, targeted_line = 0;  // where the sweep file gives them (model checks)

  SettingsRows settings_rows() const override;
  const std::vector<ImageSource>* inputs() const override { return &images; }
};

}  // namespace vizsweep::sweeps
