// VGG-style models, their layer table, and forward passes truncated at a layer.
//
// A Model is an ordered list of layers with torchvision's paths (features.0 ..
// features.30, avgpool, classifier.0 .. classifier.6) and Caffe-style aliases
// (conv1_1, relu1_1, pool1, .., fc6, relu6, drop6, fc7, .., fc8). Every technique works
// in pixel space [0, 1]: the input normalization (mean/std) belongs to the model.
// Parameters are frozen (requires_grad false) and the model is always in eval mode.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/spectral.h"  // ParallelFor

namespace vizsweep::kernels {

// Other: a tap of a graph model of any other kind (LayerInfo::type says which).
enum class LayerKind { Conv, BatchNorm, ReLU, MaxPool, AvgPool, Dropout, Linear, Other };
const char* layer_kind_name(LayerKind kind);

struct LayerInfo {
  int index = 0;              // position in the forward order
  std::string path;           // torchvision module path, e.g. "features.28"
  std::string alias;          // Caffe-style name, e.g. "conv5_3", "fc8"; a graph model's tap name
  std::vector<std::string> other_names;  // a graph model's other call sites of this tensor
  std::string type;           // the module class or operation ("Conv2d", "Bottleneck", "add")
  LayerKind kind = LayerKind::Conv;
  std::vector<int64_t> shape; // per-image output shape: {C, H, W} or {N}
  int64_t units = 0;          // channels (spatial layers) or features (fc layers)
  int64_t rf_size = 0;        // receptive field side in input pixels (fc: the input side)
  int64_t rf_stride = 0;      // input pixels between neighbouring units (fc: 0)
  std::string rf_note;        // a graph tap without a local field: why ("whole image after aten::mean")
  double flops = 0;           // forward FLOPs of this layer for one image
  double flops_to_here = 0;   // forward FLOPs from the input through this layer, one image
  bool spatial() const { return shape.size() == 3; }
};

// Metadata that travels with a model (TorchScript extra file "vizsweep.json").
struct ModelInfo {
  std::string arch = "vgg";   // vgg11/13/16/19, or "vgg" when unknown
  std::string source;         // "builtin", or the TorchScript file path
  int64_t in_channels = 3;
  int64_t num_classes = 1000;
  int64_t input_size = 224;   // default input side in pixels
  std::vector<double> mean, std;     // per input channel, pixel space [0, 1]
  std::vector<std::string> classes;  // class names, num_classes of them
};

// Options of the built-in VGG family (torchvision's layout and parameter names).
struct VggOptions {
  std::string arch = "vgg16";  // vgg11, vgg13, vgg16, vgg19
  int64_t in_channels = 3;
  int64_t num_classes = 1000;
  double width = 1.0;          // multiplies every channel count and the fc width
  int64_t fc_width = 0;        // hidden fc units; 0 = round(4096 * width)
  int64_t pool = 7;            // AdaptiveAvgPool2d output side
  int64_t input_size = 224;
  uint64_t seed = 0;           // random init (torchvision's init scheme)
};

// Applies that metadata to `info`: arch, input_size, mean, std, classes; in_channels and
// num_classes only where `info` has them <= 0 (nothing in the weights told). Fills the
// defaults (ImageNet normalization for 3 channels, else 0.5/0.5; classes "0".."N-1").
void apply_model_meta(const std::string& path, const std::string& meta, ModelInfo& info);

class Model {
 public:
  // Builds torchvision's VGG architecture with random weights from opts.seed.
  // Throws vizsweep::Error naming the bad option (unknown arch, width <= 0, ...).
  static Model builtin(const VggOptions& opts);

  // Loads a TorchScript file. A VGG-style layout (submodules features, [avgpool], classifier
  // of Conv2d, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, Dropout, Linear) keeps its
  // Caffe-style aliases; any other module whose forward maps one image tensor to logits
  // [N, K] is a graph of taps (graph.h). Metadata comes from its "vizsweep.json" extra file
  // when present, else ImageNet normalization for 3 channels and 0.5/0.5 otherwise. Throws
  // vizsweep::Error naming `path` for a missing, unreadable or corrupt file, or a forward of
  // another signature.
  static Model load(const std::string& path, torch::Device device = torch::kCPU);

  // A model that is one Linear layer (classifier.0) on the flattened image: logits =
  // weight * flatten(normalize(x)) + bias. For closed-form tests and baselines.
  // weight: [num_classes, C*S*S]; info gives in_channels, input_size, mean and std.
  static Model linear(const torch::Tensor& weight, const torch::Tensor& bias, ModelInfo info);

  const ModelInfo& info() const { return info_; }
  torch::Device device() const { return device_; }
  void to(torch::Device device);

  // How the layers compute. The inputs and outputs of forward(), forward_crop() and
  // forward_all() stay fp32 in either case; gradients flow through the casts.
  // - precision: the weights are converted once (Bf16 on CPU and CUDA, Fp16 on CUDA only);
  //   going back to Fp32 or to another reduced precision needs a freshly loaded model.
  // - channels_last: weights and activations in NHWC, the layout GPU tensor cores prefer.
  // Shared by copies of this Model. Throws vizsweep::Error naming "precision".
  enum class Precision { Fp32, Bf16, Fp16 };
  void set_compute(Precision precision, bool channels_last);
  Precision precision() const;
  bool channels_last() const;

  // The layer table for the current input size (set_input_size; default info().input_size).
  const std::vector<LayerInfo>& layers() const { return layers_; }
  int64_t input_size() const { return input_size_; }
  // Recomputes the table; throws if a layer's output would be empty at this size.
  void set_input_size(int64_t side);

  // Whether the layers are a graph model's taps (graph.h) rather than a VGG chain.
  bool is_graph() const;

  // Finds a layer by alias, path or (graph models) any of its call sites. Throws
  // vizsweep::Error listing the valid names.
  const LayerInfo& layer(const std::string& name) const;
  // Throws vizsweep::Error if unit is outside [0, layer.units).
  void check_unit(const LayerInfo& layer, int64_t unit) const;

  // Normalizes x (pixel space [0, 1], shape [B, C, S, S]) and runs the layers up to and
  // including `upto` (an index into layers()); nothing past it is computed. Checks the
  // input's channels and size (throws vizsweep::Error).
  torch::Tensor forward(const torch::Tensor& x, int upto) const;
  torch::Tensor logits(const torch::Tensor& x) const { return forward(x, last_index()); }
  // Every layer's output for x up to `upto` (-1: all), in forward order (tensors are
  // distinct, not aliased).
  std::vector<torch::Tensor> forward_all(const torch::Tensor& x, int upto = -1) const;
  // forward() up to `upto`, handing every layer's output to `visit(index, output)` as it is
  // computed: valid only during the call (the next layer may overwrite it in place), so no
  // copies are kept, unlike forward_all.
  void forward_each(const torch::Tensor& x, int upto, const std::function<void(int, const torch::Tensor&)>& visit) const;
  int last_index() const { return static_cast<int>(layers_.size()) - 1; }

  // Receptive-field cropping. The input rows [y0, y1) and columns [x0, x1) that determine the
  // output at (out_y, out_x) of spatial layer `upto`, the start moved back to a multiple of
  // the layer's total stride so that the layers run on the crop compute that output exactly
  // as on the whole image; (oy, ox) is its position in the crop's output. nullopt when the crop would be the
  // whole image or the layer is not spatial (fc layers, after an adaptive pool).
  struct InputWindow {
    int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0, oy = 0, ox = 0;
  };
  std::optional<InputWindow> input_window(int upto, int64_t out_y, int64_t out_x) const;
  // The receptive field of output (out_y, out_x) of layer `upto`: the input rows [y0, y1) and
  // columns [x0, x1) it depends on, clipped to the image (oy, ox: the position asked); the
  // whole image for fc layers and after an adaptive pool. A transformer's token tap, whose
  // field after attention is the whole image, gives the patch's own pixels: where the token
  // at that grid position comes from (exemplar boxes and crops, the atlas).
  InputWindow receptive_field(int upto, int64_t out_y, int64_t out_x) const;
  // forward() on an input of any spatial size, e.g. a crop from input_window(); checks channels.
  torch::Tensor forward_crop(const torch::Tensor& x, int upto) const;

  // Class name for a logit index ("#17" past the list).
  std::string class_name(int64_t index) const;

  struct Impl;  // the layers' forward functions and geometry (model.cpp)

 private:
  Model() = default;
  void check_input(const torch::Tensor& x) const;
  void set_graph_table(int64_t side);
  std::shared_ptr<Impl> impl_;
  ModelInfo info_;
  std::vector<LayerInfo> layers_;
  int64_t input_size_ = 0;
  torch::Device device_ = torch::kCPU;
  torch::Tensor mean_, std_;
};

// The element type the layers compute in: kFloat, kBFloat16 or kHalf.
torch::ScalarType precision_dtype(Model::Precision p);
// "fp32", "bf16", "fp16"; parse_precision throws vizsweep::Error naming `field` otherwise.
const char* precision_name(Model::Precision p);
Model::Precision parse_precision(const std::string& name, const std::string& field = "precision");

// VGG's max pooling, 2 x 2 windows at stride 2 without padding, of a float NCHW CPU tensor
// [N, C, H, W] (H, W >= 2): pool.h's forward, whose time does not depend on the data, with
// LibTorch's gradient; the same values and gradient as torch::max_pool2d(x, 2, 2). The
// model's pooling stages of that shape run through it. Throws std::invalid_argument on any
// other tensor.
torch::Tensor max_pool2x2(const torch::Tensor& x);

// Whether the process keeps freed memory for reuse (glibc's allocator tuned at start-up, unless
// MALLOC_* environment variables are set; model.cpp says why).
bool keeps_freed_memory();

// The kernels' ParallelFor on ATen's intra-op threads: at::parallel_for with `grain`
// (chunks of at least that many items). The kernels compile with OpenMP, so the region this
// runs is a real one (kernels/CMakeLists.txt); fewer items than grain stay on the caller.
ParallelFor intra_op_parallel(int64_t grain = 1);

// Sets ATen's intra-op thread count; n <= 0 means the cores available to this process.
// Returns the count now in force.
int set_threads(int n);

}  // namespace vizsweep::kernels
