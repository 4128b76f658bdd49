// Brightness jitter: every step, each image's pixels (all channels) shifted by its own offset
// in [-brightness, brightness] of the [0, 1] scale, drawn from the task's seed. A pointwise
// transform: it acts on the window the model sees, after the spatial ones (and on their
// background fill too, as it would on the whole framed image).
#include <torch/torch.h>

#include "kernels/optvis/transform.h"

namespace vizsweep::kernels {

namespace {

class BrightnessTransform : public PerImagePointwise {
 public:
  BrightnessTransform(const TransformContext& c, double amount) : PerImagePointwise(c, amount, 0xa54ff53a5f1d36f1ULL) {}
  std::string name() const override { return "brightness"; }
  torch::Tensor apply(const torch::Tensor& x, double) const override { return x + per_image(); }
};

}  // namespace

TransformDeclaration transform_declaration_brightness() { return per_image_declaration<BrightnessTransform>("brightness"); }

}  // namespace vizsweep::kernels
