// Inversion (kernels/inversion.h): the sweep file's `invert` section.
#pragma once

#include "sweeps/technique.h"

namespace vizsweep::sweeps {

struct InvertSection : Section {
  std::vector<Located> layers;
  bool all_layers = false;
  std::vector<ImageSource> images;
  int64_t images_per_batch = 8;
  std::vector<kernels::InversionSettings> settings;
  std::vector<uint64_t> seeds = {0};

  SettingsRows settings_rows() const override;
  const std::vector<ImageSource>* inputs() const override { return &images; }
};

}  // namespace vizsweep::sweeps
