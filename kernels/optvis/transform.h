// Transforms: what the model sees of the optimized images, drawn afresh every step from the
// task's seed (Lucid's transformation robustness). Each transform is one class with its own
// draws; `Transforms` composes them in the order given and cuts the part of the result the
// objective reads (the receptive-field crop's window, or the whole image).
//
// Spatial transforms (flip, pad, jitter, scale, rotate) in that relative order (Lucid's) run
// as one fused pass that reads only the rows the window needs: pad and jitter as two gathers
// with wrap-around, or, under scale or rotation, one bilinear resampling that also applies
// the flips and jitter's shift (the uncovered border `fill`). Pointwise transforms (a
// colour change) act on the rendered rows before the spatial ones or on the window after
// them. Any other order runs each transform on the whole images in turn, then cuts the
// window.
//
// Adding a transform: its own file kernels/optvis/transforms/NAME.cpp (a class deriving from
// Transform and `TransformDeclaration transform_declaration_NAME()`; CMake lists the folder),
// its hyperparameter's row in the actmax table of kernels/settings.cpp (its value through
// extra_param()), and its test. brightness.cpp is the example.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/resample.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

class Transform {
 public:
  enum class Kind { Spatial, Pointwise };
  virtual ~Transform() = default;
  virtual std::string name() const = 0;
  virtual Kind kind() const { return Kind::Spatial; }
  // Step `it`'s draws for the batch (from the transform's own stream of the task's seed).
  virtual void draw(int it) = 0;
  // The step's transform of whole images x [B, C, H, W] (values in [0, 1]), differentiable;
  // `fill` is the background grey level. A spatial transform may change H and W (pad).
  virtual torch::Tensor apply(const torch::Tensor& x, double fill) const = 0;
};
using TransformPtr = std::unique_ptr<Transform>;

// What a transform is made for: images of side `side`, `batch` of them, `iterations` steps,
// the task's seed, the model's device.
struct TransformContext {
  int64_t side = 0, batch = 0;
  int iterations = 0;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
};

// Draws of one stream of the task's seed (`seed`: the task's seed xor the stream's own salt),
// kDrawAhead steps at a time; at(it) is step it's slice of what `draw` returns for n steps.
// A stream drawn ahead gives the values one draw per step would, for a fraction of the calls.
class DrawBlocks {
 public:
  static constexpr int kDrawAhead = 64;
  using Draw = std::function<torch::Tensor(int64_t steps, at::Generator& gen)>;
  DrawBlocks(uint64_t seed, int iterations, Draw draw);
  torch::Tensor at(int it);

 private:
  at::Generator gen_;
  int iterations_;
  Draw draw_;
  torch::Tensor block_;
  int block0_ = -1;
};

// A transform's declaration: its name, the hyperparameter that switches it on (in the
// settings table, settings.cpp) and how to make it from settings. `make` returns null when
// the settings leave it off.
struct TransformDeclaration {
  std::string name;
  std::string param;  // the hyperparameter (its range, default and help live in the table)
  std::function<TransformPtr(const ActMaxSettings& s, const TransformContext& c)> make;
};
// Every transform, in Lucid's order (the default composition order).
const std::vector<TransformDeclaration>& transform_declarations();

// A pointwise transform drawing one number per image and step: amount x a uniform draw in
// [-1, 1) from the task's seed xor `salt` (per_image(), [B, 1, 1, 1] on the device); the
// subclass says what it does with it (brightness adds it, contrast scales by 1 + it).
class PerImagePointwise : public Transform {
 public:
  PerImagePointwise(const TransformContext& c, double amount, uint64_t salt);
  Kind kind() const override { return Kind::Pointwise; }
  void draw(int it) override;

 protected:
  const torch::Tensor& per_image() const { return value_; }

 private:
  TransformContext c_;
  double amount_;
  DrawBlocks draws_;
  torch::Tensor value_;
};

// The declaration of transform T (constructed from the context and the amount) switched on by
// the extra hyperparameter `name` above 0.
template <typename T>
TransformDeclaration per_image_declaration(const char* name) {
  return {name, name, [name](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
            const double amount = extra_param(s, name);
            return amount > 0 ? std::make_unique<T>(c, amount) : nullptr;
          }};
}

// The transforms of a request, composed.
class Transforms {
 public:
  // transforms: in the order they act; view: the window of the seen image the objective
  // reads (the crop's, or the whole image); fill: the background grey level.
  Transforms(std::vector<TransformPtr> transforms, const TransformContext& context, Model::InputWindow view, double fill);
  ~Transforms();
  bool empty() const { return all_.empty(); }
  // Draws step `it`'s parameters of every transform.
  void draw(int it);
  // The rows [r0, r1) of the images the step's view reads.
  std::pair<int64_t, int64_t> rows_read() const;
  // Whether apply() takes a band of rows (the fused resampling on the CPU) instead of images.
  bool reads_band() const;
  // The view's window [B, C, h, w] of what the model sees of x: the images [B, C, S, S] or,
  // when reads_band(), the band of their rows from row0.
  torch::Tensor apply(const torch::Tensor& x, int64_t row0) const;
  std::string description() const;  // "flip+pad+jitter", "none"

 private:
  struct Fused;
  std::vector<TransformPtr> all_;
  std::vector<const Transform*> before_, after_;  // pointwise, around the fused spatial pass
  std::unique_ptr<Fused> fused_;                  // null: the generic path
  TransformContext context_;
  Model::InputWindow view_;
  double fill_;
};

// The transforms `s` switches on, in Lucid's order.
// `order`: the names (transform_declarations()) that act first, in that order; the others
// follow in Lucid's. Throws vizsweep::Error naming "transform_order" for an unknown or
// repeated name.
std::vector<TransformPtr> make_transforms(const ActMaxSettings& s, const TransformContext& context,
                                         const std::vector<std::string>& order = {});

// The sampling grid [B, y1 - y0, x1 - x0, 2] (grid_sample's, align_corners false) of rows
// [y0, y1) and columns [x0, x1) of a batch of S x S images, each translated by shifts[b] =
// (dy, dx) pixels (when defined), then scaled about its centre by 1 + scale (2 draw[0][b] - 1)
// and rotated by rotate (2 draw[1][b] - 1) degrees (draw [2, B] uniform in [0, 1)): affine_grid's
// values for that window, on the host.
torch::Tensor affine_sampling_grid(const torch::Tensor& draw, double scale, double rotate, const torch::Tensor& shifts,
                                   int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1);

}  // namespace vizsweep::kernels
