// What a technique's runner side (runner/techniques/) gets to run a task: the rank's model on
// its device, the sweep's input images, and converters from tensors to shard data. Torch
// lives here, so only those files and the engine include it.
#pragma once

#include <torch/torch.h>

#include "kernels/model.h"
#include "runner/technique.h"

namespace vizsweep::kernels {
class Classifier;
}

namespace vizsweep::runner {

class RunContext {
 public:
  virtual ~RunContext() = default;
  virtual const kernels::Model& model() const = 0;
  // The running task's fp32 finish (kernels::ComputeFormat::fp32_finish): the same network
  // in fp32 NCHW and the share of the last iterations it runs; nullptr and 0 without one.
  virtual const kernels::Model* fp32_model() const { return nullptr; }
  virtual double fp32_finish() const { return 0; }
  // Items `idx` of an image list as [B, C, S, S] on the device, and their dataset labels (-1
  // when unknown: image files).
  virtual torch::Tensor images(const std::vector<sweeps::ImageSource>& all, const std::vector<int64_t>& idx,
                               std::vector<int64_t>& labels) = 0;
  // A classifier file (kernels/classifier.h), loaded once per engine on the CPU; `field` names
  // it in errors.
  virtual const kernels::Classifier& classifier(const std::string& path, const std::string& field) = 0;
};

// An image [C, H, W] in [0, 1] as an 8-bit shard image.
ImageBlob blob(const std::string& name, const torch::Tensor& image);
// A tensor as a named float32 / int64 shard array.
FloatArray floats(const std::string& name, const torch::Tensor& t);
IntArray ints(const std::string& name, const torch::Tensor& t);

}  // namespace vizsweep::runner
