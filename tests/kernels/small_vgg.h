// The small VGG the technique tests optimize: VGG11 at an eighth of the width, 32 px input,
// a 64-wide classifier, 10 classes, seed 11 (random weights).
#pragma once

#include <cstdint>

#include "kernels/model.h"

namespace vizsweep::kernels::testing {

inline Model small_vgg(int64_t channels = 3) {
  VggOptions o;
  o.arch = "vgg11";
  o.width = 1.0 / 8;
  o.fc_width = 64;
  o.pool = 1;
  o.num_classes = 10;
  o.in_channels = channels;
  o.input_size = 32;
  o.seed = 11;
  return Model::builtin(o);
}

}  // namespace vizsweep::kernels::testing
