// The sweep layer's shared types: the model as the sweeps see it, image sources, places in
// the sweep file, tasks, and their formatting helpers. A leaf header: the parser (sweep.h),
// the technique interface (technique.h), the reader and every technique (techniques/) include
// it; it includes nothing of sweeps/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
  int64_t height = 0, width = 0;         // the output's positions (0 for fc layers)
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

// "0-63,70,72-73" for a sorted unit list.
std::string format_ranges(const std::vector<int64_t>& v);
// "1,234,567".
std::string thousands(int64_t v);
// "fashion-mnist/test#0,fashion-mnist/test#1" for items of an image list.
std::string image_ids(const std::vector<ImageSource>& images, const std::vector<int64_t>& idx);

}  // namespace vizsweep::sweeps
