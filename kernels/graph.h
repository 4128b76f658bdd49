// Any TorchScript classifier as a graph of taps (kernels/graph.cpp).
//
// A tap is a call site whose output is a feature map [N, C, H, W], a feature vector [N, K] or
// a sequence of tokens [N, T, D] (a vision transformer's): every call of a submodule's forward
// (convolution, normalization, activation, pooling, linear, and the blocks made of them), and
// the tensor operations written in a forward between module calls (a residual add, a
// concatenation, a flatten). Names come from the module path, with ":k" for the k-th call of a
// module called more than once and "owner:op" for an operation, e.g.
//   layer1.0.conv1   layer1.0.relu:2   layer1.0:add   features.denseblock1:cat
// Several call sites can return the same tensor (a block returns its last layer's output):
// that is one tap, named by the outermost call, with the others as its aliases.
//
// Running a tap computes only the part of the graph between the input and it: the forward
// graph, inlined, with that tap as its one output and every node it does not depend on
// removed. In-place operations are rewritten out of place, so no later operation changes a
// tap's output.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace torch::jit {
struct Module;
}

namespace vizsweep::kernels {

enum class TapLayout {
  Map,         // [N, C, H, W]
  Vector,      // [N, K]
  Tokens,      // [N, T, D] whose patch tokens lie on a square grid: shown as [N, D, grid, grid]
  ClassToken,  // the first token of a Tokens tap, [N, D] (named "<tap>:cls")
};

struct GraphTap {
  std::string name;                  // the outermost call site returning this tensor
  std::vector<std::string> aliases;  // the other call sites returning it
  std::string type;                  // the module's class ("Conv2d", "Bottleneck") or the operation ("add")
  bool module_call = true;           // a module's forward (false: an operation between calls)
  TapLayout layout = TapLayout::Map;
  std::vector<int64_t> raw_shape;    // per image, as the graph computes it (tokens: {T, D})
  std::vector<int64_t> shape;        // per image, as vizsweep shows it: {C, H, W} or {K}
  int64_t grid = 0;                  // Tokens: the patch grid's side
  bool class_token = false;          // Tokens: the first token is a class token (T = 1 + grid^2)
  double flops = 0;                  // forward FLOPs of the tap's own operation, one image
  double flops_to_here = 0;          // forward FLOPs of every node the tap depends on, one image
  // The receptive field (Map taps): output position p along dimension d (0: rows, 1: columns)
  // depends on input positions [stride * p + lo[d], stride * p + hi[d]] (before clipping to
  // the image), through every path from the input; `field` says whether that is known.
  enum class Field { Local, Whole, Unknown } field = Field::Unknown;
  int64_t stride = 0, lo[2] = {0, 0}, hi[2] = {0, 0};
  bool exact_crop = false;           // Local, and a crop computes it exactly (no ceil-mode pooling on the way)
  std::string field_why;             // Whole or Unknown: the operation that made it so
};

class GraphNet {
 public:
  // Reads the module's forward: one tensor input (besides self), one tensor output. Throws
  // vizsweep::Error naming `file` otherwise, or for a call the walk cannot follow.
  static std::shared_ptr<GraphNet> build(const torch::jit::Module& module, const std::string& file);
  ~GraphNet();

  // Runs the whole graph on zeros of [1, channels, side, side] and sets the taps' shapes and
  // FLOPs. Throws vizsweep::Error naming "input_size" when the model fails at that size.
  void probe(int64_t channels, int64_t side);
  const std::vector<GraphTap>& taps() const;
  // The shape of the graph's own output in that run ({1, K} for a classifier).
  const std::vector<int64_t>& output_shape() const;

  // The output of tap `index` for the normalized input x (in the layout taps()[index].shape
  // says): only the nodes the tap depends on run.
  torch::Tensor run(const torch::Tensor& x, int index) const;
  // The outputs of taps 0..upto in one pass, each its own tensor.
  std::vector<torch::Tensor> run_all(const torch::Tensor& x, int upto) const;
  // The graph's own output (the logits), the whole forward.
  torch::Tensor logits(const torch::Tensor& x) const;

  struct Impl;

 private:
  GraphNet();
  // After probe(): each tap whose field analysis allows a crop keeps it only if the crop
  // reproduces its centre unit on a random image.
  void check_crops(int64_t channels, int64_t side);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vizsweep::kernels
