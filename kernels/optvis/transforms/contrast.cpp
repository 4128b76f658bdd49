// Contrast jitter: every step, each image's pixels (all channels) scaled about the background
// level by its own factor in [1 - contrast, 1 + contrast], drawn from the task's seed. A
// pointwise transform, after the spatial ones: an image keeps its unit's response only if the
// response does not hang on one exact contrast.
#include <torch/torch.h>

#include "kernels/optvis/transform.h"

namespace vizsweep::kernels {

namespace {

class ContrastTransform : public PerImagePointwise {
 public:
  ContrastTransform(const TransformContext& c, double amount) : PerImagePointwise(c, amount, 0x510e527fade682d1ULL) {}
  std::string name() const override { return "contrast"; }
  torch::Tensor apply(const torch::Tensor& x, double fill) const override { return (x - fill) * (1.0 + per_image()) + fill; }
};

}  // namespace

TransformDeclaration transform_declaration_contrast() { return per_image_declaration<ContrastTransform>("contrast"); }

}  // namespace vizsweep::kernels
