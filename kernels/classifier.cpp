#include "kernels/classifier.h"

#include <algorithm>

#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/image.h"

namespace vizsweep::kernels {

Classifier Classifier::load(const std::string& path) {
  Classifier c;
  std::string meta;
  c.module_ = load_script(path, torch::kCPU, meta);
  c.info_.source = path;
  c.info_.arch = "classifier";
  c.info_.in_channels = 0;  // from the metadata
  c.info_.num_classes = 0;
  apply_model_meta(path, meta, c.info_);
  c.mean_ = torch::tensor(c.info_.mean, torch::kFloat).view({1, -1, 1, 1});
  c.std_ = torch::tensor(c.info_.std, torch::kFloat).view({1, -1, 1, 1});
  return c;
}

torch::Tensor Classifier::probabilities(const torch::Tensor& images) const {
  return torch::softmax(logits(images), 1);
}

torch::Tensor Classifier::normalized(const torch::Tensor& images) const {
  if (images.dim() != 4 || images.size(1) != info_.in_channels)
    throw Error(info_.source, "the classifier takes [N, " + std::to_string(info_.in_channels) +
                                  ", H, W] images, got " + std::to_string(images.dim()) + " dimensions" +
                                  (images.dim() == 4 ? " with " + std::to_string(images.size(1)) + " channels" : ""));
  return (resize_batch(images.to(torch::kCPU, torch::kFloat), info_.input_size) - mean_) / std_;
}

torch::Tensor Classifier::logits(const torch::Tensor& images) const {
  torch::NoGradGuard ng;
  auto logits = module_.forward({normalized(images)}).toTensor();
  if (logits.dim() != 2 || logits.size(1) != info_.num_classes)
    throw Error(info_.source, "the classifier's output is not [N, " + std::to_string(info_.num_classes) + "] logits");
  return logits.to(torch::kFloat);
}

torch::Tensor Classifier::features(const torch::Tensor& images, const std::string& tap, const std::string& field) const {
  if (tap == "logits") return logits(images);
  torch::NoGradGuard ng;
  if (!graph_) {
    graph_ = GraphNet::build(module_, info_.source);
    graph_->probe(info_.in_channels, info_.input_size);
  }
  const auto& taps = graph_->taps();
  int index = -1;
  for (size_t i = 0; i < taps.size() && index < 0; ++i)
    if (taps[i].name == tap || std::find(taps[i].aliases.begin(), taps[i].aliases.end(), tap) != taps[i].aliases.end())
      index = static_cast<int>(i);
  if (index < 0)
    throw Error(field, info_.source + " has no tap '" + tap + "' (logits, or a name `vizsweep layers " + info_.source +
                           "` lists: " + taps.front().name + " .. " + taps.back().name + ")");
  auto f = graph_->run(normalized(images), index).to(torch::kFloat);
  const auto& t = taps[static_cast<size_t>(index)];
  if (t.layout == TapLayout::Map || t.layout == TapLayout::Tokens) f = f.flatten(2).mean(2);
  return f.reshape({f.size(0), -1});
}

}  // namespace vizsweep::kernels
