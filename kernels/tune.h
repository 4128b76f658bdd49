// Choosing a layer's compute format by measurement, behind a quality guard. Plain C++ (no
// torch): the caller supplies the probe that runs activation maximization in a format, so
// `vizsweep tune` (through its engine) and vizsweep-bench-actmax --tune (kernels only, for a
// GPU machine without the runner's libraries) decide the same way.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

namespace vizsweep::kernels {

// How a layer computes (Model::set_compute): precision fp32, bf16 or fp16 (CUDA only);
// channels_last: NHWC activations and weights; fp32_finish (reduced precision only): the share
// of each optimization's last iterations that run on the network in fp32 NCHW instead,
// ceil(fp32_finish x iterations) of them (ActMaxRequest::fp32_model), 0 for none.
struct ComputeFormat {
  std::string precision = "fp32";
  bool channels_last = false;
  double fp32_finish = 0;
  auto tied() const { return std::tie(precision, channels_last, fp32_finish); }
  bool operator<(const ComputeFormat& o) const { return tied() < o.tied(); }
  bool operator==(const ComputeFormat& o) const { return tied() == o.tied(); }
  bool operator!=(const ComputeFormat& o) const { return !(*this == o); }
  // fp32_finish as written in names, task keys and sweep files: "0.04".
  std::string finish_text() const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", fp32_finish);
    return buf;
  }
  // How many of `iterations` the finish runs in fp32: ceil(fp32_finish x iterations).
  int finish_iterations(int iterations) const {
    return fp32_finish > 0 ? static_cast<int>(std::ceil(fp32_finish * iterations - 1e-9)) : 0;
  }
  // "fp32", "bf16, channels_last", "bf16, channels_last, fp32_finish 0.04" (inline, as the
  // above: the sweep parser, built alone for fuzzing, names formats too)
  std::string name() const {
    return precision + (channels_last ? ", channels_last" : "") + (fp32_finish > 0 ? ", fp32_finish " + finish_text() : "");
  }
};

// The fp32 finish `tune` tries for a reduced precision that fails the guard: 4% of the
// iterations (2 of the probe's 50, 20 of yosinski1's 500). Measured on VGG16's fc8 (AMD EPYC
// Zen 5, avx512_bf16): bf16 + channels_last alone reached 0.9899 of fp32's objective, with 2
// of 50 iterations in fp32 0.9980; they cost about 4% of fp32's time, so bf16's 3.7x becomes
// about 3.3x.
constexpr double kFp32Finish = 0.04;

// The quality guard, against fp32 NCHW from the same seed and units (the objective of every
// format's final images is evaluated by the fp32 model):
// - reached: the units' summed objective over fp32's, at least kMinReached;
// - every unit that fp32 drives above zero reaches at least kMinUnitReached of its fp32
//   objective (one unit left behind fails the format, whatever the sum says);
// - the mean high-frequency energy of the images (metrics.h) within kMaxHfDiff of fp32's:
//   the pictures keep their character, not only their activation.
// A format that passes is chosen only when it is at least kMinSpeedup faster than the best so
// far (fp32 NCHW first): timing noise never trades exactness for nothing.
constexpr double kMinReached = 0.99, kMinUnitReached = 0.9, kMaxHfDiff = 0.05, kMinSpeedup = 1.1;

struct FormatProbe {  // one probe run
  double seconds = 0;
  std::vector<double> objective;  // per unit, under the fp32 model
  std::vector<double> hf_energy;  // per unit
};

struct FormatTrial {
  ComputeFormat format;
  double seconds = 0;    // fastest of the repeats
  double speedup = 1;    // fp32 NCHW's seconds over these
  double reached = 1, min_unit = 1, hf_diff = 0;
  bool pass = true;
  std::string why;       // why it failed the guard, or was not tried
  bool tried = true;
};

struct LayerTuning {
  std::string layer;
  std::vector<FormatTrial> trials;  // trials[0] is fp32 NCHW
  ComputeFormat chosen;
  double speedup = 1;               // of the chosen format
};

// The formats worth trying on a device: fp32 and bf16 (CPU and CUDA), fp16 (CUDA), each NCHW
// and NHWC. `skipped` gets the formats left out and why (bf16 on a CPU without bf16 units).
std::vector<ComputeFormat> candidate_formats(bool cuda, std::vector<FormatTrial>* skipped = nullptr);

// A probe this long is timed once: scheduling noise is far below the formats' differences.
constexpr double kLongProbe = 2.0;

// Runs probe(format, repeat) for every format `repeats` times (after one untimed warm-up each;
// once when it takes kLongProbe seconds or more),
// applies the guard and chooses; a reduced precision that fails the guard is probed and judged
// again with an fp32 finish of kFp32Finish (a trial of its own). probe must run the same
// units, seed and iterations each time, and honour the format's fp32_finish.
LayerTuning tune_layer(const std::string& layer, const std::vector<ComputeFormat>& formats,
                       const std::function<FormatProbe(const ComputeFormat&, bool warm_up)>& probe, int repeats);

// This CPU: "AMD EPYC (family 26, model 2); avx2 avx512f avx512_bf16, no AMX" (/proc/cpuinfo),
// and whether it has bf16 units (avx512_bf16 or amx_bf16; without them oneDNN emulates bf16,
// several times slower than fp32).
std::string cpu_kind();
bool cpu_has_bf16_units();

}  // namespace vizsweep::kernels
