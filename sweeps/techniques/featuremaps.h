// Feature maps (kernels/featuremaps.h): the sweep file's `featuremaps` section.
#pragma once

#include "sweeps/technique.h"

namespace vizsweep::sweeps {

struct FeaturemapsSection : Section {
  std::vector<Located> layers;  // empty = all
  std::vector<ImageSource> images;

  const std::vector<ImageSource>* inputs() const override { return &images; }
};

}  // namespace vizsweep::sweeps
