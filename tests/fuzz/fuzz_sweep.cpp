// libFuzzer target: sweep-file parsing, validation and expansion (sweeps/ and the torch-free
// settings). Any input must either give a sweep or a vizsweep::Error with a message; any other
// exception, a crash, or what AddressSanitizer / UndefinedBehaviorSanitizer find is a bug.
// Built and run by tests/fuzz/run_fuzzer.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/error.h"
#include "sweeps/sweep.h"
#include "sweeps/technique.h"

using namespace vizsweep::sweeps;

namespace {

// A VGG11-like model at 1/16 width: what the runner would describe for a small built-in.
ModelDesc model() {
  ModelDesc m;
  m.arch = "vgg11";
  m.in_channels = 1;
  m.num_classes = 10;
  m.input_size = 32;
  m.layers = {{"conv1_1", "features.0", "conv", 4, true, 1e5},      {"relu1_1", "features.1", "relu", 4, true, 1.1e5},
              {"pool1", "features.2", "maxpool", 4, true, 1.2e5},   {"conv2_1", "features.3", "conv", 8, true, 5e5},
              {"relu2_1", "features.4", "relu", 8, true, 5.1e5},    {"conv3_1", "features.6", "conv", 16, true, 9e5},
              {"avgpool", "avgpool", "avgpool", 16, true, 9.2e5}, {"fc6", "classifier.0", "fc", 32, false, 9.6e5},
              {"fc7", "classifier.3", "fc", 32, false, 9.7e5},      {"fc8", "classifier.6", "fc", 10, false, 9.8e5}};
  for (int c = 0; c < 10; ++c) m.classes.push_back("class" + std::to_string(c));
  return m;
}

}  // namespace

// With VIZSWEEP_FUZZ_WORDS set: prints the dictionary words the declarations give
// (sweeps::declared_words()) and exits; run_fuzzer.sh adds them to tests/fuzz/sweep.dict, so a new key or
// hyperparameter reaches the fuzzer without another file.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!std::getenv("VIZSWEEP_FUZZ_WORDS")) return 0;
  for (const auto& w : declared_words()) std::printf("\"%s\"\n", w.c_str());
  std::fflush(stdout);
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ModelDesc m = model();
  static const char* dir = std::getenv("VIZSWEEP_FUZZ_DIR") ? std::getenv("VIZSWEEP_FUZZ_DIR") : ".";
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    SweepSpec spec = parse_sweep(text, "fuzz.yaml", dir);
    auto tasks = expand(spec, m);
    if (!tasks.empty()) (void)spec_hash(spec, tasks);
  } catch (const vizsweep::Error& e) {
    if (std::string(e.what()).empty()) std::abort();  // every error says what is wrong
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped exception (not vizsweep::Error): %s\n", e.what());
    std::abort();
  }
  return 0;
}
