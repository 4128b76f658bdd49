// An image classifier of any architecture, for judging what other models' visualizations
// show: a TorchScript module whose forward maps normalized images to class logits, with its
// "vizsweep.json" metadata (in_channels, num_classes, input_size, mean, std, classes), as
// models/export_torchvision.py writes it. The project's judge of the default model is
// models/fashion_judge.pt, a residual network trained apart from it (models/make_judge_model.sh).
#pragma once

#include <string>

#include <torch/script.h>

#include "kernels/graph.h"
#include "kernels/model.h"

namespace vizsweep::kernels {

// A TorchScript file, loaded in eval mode with gradients off for its parameters; `meta` gets
// its "vizsweep.json" extra file ("" when absent). Throws vizsweep::Error naming `path` for a
// missing, unreadable or corrupt file.
torch::jit::Module load_script(const std::string& path, torch::Device device, std::string& meta);

class Classifier {
 public:
  // Throws vizsweep::Error naming `path` (missing, corrupt, no in_channels/num_classes).
  static Classifier load(const std::string& path);
  const ModelInfo& info() const { return info_; }
  // Softmax over the classes for images in pixel space [0, 1], [N, C, H, W] with C the
  // classifier's channels; resized (bilinear, antialiased) to its input size when H or W
  // differ. No gradients.
  torch::Tensor probabilities(const torch::Tensor& images) const;
  // The logits the softmax is taken of, [N, classes].
  torch::Tensor logits(const torch::Tensor& images) const;
  // A feature vector per image, [N, K]: the logits for tap "logits", else the output of that
  // tap of the classifier's graph (kernels/graph.h, a name or an alias), averaged over its
  // positions (feature maps; a transformer's tokens: its patch tokens). Throws
  // vizsweep::Error naming `field` for a tap the graph has not.
  torch::Tensor features(const torch::Tensor& images, const std::string& tap, const std::string& field) const;

 private:
  // The images checked ([N, in_channels, H, W]), resized to the input size and normalized.
  torch::Tensor normalized(const torch::Tensor& images) const;
  mutable torch::jit::Module module_;
  mutable std::shared_ptr<GraphNet> graph_;  // built on the first features() of a tap
  ModelInfo info_;
  torch::Tensor mean_, std_;
};

}  // namespace vizsweep::kernels
