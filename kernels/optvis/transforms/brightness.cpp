// Brightness jitter: every step, each image's pixels (all channels) shifted by its own offset
// in [-brightness, brightness] of the [0, 1] scale, drawn from the task's seed. A pointwise
// transform: it acts on the window the model sees, after the spatial ones (and on their
// background fill too, as it would on the whole framed image).
#include <torch/torch.h>

#include "kernels/optvis/transform.h"

namespace vizsweep::kernels {

namespace {

class BrightnessTransform : public Transform {
 public:
  BrightnessTransform(const TransformContext& c, double amount)
      : c_(c), amount_(amount), draws_(c.seed ^ 0xa54ff53a5f1d36f1ULL, c.iterations, [B = c.batch](int64_t n, at::Generator& g) {
          return torch::rand({n, B}, g);
        }) {}
  std::string name() const override { return "brightness"; }
  Kind kind() const override { return Kind::Pointwise; }
  void draw(int it) override { offset_ = ((draws_.at(it) * 2.0 - 1.0) * amount_).view({c_.batch, 1, 1, 1}).to(c_.device); }
  torch::Tensor apply(const torch::Tensor& x, double) const override { return x + offset_; }

 private:
  TransformContext c_;
  double amount_;
  DrawBlocks draws_;
  torch::Tensor offset_;  // [B, 1, 1, 1] on the device
};

}  // namespace

TransformDeclaration transform_declaration_brightness() {
  return {"brightness", "brightness", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
            const double b = extra_param(s, "brightness");
            return b > 0 ? std::make_unique<BrightnessTransform>(c, b) : nullptr;
          }};
}

}  // namespace vizsweep::kernels
