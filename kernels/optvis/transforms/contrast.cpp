// Contrast jitter: every step, each image's pixels (all channels) scaled about the background
// level by its own factor in [1 - contrast, 1 + contrast], drawn from the task's seed. A
// pointwise transform, after the spatial ones: an image keeps its unit's response only if the
// response does not hang on one exact contrast.
#include <torch/torch.h>

#include "kernels/optvis/transform.h"

namespace vizsweep::kernels {

namespace {

class ContrastTransform : public Transform {
 public:
  ContrastTransform(const TransformContext& c, double amount)
      : c_(c), amount_(amount), draws_(c.seed ^ 0x510e527fade682d1ULL, c.iterations, [B = c.batch](int64_t n, at::Generator& g) {
          return torch::rand({n, B}, g);
        }) {}
  std::string name() const override { return "contrast"; }
  Kind kind() const override { return Kind::Pointwise; }
  void draw(int it) override { factor_ = (1.0 + (draws_.at(it) * 2.0 - 1.0) * amount_).view({c_.batch, 1, 1, 1}).to(c_.device); }
  torch::Tensor apply(const torch::Tensor& x, double fill) const override { return (x - fill) * factor_ + fill; }

 private:
  TransformContext c_;
  double amount_;
  DrawBlocks draws_;
  torch::Tensor factor_;  // [B, 1, 1, 1] on the device
};

}  // namespace

TransformDeclaration transform_declaration_contrast() {
  return {"contrast", "contrast", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
            const double k = extra_param(s, "contrast");
            return k > 0 ? std::make_unique<ContrastTransform>(c, k) : nullptr;
          }};
}

}  // namespace vizsweep::kernels
