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

namespace vizsweep::sweeps {

// What the sweep layer needs to know about a model (filled by the runner).
struct LayerDesc {
  std::string alias, path, kind;  // kind: conv, relu, maxpool, avgpool, dropout, fc, batchnorm, other
  int64_t units = 0;
  bool spatial = false;
  double flops_to_here = 0;       // forward FLOPs through this layer, one image
  // The same on the crop that covers the receptive field of the layer's centre unit (where
  // activation maximization of the centre unit runs); = flops_to_here for fc layers.
  double crop_flops_to_here = 0;
  // Working memory of one image's forward and backward pass through this layer: 4 bytes per
  // output element of every layer up to here (measured peaks are about 0.6 of it), on the
  // whole input and on the centre unit's crop.
  double bytes_per_item = 0, crop_bytes_per_item = 0;
  std::vector<std::string> other_names;  // a graph model's other call sites of this tap
};
struct ModelDesc {
  std::string arch;
  bool graph = false;  // a graph model's taps (kernels/graph.h), not a VGG chain
  int64_t in_channels = 3, num_classes = 1000, input_size = 224;
  std::vector<LayerDesc> layers;
  std::vector<std::string> classes;
  // nullptr when absent; matches alias, path or another name.
  const LayerDesc* find(const std::string& name) const;
  // "conv1_1..conv5_3, fc6..fc8, ..." for error messages.
  std::string names() const;
};

struct ModelSpec {
  std::string file;         // TorchScript path (absolute), or empty for a built-in
  std::string arch = "vgg16";
  int64_t in_channels = 3, num_classes = 1000, fc_width = 0, pool = 7;
  double width = 1.0;
  uint64_t seed = 0;
  int64_t input_size = 0;   // 0: the model's own
  bool builtin() const { return file.empty(); }
  std::string identity() const;  // canonical description, part of the spec hash
};

// One input image: a file, or an item of an IDX dataset.
struct ImageSource {
  std::string file;                     // image file (absolute), or
  std::string idx_images, idx_labels;   // dataset files (absolute)
  int64_t index = -1;                   // item in the dataset
  std::string id;                       // "fashion-mnist/test#17" or the file path as written
};

struct Located {  // a value's place in the sweep file, for errors found later
  std::string name;
  int line = 0;
  std::string field;
};

// How a layer computes (kernels/tune.h).
using ComputeFormat = kernels::ComputeFormat;

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

struct Task {
  std::string key;              // 32 hex digits: hash of the canonical parameters
  uint64_t seed = 0;            // derived from the key
  std::string technique;        // its technique's name (sweeps/technique.h)
  std::string layer;            // alias; "*" for FGSM
  std::vector<int64_t> items;   // units (actmax) or indexes into the section's images
  int setting = -1;             // index into the section's settings; -1 for featuremaps
  uint64_t user_seed = 0;       // the sweep's seed this task was expanded from
  double cost = 0;              // estimated FLOPs
  double memory = 0;            // estimated working memory, bytes (without the weights)
  std::string canonical;        // what the key hashes
};

// Checks layers and units against the model (throws the same "file:line: field" errors)
// and expands the sweep into tasks, deterministically, in spec order.
std::vector<Task> expand(const SweepSpec& spec, const ModelDesc& model);

// Hash of the model identity and every task key: two specs with the same hash do the same work.
std::string spec_hash(const SweepSpec& spec, const std::vector<Task>& tasks);

// "0-63,70,72-73" for a sorted unit list.
std::string format_ranges(const std::vector<int64_t>& v);
// The sweep's compute formats: "fp32" or "fp32 (conv5_3: bf16, channels_last; fc6: bf16)".
std::string compute_summary(const SweepSpec& spec);
// "1,234,567".
std::string thousands(int64_t v);
// "fashion-mnist/test#0,fashion-mnist/test#1" for items of an image list.
std::string image_ids(const std::vector<ImageSource>& images, const std::vector<int64_t>& idx);

}  // namespace vizsweep::sweeps
