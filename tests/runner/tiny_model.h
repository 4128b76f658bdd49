// A three-layer stand-in for a model's layer table, for the runner's unit tests (no torch):
// FLOPs to each layer, whole and on the centre unit's crop, so fc8's tasks cost the most.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "runner/results_dir.h"
#include "sweeps/sweep.h"

namespace vizsweep::testing {

inline sweeps::ModelDesc tiny_model() {
  sweeps::ModelDesc m;
  m.arch = "vgg11";
  m.in_channels = 1;
  m.num_classes = 10;
  m.input_size = 32;
  m.layers = {{"conv1_1", "features.0", "conv", 8, true, 1e5, 2e4},
              {"relu1_1", "features.1", "relu", 8, true, 1.1e5, 2.2e4},
              {"fc8", "classifier.1", "fc", 10, false, 6.1e5, 6.1e5}};
  return m;
}

// A new, empty results directory with its shards folder, named after the running test.
inline std::filesystem::path fresh_results_dir(const std::string& prefix) {
  const auto dir = std::filesystem::temp_directory_path() /
                   (prefix + std::to_string(getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(runner::ResultsDir(dir.string()).shards());
  return dir;
}

}  // namespace vizsweep::testing
