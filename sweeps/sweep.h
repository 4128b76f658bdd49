// Sweep files: parsing, validation and expansion into tasks. No torch here: the model is
// seen only through ModelDesc, which the runner fills from the kernels' layer table.
//
// A sweep file (YAML) names the model, the input size, the device policy and one section
// per technique; see sweeps/examples/ and docs/sweep-files.md. Every error names the file, the line
// and the field: `sweeps/x.yaml:12: actmax.layers[3]: no layer "conv6_1" in vgg16 (...)`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/settings.h"
#include "kernels/tune.h"
#include "sweeps/types.h"

namespace vizsweep::sweeps {

// A technique's parsed section (sweeps/technique.h); each technique's own type, in
// sweeps/techniques/, derives from it.
struct Section;
struct SweepTechnique;
struct SectionEntry {
  const SweepTechnique* technique = nullptr;
  std::shared_ptr<const Section> section;
};

struct SweepSpec {
  std::string file, dir, text;  // the sweep file, its directory, its contents
  std::string name;
  ModelSpec model;
  std::string device = "auto";  // auto, cpu, cuda
  int threads = 0;               // per rank; 0 = cores / ranks on the node
  int max_attempts = 3;
  // Working memory one task may take: units_per_batch / images_per_batch are lowered per
  // layer so that items x bytes_per_item fits (the plan stays the same on every machine).
  double batch_memory_gb = 4;
  // How the layers compute (kernels::Model::set_compute): fp32, bf16 (CPU and CUDA) or fp16
  // (CUDA). Reduced precision changes the math, so it is part of every task's key when not
  // fp32. The layout (channels_last) computes the same sums in another order, as another
  // CPU kind's kernels do: its rounding differences grow over an optimization (to 0.7% of a
  // unit's activation after 30 steps), and it is not in the key, so a results directory may
  // mix layouts as it may mix CPU kinds (docs/performance.md, "Compute format").
  std::string precision = "fp32";
  bool channels_last = false;
  // Under reduced precision, the share of each optimization's last iterations run in fp32
  // (kernels::ComputeFormat::fp32_finish); in the key with the precision when above 0.
  double fp32_finish = 0;
  // The sweep-level format: precision, channels_last, fp32_finish (0 under fp32).
  ComputeFormat default_format() const;
  // Per-layer compute formats (the file's `compute:` mapping, e.g. `fc6: {precision: bf16}`):
  // what `vizsweep tune` recommends. A key left out keeps the sweep-level default. They
  // apply to activation maximization tasks, whose quality `tune` guards (reached objective,
  // metrics); the other techniques compute in the defaults. expand() checks the layer names.
  struct LayerCompute {
    Located layer;
    std::string precision;  // "" = the sweep's
    int channels_last = -1; // -1 = the sweep's
    double fp32_finish = -1; // -1 = the sweep's
  };
  std::vector<LayerCompute> compute;
  // The format tasks of layer `alias` (or its module path `path`) compute in.
  ComputeFormat format_for(const std::string& alias, const std::string& path = "") const;
  // The technique sections the file has, in the techniques' order (sweeps/technique.h).
  std::vector<SectionEntry> sections;
  // The section of type S (e.g. ActmaxSection from sweeps/techniques/actmax.h), or nullptr.
  template <typename S>
  const S* get() const {
    for (const auto& e : sections)
      if (auto* s = dynamic_cast<const S*>(e.section.get())) return s;
    return nullptr;
  }
};

// Parses and checks everything that does not need the model: YAML syntax, keys (unknown
// ones are errors that list the valid ones), types, ranges, grids, presets, image files.
// Throws vizsweep::Error "file:line: field: reason".
SweepSpec load_sweep(const std::string& path);
// A sweep file's top-level keys: the sweep-wide ones, then one section per technique.
const std::vector<std::string>& root_keys();
SweepSpec parse_sweep(const std::string& text, const std::string& file_for_errors, const std::string& dir);

// Checks layers and units against the model (throws the same "file:line: field" errors)
// and expands the sweep into tasks, deterministically, in spec order.
std::vector<Task> expand(const SweepSpec& spec, const ModelDesc& model);

// Hash of the model identity and every task key: two specs with the same hash do the same work.
std::string spec_hash(const SweepSpec& spec, const std::vector<Task>& tasks);

// The sweep's compute formats: "fp32" or "fp32 (conv5_3: bf16, channels_last; fc6: bf16)".
std::string compute_summary(const SweepSpec& spec);
}  // namespace vizsweep::sweeps
