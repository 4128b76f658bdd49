#include "kernels/model.h"
#include "kernels/graph.h"

#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/names.h"
#include "kernels/pool.h"

namespace vizsweep::kernels {

const char* layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::Conv: return "conv";
    case LayerKind::BatchNorm: return "batchnorm";
    case LayerKind::ReLU: return "relu";
    case LayerKind::MaxPool: return "maxpool";
    case LayerKind::AvgPool: return "avgpool";
    case LayerKind::Dropout: return "dropout";
    case LayerKind::Linear: return "fc";
    case LayerKind::Other: return "other";
  }
  return "?";
}

namespace {

// What the layer table needs to know about a layer, independent of the backend.
struct Geometry {
  int64_t kernel = 1, stride = 1, padding = 0, dilation = 1;
  bool ceil_mode = false;
  int64_t out_units = 0;     // conv output channels, linear output features
  int64_t in_units = 0;      // conv input channels
  int64_t adaptive_out = 0;  // AdaptiveAvgPool2d output side
};

struct Stage {
  std::string path;
  LayerKind kind;
  Geometry geo;
  bool flatten_before = false;  // torchvision flattens between avgpool and classifier
  std::function<torch::Tensor(const torch::Tensor&)> fn;
};

std::string shape_string(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

}  // namespace

struct Model::Impl {
  std::vector<Stage> stages;
  std::function<void(torch::Device)> to;
  std::function<void(torch::ScalarType)> to_dtype;
  std::function<std::vector<torch::Tensor>()> tensors;  // parameters and buffers
  Model::Precision precision = Model::Precision::Fp32;
  bool channels_last = false;
  std::shared_ptr<torch::nn::Module> net;   // built-in models own their modules here
  std::optional<torch::jit::Module> script; // loaded models
  std::shared_ptr<GraphNet> graph;          // loaded models that are not VGG chains
};

namespace {

// Every 4-D parameter and buffer (conv weights) in NHWC or back in NCHW.
void apply_layout(Model::Impl& impl, bool channels_last) {
  torch::NoGradGuard ng;
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  for (auto& t : impl.tensors())
    if (t.dim() == 4) t.set_data(t.contiguous(format));
}

void set_module_functions(Model::Impl& impl, const std::shared_ptr<torch::nn::Module>& net) {
  impl.to = [net](torch::Device d) { net->to(d); };
  impl.to_dtype = [net](torch::ScalarType t) { net->to(t); };
  impl.tensors = [net]() {
    std::vector<torch::Tensor> v = net->parameters();
    for (const auto& b : net->buffers()) v.push_back(b);
    return v;
  };
}

const std::map<std::string, std::vector<int>>& vgg_configs() {
  static const std::map<std::string, std::vector<int>> cfgs = {
      {"vgg11", {64, -1, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1}},
      {"vgg13", {64, 64, -1, 128, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1}},
      {"vgg16", {64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1}},
      {"vgg19", {64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1, 512, 512,
                 512, 512, -1}},
  };
  return cfgs;
}

// Python's round() (half to even), so scaled widths match models/export_torchvision.py.
int64_t scaled(double v, double width) { return std::max<int64_t>(1, std::llrint(std::nearbyint(v * width))); }

// Reads an int (or the first element of a tuple / list) from a TorchScript constant or attribute.
std::optional<int64_t> int_of(const c10::IValue& v) {
  if (v.isInt()) return v.toInt();
  if (v.isBool()) return static_cast<int64_t>(v.toBool());
  if (v.isTuple() && !v.toTupleRef().elements().empty()) return int_of(v.toTupleRef().elements()[0]);
  if (v.isIntList() && !v.toIntList().empty()) return v.toIntList().get(0);
  return std::nullopt;
}

std::optional<int64_t> module_int(const torch::jit::Module& m, const std::string& name) {
  const auto& type = m.type();
  if (type->hasConstant(name)) return int_of(type->getConstant(name));
  if (m.hasattr(name)) return int_of(m.attr(name));
  return std::nullopt;
}

std::string first_line(const std::string& s) {
  auto p = s.find('\n');
  return p == std::string::npos ? s : s.substr(0, p);
}

// One TorchScript submodule as a Stage, or an error naming it.
Stage script_stage(const std::string& file, const std::string& path, const torch::jit::Module& m) {
  Stage st;
  st.path = path;
  std::string type = m.type()->name() ? m.type()->name()->name() : "?";
  auto need = [&](const std::string& attr) -> int64_t {
    auto v = module_int(m, attr);
    if (!v) throw Error(file, "module " + path + " (" + type + ") has no readable '" + attr + "'");
    return *v;
  };
  if (type == "Conv2d") {
    st.kind = LayerKind::Conv;
    auto w = m.attr("weight").toTensor();
    st.geo.out_units = w.size(0);
    st.geo.in_units = w.size(1);
    st.geo.kernel = w.size(2);
    st.geo.stride = need("stride");
    auto pad = m.type()->hasConstant("padding") ? m.type()->getConstant("padding") : c10::IValue();
    if (pad.isString()) {
      if (pad.toStringRef() != "same" && pad.toStringRef() != "valid")
        throw Error(file, "module " + path + ": unsupported padding '" + pad.toStringRef() + "'");
      st.geo.padding = pad.toStringRef() == "same" ? (st.geo.kernel - 1) / 2 : 0;
    } else {
      st.geo.padding = need("padding");
    }
    st.geo.dilation = module_int(m, "dilation").value_or(1);
  } else if (type == "BatchNorm2d") {
    st.kind = LayerKind::BatchNorm;
  } else if (type == "ReLU") {
    st.kind = LayerKind::ReLU;
  } else if (type == "MaxPool2d") {
    st.kind = LayerKind::MaxPool;
    st.geo.kernel = need("kernel_size");
    st.geo.stride = module_int(m, "stride").value_or(st.geo.kernel);
    st.geo.padding = module_int(m, "padding").value_or(0);
    st.geo.dilation = module_int(m, "dilation").value_or(1);
    st.geo.ceil_mode = module_int(m, "ceil_mode").value_or(0) != 0;
  } else if (type == "AdaptiveAvgPool2d") {
    st.kind = LayerKind::AvgPool;
    st.geo.adaptive_out = need("output_size");
  } else if (type == "Dropout") {
    st.kind = LayerKind::Dropout;
  } else if (type == "Linear") {
    st.kind = LayerKind::Linear;
    st.geo.out_units = m.attr("weight").toTensor().size(0);
  } else {
    throw Error(file, "not a VGG-style model: module " + path + " is a " + type +
                          " (supported: Conv2d, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, "
                          "Dropout, Linear)");
  }
  torch::jit::Module handle = m;
  st.fn = [handle](const torch::Tensor& x) mutable { return handle.forward({x}).toTensor(); };
  return st;
}

std::vector<double> json_doubles(const nlohmann::json& j, const char* key, const std::string& file) {
  std::vector<double> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) throw Error(file, std::string("vizsweep.json: '") + key + "' is not a list");
  for (const auto& v : j[key]) {
    if (!v.is_number()) throw Error(file, std::string("vizsweep.json: '") + key + "' holds a non-number");
    out.push_back(v.get<double>());
  }
  return out;
}

}  // namespace

torch::jit::Module load_script(const std::string& path, torch::Device device, std::string& meta) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(path, "no such model file");
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "is a directory, not a model file");
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(path, "cannot open model file for reading");
  }
  torch::jit::ExtraFilesMap extra{{"vizsweep.json", ""}};
  torch::jit::Module mod;
  try {
    mod = torch::jit::load(path, device, extra);
  } catch (const c10::Error& e) {
    throw Error(path, "not a readable TorchScript file (truncated or corrupt?): " + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Error(path, std::string("not a readable TorchScript file: ") + first_line(e.what()));
  }
  mod.eval();
  for (auto p : mod.parameters()) p.set_requires_grad(false);
  meta = extra["vizsweep.json"];
  return mod;
}

void apply_model_meta(const std::string& path, const std::string& meta, ModelInfo& info) {
  if (!meta.empty()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(meta);
    } catch (const std::exception& e) {
      throw Error(path, std::string("vizsweep.json inside the model is not valid JSON: ") + e.what());
    }
    if (j.contains("arch") && j["arch"].is_string()) info.arch = j["arch"].get<std::string>();
    if (j.contains("input_size") && j["input_size"].is_number_integer()) info.input_size = j["input_size"].get<int64_t>();
    // Only where the weights could not tell (a classifier of any architecture).
    if (info.in_channels <= 0 && j.contains("in_channels") && j["in_channels"].is_number_integer())
      info.in_channels = j["in_channels"].get<int64_t>();
    if (info.num_classes <= 0 && j.contains("num_classes") && j["num_classes"].is_number_integer())
      info.num_classes = j["num_classes"].get<int64_t>();
    info.mean = json_doubles(j, "mean", path);
    info.std = json_doubles(j, "std", path);
    if (j.contains("classes") && j["classes"].is_array())
      for (const auto& c : j["classes"]) info.classes.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  }
  if (info.in_channels <= 0 || info.num_classes <= 0)
    throw Error(path, "vizsweep.json: needs in_channels and num_classes (export the model with "
                      "models/export_torchvision.py)");
  const auto C = static_cast<size_t>(info.in_channels);
  if (info.mean.empty()) info.mean = C == 3 ? std::vector<double>{0.485, 0.456, 0.406} : std::vector<double>(C, 0.5);
  if (info.std.empty()) info.std = C == 3 ? std::vector<double>{0.229, 0.224, 0.225} : std::vector<double>(C, 0.5);
  if (info.mean.size() != C || info.std.size() != C)
    throw Error(path, "vizsweep.json: mean/std need " + std::to_string(C) + " values (one per input channel)");
  for (double s : info.std)
    if (!(s > 0)) throw Error(path, "vizsweep.json: std values must be > 0");
  if (info.classes.size() != static_cast<size_t>(info.num_classes)) {
    info.classes.clear();
    for (int64_t i = 0; i < info.num_classes; ++i) info.classes.push_back(std::to_string(i));
  }
}

Model Model::builtin(const VggOptions& o) {
  const auto& cfgs = vgg_configs();
  auto it = cfgs.find(o.arch);
  if (it == cfgs.end()) throw Error("arch", "unknown architecture '" + o.arch + "' (have vgg11, vgg13, vgg16, vgg19)");
  if (!(o.width > 0) || !std::isfinite(o.width)) throw Error("width", "must be > 0");
  if (o.in_channels < 1) throw Error("in_channels", "must be >= 1");
  if (o.num_classes < 1) throw Error("num_classes", "must be >= 1");
  if (o.pool < 1) throw Error("pool", "must be >= 1");
  if (o.fc_width < 0) throw Error("fc_width", "must be >= 0");

  torch::manual_seed(o.seed);
  auto net = std::make_shared<torch::nn::Module>("VGG");
  auto features = torch::nn::Sequential();
  auto impl = std::make_shared<Impl>();
  int64_t c = o.in_channels;
  auto add = [&](torch::nn::Sequential& seq, const std::string& prefix, LayerKind kind, Geometry geo,
                 auto holder, bool flatten_before = false) {
    Stage st;
    st.path = prefix + "." + std::to_string(seq->size());
    st.kind = kind;
    st.geo = geo;
    st.flatten_before = flatten_before;
    st.fn = [holder](const torch::Tensor& x) mutable { return holder->forward(x); };
    seq->push_back(holder);
    impl->stages.push_back(std::move(st));
  };
  for (int v : it->second) {
    if (v < 0) {
      Geometry g;
      g.kernel = 2, g.stride = 2;
      add(features, "features", LayerKind::MaxPool, g, torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
    } else {
      int64_t out = scaled(v, o.width);
      auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(c, out, 3).padding(1));
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      torch::nn::init::zeros_(conv->bias);
      Geometry g;
      g.kernel = 3, g.padding = 1, g.out_units = out;
      add(features, "features", LayerKind::Conv, g, conv);
      add(features, "features", LayerKind::ReLU, Geometry{}, torch::nn::ReLU());
      c = out;
    }
  }
  net->register_module("features", features);
  auto avgpool = torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions({o.pool, o.pool}));
  net->register_module("avgpool", avgpool);
  {
    Stage st;
    st.path = "avgpool";
    st.kind = LayerKind::AvgPool;
    st.geo.adaptive_out = o.pool;
    st.fn = [avgpool](const torch::Tensor& x) mutable { return avgpool->forward(x); };
    impl->stages.push_back(std::move(st));
  }
  auto classifier = torch::nn::Sequential();
  int64_t hidden = o.fc_width > 0 ? o.fc_width : scaled(4096, o.width);
  auto linear = [&](int64_t in, int64_t out, bool first) {
    auto l = torch::nn::Linear(in, out);
    torch::nn::init::normal_(l->weight, 0.0, 0.01);
    torch::nn::init::zeros_(l->bias);
    Geometry g;
    g.out_units = out;
    add(classifier, "classifier", LayerKind::Linear, g, l, first);
  };
  linear(c * o.pool * o.pool, hidden, true);
  add(classifier, "classifier", LayerKind::ReLU, Geometry{}, torch::nn::ReLU());
  add(classifier, "classifier", LayerKind::Dropout, Geometry{}, torch::nn::Dropout());
  linear(hidden, hidden, false);
  add(classifier, "classifier", LayerKind::ReLU, Geometry{}, torch::nn::ReLU());
  add(classifier, "classifier", LayerKind::Dropout, Geometry{}, torch::nn::Dropout());
  linear(hidden, o.num_classes, false);
  net->register_module("classifier", classifier);
  net->eval();
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  impl->net = net;
  set_module_functions(*impl, net);

  Model m;
  m.impl_ = impl;
  m.info_.arch = o.arch;
  m.info_.source = "builtin";
  m.info_.in_channels = o.in_channels;
  m.info_.num_classes = o.num_classes;
  m.info_.input_size = o.input_size;
  if (o.in_channels == 3) {
    m.info_.mean = {0.485, 0.456, 0.406};
    m.info_.std = {0.229, 0.224, 0.225};
  } else {
    m.info_.mean.assign(o.in_channels, 0.5);
    m.info_.std.assign(o.in_channels, 0.5);
  }
  for (int64_t i = 0; i < o.num_classes; ++i) m.info_.classes.push_back(std::to_string(i));
  m.mean_ = torch::tensor(m.info_.mean, torch::kFloat).view({1, -1, 1, 1});
  m.std_ = torch::tensor(m.info_.std, torch::kFloat).view({1, -1, 1, 1});
  m.set_input_size(o.input_size);
  return m;
}

Model Model::linear(const torch::Tensor& weight, const torch::Tensor& bias, ModelInfo info) {
  if (weight.dim() != 2 || bias.dim() != 1 || bias.size(0) != weight.size(0))
    throw Error("weight", "expected weight [K, N] and bias [K]");
  if (weight.size(1) != info.in_channels * info.input_size * info.input_size)
    throw Error("weight", "has " + std::to_string(weight.size(1)) + " inputs, image has " +
                              std::to_string(info.in_channels * info.input_size * info.input_size));
  auto net = std::make_shared<torch::nn::Module>("Linear");
  auto l = torch::nn::Linear(weight.size(1), weight.size(0));
  {
    torch::NoGradGuard ng;
    l->weight.copy_(weight);
    l->bias.copy_(bias);
  }
  auto classifier = torch::nn::Sequential(l);
  net->register_module("classifier", classifier);
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  auto impl = std::make_shared<Impl>();
  Stage st;
  st.path = "classifier.0";
  st.kind = LayerKind::Linear;
  st.geo.out_units = weight.size(0);
  st.flatten_before = true;
  st.fn = [l](const torch::Tensor& x) mutable { return l->forward(x); };
  impl->stages.push_back(st);
  impl->net = net;
  set_module_functions(*impl, net);
  Model m;
  m.impl_ = impl;
  info.num_classes = weight.size(0);
  if (info.mean.empty()) info.mean.assign(info.in_channels, 0.0);
  if (info.std.empty()) info.std.assign(info.in_channels, 1.0);
  if (info.classes.empty())
    for (int64_t i = 0; i < info.num_classes; ++i) info.classes.push_back(std::to_string(i));
  m.info_ = info;
  m.mean_ = torch::tensor(info.mean, torch::kFloat).view({1, -1, 1, 1});
  m.std_ = torch::tensor(info.std, torch::kFloat).view({1, -1, 1, 1});
  m.set_input_size(info.input_size);
  return m;
}

namespace {

// The VGG chain of a loaded module: its stages, or false (and no stages) when it is not one.
bool vgg_stages(const std::string& path, const torch::jit::Module& mod, std::vector<Stage>& stages) {
  if (!mod.hasattr("features") || !mod.hasattr("classifier") || !mod.attr("features").isModule() ||
      !mod.attr("classifier").isModule())
    return false;
  try {
    for (const auto& c : mod.attr("features").toModule().named_children())
      stages.push_back(script_stage(path, "features." + c.name, c.value));
    if (mod.hasattr("avgpool") && mod.attr("avgpool").isModule())
      stages.push_back(script_stage(path, "avgpool", mod.attr("avgpool").toModule()));
    bool first = true;
    for (const auto& c : mod.attr("classifier").toModule().named_children()) {
      stages.push_back(script_stage(path, "classifier." + c.name, c.value));
      stages.back().flatten_before = first;
      first = false;
    }
    if (first) throw Error(path, "empty classifier");
  } catch (const Error&) {  // a module of another kind: the model is a graph
    stages.clear();
    return false;
  }
  return true;
}

// The kind of a graph tap, from its module class or operation.
LayerKind tap_kind(const std::string& type) {
  static const std::map<std::string, LayerKind> kinds{
      {"Conv2d", LayerKind::Conv},        {"BatchNorm2d", LayerKind::BatchNorm}, {"ReLU", LayerKind::ReLU},
      {"relu", LayerKind::ReLU},          {"MaxPool2d", LayerKind::MaxPool},     {"max_pool2d", LayerKind::MaxPool},
      {"AvgPool2d", LayerKind::AvgPool},  {"AdaptiveAvgPool2d", LayerKind::AvgPool},
      {"adaptive_avg_pool2d", LayerKind::AvgPool}, {"avg_pool2d", LayerKind::AvgPool},
      {"Dropout", LayerKind::Dropout},    {"Linear", LayerKind::Linear}};
  auto it = kinds.find(type);
  return it == kinds.end() ? LayerKind::Other : it->second;
}

}  // namespace

Model Model::load(const std::string& path, torch::Device device) {
  std::string meta;
  torch::jit::Module mod = load_script(path, device, meta);

  auto impl = std::make_shared<Impl>();
  const bool vgg = vgg_stages(path, mod, impl->stages);
  if (!vgg) impl->graph = GraphNet::build(mod, path);
  impl->script = mod;
  impl->to = [mod](torch::Device d) mutable { mod.to(d); };
  impl->to_dtype = [mod](torch::ScalarType t) mutable { mod.to(t); };
  impl->tensors = [mod]() {
    std::vector<torch::Tensor> v;
    for (const auto& p : mod.parameters()) v.push_back(p);
    for (const auto& b : mod.buffers()) v.push_back(b);
    return v;
  };

  Model m;
  m.impl_ = impl;
  m.device_ = device;
  m.info_.source = path;
  // Geometry defaults from the weights; metadata overrides.
  m.info_.num_classes = 0;
  if (vgg) {
    for (const auto& st : impl->stages) {
      if (st.kind == LayerKind::Conv) {
        m.info_.in_channels = st.geo.in_units;
        break;
      }
    }
    for (const auto& st : impl->stages)
      if (st.kind == LayerKind::Linear) m.info_.num_classes = st.geo.out_units;
  } else {
    // The first convolution's input channels and the last linear layer's outputs; the
    // logits' shape is checked against them once the graph has run (set_input_size).
    m.info_.in_channels = 0;
    m.info_.arch = "graph";
    for (const auto& p : mod.parameters()) {
      if (p.dim() == 4 && m.info_.in_channels == 0) m.info_.in_channels = p.size(1);
      if (p.dim() == 2) m.info_.num_classes = p.size(0);
    }
    if (m.info_.in_channels > 0 && m.info_.num_classes == 0) {
      // No linear layer (a classifier ending in a convolution and a pooling): the logits'
      // size at the recorded input size, or 224 px.
      int64_t side = 224;
      try {
        const auto j = nlohmann::json::parse(meta.empty() ? "{}" : meta);
        if (j.contains("input_size") && j["input_size"].is_number_integer()) side = j["input_size"].get<int64_t>();
      } catch (const std::exception&) {  // apply_model_meta reports bad JSON below
      }
      impl->graph->probe(m.info_.in_channels, side);
      const auto& y = impl->graph->output_shape();
      if (y.size() == 2) m.info_.num_classes = y[1];
      else
        throw Error(path, "forward returns a " + shape_string(y) + " tensor for one image, not logits [1, K] (one per class)");
    }
  }
  apply_model_meta(path, meta, m.info_);
  m.mean_ = torch::tensor(m.info_.mean, torch::kFloat).view({1, -1, 1, 1}).to(device);
  m.std_ = torch::tensor(m.info_.std, torch::kFloat).view({1, -1, 1, 1}).to(device);
  m.set_input_size(m.info_.input_size);
  return m;
}

bool Model::is_graph() const { return impl_->graph != nullptr; }

void Model::to(torch::Device device) {
  if (impl_->precision == Precision::Fp16 && !device.is_cuda())
    throw Error("precision", "fp16 weights need a CUDA device, not " + device.str());
  impl_->to(device);
  if (impl_->channels_last) apply_layout(*impl_, true);  // a device copy may come back in NCHW
  mean_ = mean_.to(device);
  std_ = std_.to(device);
  device_ = device;
}

torch::ScalarType precision_dtype(Model::Precision p) {
  return p == Model::Precision::Bf16 ? torch::kBFloat16 : p == Model::Precision::Fp16 ? torch::kHalf : torch::kFloat;
}

const char* precision_name(Model::Precision p) {
  switch (p) {
    case Model::Precision::Bf16: return "bf16";
    case Model::Precision::Fp16: return "fp16";
    default: return "fp32";
  }
}

Model::Precision parse_precision(const std::string& name, const std::string& field) {
  for (auto p : {Model::Precision::Fp32, Model::Precision::Bf16, Model::Precision::Fp16})
    if (name == precision_name(p)) return p;
  throw Error(field, "expected fp32, bf16 or fp16, got '" + name + "'");
}

void Model::set_compute(Precision precision, bool channels_last) {
  if (precision != impl_->precision) {
    if (impl_->precision != Precision::Fp32)
      throw Error("precision", std::string("the weights are already ") + precision_name(impl_->precision) +
                                   ": load the model again for " + precision_name(precision));
    if (precision == Precision::Fp16 && !device_.is_cuda())
      throw Error("precision", "fp16 needs a CUDA device (this model is on " + device_.str() + "); use bf16 or fp32");
    impl_->to_dtype(precision_dtype(precision));
    impl_->precision = precision;
  }
  if (channels_last != impl_->channels_last) {
    apply_layout(*impl_, channels_last);
    impl_->channels_last = channels_last;
  }
}

Model::Precision Model::precision() const { return impl_->precision; }
bool Model::channels_last() const { return impl_->channels_last; }

void Model::set_input_size(int64_t side) {
  if (side < 1) throw Error("input_size", "must be >= 1, got " + std::to_string(side));
  if (impl_->graph) {
    set_graph_table(side);
    return;
  }
  std::vector<LayerInfo> table;
  int64_t c = info_.in_channels, s = side, rf = 1, jump = 1;
  bool flat = false;
  int64_t features = 0;
  int block = 1, conv_in_block = 0, fc = 5;
  double cumulative = 0;
  for (size_t i = 0; i < impl_->stages.size(); ++i) {
    const Stage& st = impl_->stages[i];
    LayerInfo L;
    L.index = static_cast<int>(i);
    L.path = st.path;
    L.kind = st.kind;
    if (st.flatten_before && !flat) {
      features = c * s * s;
      flat = true;
    }
    const Geometry& g = st.geo;
    auto out_side = [&](int64_t in) {
      double v = static_cast<double>(in + 2 * g.padding - g.dilation * (g.kernel - 1) - 1) / g.stride;
      return static_cast<int64_t>(g.ceil_mode ? std::ceil(v) : std::floor(v)) + 1;
    };
    bool in_classifier = st.path.rfind("classifier", 0) == 0;
    const int64_t c_in = flat ? features : c;
    switch (st.kind) {
      case LayerKind::Conv:
        if (flat) throw Error(info_.source, "layer " + st.path + ": convolution after the flatten");
        s = out_side(s);
        L.flops = 2.0 * g.kernel * g.kernel * static_cast<double>(c_in) * g.out_units * s * s;
        rf += (g.kernel - 1) * g.dilation * jump;
        jump *= g.stride;
        c = g.out_units;
        L.alias = "conv" + std::to_string(block) + "_" + std::to_string(++conv_in_block);
        break;
      case LayerKind::BatchNorm:
        L.alias = "bn" + std::to_string(block) + "_" + std::to_string(conv_in_block);
        break;
      case LayerKind::ReLU:
        L.alias = in_classifier ? "relu" + std::to_string(fc) : "relu" + std::to_string(block) + "_" + std::to_string(conv_in_block);
        break;
      case LayerKind::MaxPool:
        s = out_side(s);
        rf += (g.kernel - 1) * g.dilation * jump;
        jump *= g.stride;
        L.alias = "pool" + std::to_string(block);
        ++block;
        conv_in_block = 0;
        break;
      case LayerKind::AvgPool: {
        int64_t region = (s + g.adaptive_out - 1) / g.adaptive_out;
        rf += (region - 1) * jump;
        jump *= std::max<int64_t>(1, s / g.adaptive_out);
        s = g.adaptive_out;
        L.alias = "avgpool";
        break;
      }
      case LayerKind::Dropout:
        L.alias = "drop" + std::to_string(fc);
        break;
      case LayerKind::Linear:
        if (!flat) throw Error(info_.source, "layer " + st.path + ": linear layer before the flatten");
        L.flops = 2.0 * static_cast<double>(c_in) * g.out_units;
        features = g.out_units;
        L.alias = "fc" + std::to_string(++fc);
        break;
    }
    if (s < 1)
      throw Error("input_size", std::to_string(side) + " px is too small for this model: layer " + st.path +
                                    " would have an empty output");
    if (L.flops == 0) L.flops = static_cast<double>(flat ? features : c * s * s);  // elementwise layers
    cumulative += L.flops;
    L.flops_to_here = cumulative;
    if (flat) {
      L.shape = {features};
      L.units = features;
      L.rf_size = side;
      L.rf_stride = 0;
    } else {
      L.shape = {c, s, s};
      L.units = c;
      L.rf_size = rf;
      L.rf_stride = jump;
    }
    table.push_back(std::move(L));
  }
  layers_ = std::move(table);
  input_size_ = side;
}

void Model::set_graph_table(int64_t side) {
  GraphNet& g = *impl_->graph;
  g.probe(info_.in_channels, side);
  std::vector<LayerInfo> table;
  for (const GraphTap& t : g.taps()) {
    LayerInfo L;
    L.index = static_cast<int>(table.size());
    L.path = L.alias = t.name;
    L.other_names = t.aliases;
    L.type = t.type;
    L.kind = tap_kind(t.type);
    L.shape = t.shape;
    L.units = t.shape[0];
    L.rf_size = side;  // the whole image, unless the analysis of the graph found a local field
    L.rf_stride = 0;
    if (t.layout == TapLayout::Map && t.field == GraphTap::Field::Local) {
      L.rf_size = t.hi[0] - t.lo[0] + 1;
      L.rf_stride = t.stride;
      if (!t.exact_crop) L.rf_note = t.field_why.empty() ? "uncropped: a ceil-mode pooling on the way" : "uncropped: " + t.field_why;
    } else if (t.layout == TapLayout::Map) {
      L.rf_note = (t.field == GraphTap::Field::Whole ? "whole image after " : "uncropped: unknown operation ") + t.field_why;
    }
    L.flops = t.flops;
    L.flops_to_here = t.flops_to_here;
    table.push_back(std::move(L));
  }
  const auto& y = g.output_shape();
  if (y.size() != 2)
    throw Error(info_.source, "forward returns a " + shape_string(y) + " tensor for one image, not logits [1, K] (one per class)");
  if (y[1] != info_.num_classes)
    throw Error(info_.source, "forward returns " + std::to_string(y[1]) + " logits per image, but the model has " +
                                  std::to_string(info_.num_classes) + " classes (its last linear layer or vizsweep.json)");
  layers_ = std::move(table);
  input_size_ = side;
}

const LayerInfo& Model::layer(const std::string& name) const {
  for (const auto& L : layers_)
    if (L.alias == name) return L;
  for (const auto& L : layers_)
    if (L.path == name) return L;
  for (const auto& L : layers_)
    for (const auto& n : L.other_names)
      if (n == name) return L;
  std::vector<std::string> aliases;
  for (const auto& L : layers_) aliases.push_back(L.alias);
  std::string has = summarize_layer_names(aliases);
  if (!layers_.empty()) has += "; or paths " + layers_.front().path + ".." + layers_.back().path;
  throw Error("layer", "no layer \"" + name + "\" in " + info_.arch + " (has " + has + ")");
}

void Model::check_unit(const LayerInfo& L, int64_t unit) const {
  if (unit < 0 || unit >= L.units)
    throw Error("unit", "unit " + std::to_string(unit) + " out of range for " + L.alias + " (" +
                            std::to_string(L.units) + " units: 0.." + std::to_string(L.units - 1) + ")");
}

void Model::check_input(const torch::Tensor& x) const {
  if (!x.defined() || x.dim() != 4 || x.size(1) != info_.in_channels || x.size(2) != input_size_ ||
      x.size(3) != input_size_)
    throw Error("input", "expected images of shape [B, " + std::to_string(info_.in_channels) + ", " +
                             std::to_string(input_size_) + ", " + std::to_string(input_size_) + "], got " +
                             (x.defined() ? shape_string(x.sizes()) : std::string("nothing")));
}

namespace {

// The normalized fp32 input in the layers' compute format (dtype, memory format).
torch::Tensor to_compute(const Model::Impl& impl, torch::Tensor h) {
  if (impl.precision != Model::Precision::Fp32) h = h.to(precision_dtype(impl.precision));
  if (impl.channels_last && h.dim() == 4) h = h.contiguous(torch::MemoryFormat::ChannelsLast);
  return h;
}

torch::Tensor to_fp32(torch::Tensor h) { return h.scalar_type() == torch::kFloat ? h : h.to(torch::kFloat); }

// VGG's max pooling (2 x 2, stride 2) on float NCHW CPU tensors: pool.h's forward, in time
// independent of the data, and LibTorch's gradient from its indices (the same values as
// LibTorch's max_pool2d throughout).
struct MaxPool2x2Function : torch::autograd::Function<MaxPool2x2Function> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    auto out = torch::empty({N, C, H / 2, W / 2}, x.options());
    auto index = torch::empty({N, C, H / 2, W / 2}, x.options().dtype(torch::kLong));
    // Planes split among the threads in runs of at least 16k inputs (smaller work stays on one).
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, H * W));
    max_pool2x2(x.data_ptr<float>(), N * C, H, W, out.data_ptr<float>(), index.data_ptr<int64_t>(), intra_op_parallel(grain));
    ctx->save_for_backward({x, index});
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {at::max_pool2d_with_indices_backward(grads[0], saved[0], {2, 2}, {2, 2}, {0, 0}, {1, 1}, false, saved[1])};
  }
};

bool pools_2x2(const torch::Tensor& x) {
  return x.dim() == 4 && x.size(2) >= 2 && x.size(3) >= 2 && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         x.is_contiguous();
}

// Stage st on h: max_pool2x2 where it computes the stage (a 2 x 2 window, stride 2, no
// padding or dilation, and no ceil-mode window past an odd edge, on a float NCHW CPU tensor)
// and is the faster (rows of 8 inputs or more: on shorter ones LibTorch's loop costs less,
// `vizsweep-bench-actmax --pool-cost`), the stage's own module elsewhere.
torch::Tensor apply_stage(const Stage& st, const torch::Tensor& h) {
  const Geometry& g = st.geo;
  if (st.kind == LayerKind::MaxPool && g.kernel == 2 && g.stride == 2 && g.padding == 0 && g.dilation == 1 &&
      pools_2x2(h) && h.size(3) >= 8 && (!g.ceil_mode || (h.size(2) % 2 == 0 && h.size(3) % 2 == 0)))
    return MaxPool2x2Function::apply(h);
  return st.fn(h);
}

}  // namespace

torch::Tensor max_pool2x2(const torch::Tensor& x) {
  if (!x.defined() || !pools_2x2(x))
    throw std::invalid_argument("max_pool2x2: x must be a contiguous float CPU tensor [N, C, H, W], H and W at least 2");
  return MaxPool2x2Function::apply(x);
}

namespace {

// The layers 0..upto on h (normalized input). ReLUs run in place, as in torchvision's VGG:
// the layer before a ReLU (conv, linear, batch norm) needs its own output neither later nor
// for its gradient, so this saves a tensor per layer; forward_all keeps every output distinct.
torch::Tensor run_stages(const Model::Impl& impl, torch::Tensor h, int upto) {
  h = to_compute(impl, h);
  for (int i = 0; i <= upto; ++i) {
    const Stage& st = impl.stages[static_cast<size_t>(i)];
    if (st.flatten_before && h.dim() > 2) h = h.flatten(1);
    h = st.kind == LayerKind::ReLU && i > 0 ? torch::relu_(h) : apply_stage(st, h);
  }
  return to_fp32(h);
}

}  // namespace

torch::Tensor Model::forward(const torch::Tensor& x, int upto) const {
  check_input(x);
  if (upto < 0 || upto > last_index()) throw Error("layer", "index " + std::to_string(upto) + " out of range");
  if (impl_->graph) return to_fp32(impl_->graph->run(to_compute(*impl_, (x - mean_) / std_), upto));
  return run_stages(*impl_, (x - mean_) / std_, upto);
}

namespace {
// The input positions [lo, hi] (inclusive, unclipped) that output (out_y, out_x) of layer
// `upto` depends on, and the layer's total stride; false past an adaptive pool, and past a
// ceil-mode window when `exact` (its windows are not the image's after a crop).
bool dependency_interval(const Model::Impl& impl, int upto, int64_t out_y, int64_t out_x, bool exact, int64_t lo[2],
                         int64_t hi[2], int64_t& total) {
  lo[0] = hi[0] = out_y, lo[1] = hi[1] = out_x, total = 1;
  if (impl.graph) {  // the field the analysis of the graph found (graph.h), through every path
    const GraphTap& t = impl.graph->taps().at(static_cast<size_t>(upto));
    if (t.layout != TapLayout::Map || t.field != GraphTap::Field::Local || (exact && !t.exact_crop)) return false;
    const int64_t pos[2] = {out_y, out_x};
    for (int d = 0; d < 2; ++d) lo[d] = pos[d] * t.stride + t.lo[d], hi[d] = pos[d] * t.stride + t.hi[d];
    total = t.stride;
    return true;
  }
  for (int i = upto; i >= 0; --i) {  // the interval of positions the output depends on, layer by layer
    const Stage& st = impl.stages[static_cast<size_t>(i)];
    if (st.kind == LayerKind::AvgPool) return false;
    if (st.kind != LayerKind::Conv && st.kind != LayerKind::MaxPool) continue;
    const Geometry& g = st.geo;
    if (g.ceil_mode && exact) return false;
    for (int d = 0; d < 2; ++d) {
      lo[d] = lo[d] * g.stride - g.padding;
      hi[d] = hi[d] * g.stride - g.padding + g.dilation * (g.kernel - 1);
    }
    total *= g.stride;
  }
  return true;
}
}  // namespace

Model::InputWindow Model::receptive_field(int upto, int64_t out_y, int64_t out_x) const {
  const int64_t S = input_size_;
  InputWindow w{0, S, 0, S, out_y, out_x};
  if (impl_->graph && upto >= 0 && upto <= last_index()) {
    const GraphTap& t = impl_->graph->taps().at(static_cast<size_t>(upto));
    if (t.layout == TapLayout::Tokens && t.grid > 0 && S % t.grid == 0) {
      const int64_t P = S / t.grid;  // the patch side
      w.y0 = std::clamp<int64_t>(out_y * P, 0, S), w.y1 = std::clamp<int64_t>((out_y + 1) * P, 0, S);
      w.x0 = std::clamp<int64_t>(out_x * P, 0, S), w.x1 = std::clamp<int64_t>((out_x + 1) * P, 0, S);
      return w;
    }
  }
  int64_t lo[2], hi[2], total = 1;
  if (upto < 0 || upto > last_index() || !layers_[static_cast<size_t>(upto)].spatial() ||
      !dependency_interval(*impl_, upto, out_y, out_x, false, lo, hi, total))
    return w;
  w.y0 = std::clamp<int64_t>(lo[0], 0, S), w.y1 = std::clamp<int64_t>(hi[0] + 1, 0, S);
  w.x0 = std::clamp<int64_t>(lo[1], 0, S), w.x1 = std::clamp<int64_t>(hi[1] + 1, 0, S);
  return w;
}

std::optional<Model::InputWindow> Model::input_window(int upto, int64_t out_y, int64_t out_x) const {
  if (upto < 0 || upto > last_index() || !layers_[static_cast<size_t>(upto)].spatial()) return std::nullopt;
  int64_t lo[2], hi[2], total = 1;
  if (!dependency_interval(*impl_, upto, out_y, out_x, true, lo, hi, total)) return std::nullopt;
  const int64_t S = input_size_;
  int64_t a[2], b[2];
  for (int d = 0; d < 2; ++d) {
    a[d] = std::max<int64_t>(0, lo[d]) / total * total;
    // The start is aligned so that every pooling window of the crop is one of the image's;
    // the end need not be: windows past the last needed one are dropped (floor mode) or not
    // needed, and every needed output reads only real pixels.
    b[d] = std::min(S, hi[d] + 1);
  }
  if (a[0] == 0 && a[1] == 0 && b[0] == S && b[1] == S) return std::nullopt;
  InputWindow w;
  w.y0 = a[0], w.y1 = b[0], w.x0 = a[1], w.x1 = b[1];
  w.oy = out_y - a[0] / total, w.ox = out_x - a[1] / total;
  return w;
}

torch::Tensor Model::forward_crop(const torch::Tensor& x, int upto) const {
  if (!x.defined() || x.dim() != 4 || x.size(1) != info_.in_channels)
    throw Error("input", "expected images of shape [B, " + std::to_string(info_.in_channels) + ", H, W]");
  if (upto < 0 || upto > last_index()) throw Error("layer", "index " + std::to_string(upto) + " out of range");
  if (impl_->graph) return to_fp32(impl_->graph->run(to_compute(*impl_, (x - mean_) / std_), upto));
  return run_stages(*impl_, (x - mean_) / std_, upto);
}

std::vector<torch::Tensor> Model::forward_all(const torch::Tensor& x, int upto) const {
  check_input(x);
  if (upto < 0) upto = last_index();
  if (upto > last_index()) throw Error("layer", "index " + std::to_string(upto) + " out of range");
  std::vector<torch::Tensor> outs;
  torch::Tensor h = to_compute(*impl_, (x - mean_) / std_);
  if (impl_->graph) {
    for (auto& t : impl_->graph->run_all(h, upto)) outs.push_back(to_fp32(t));
    return outs;
  }
  for (size_t i = 0; i <= static_cast<size_t>(upto); ++i) {
    const Stage& st = impl_->stages[i];
    if (st.flatten_before && h.dim() > 2) h = h.flatten(1);
    h = apply_stage(st, h);
    // TorchScript ReLUs run in place: keep a copy of what the next layer may overwrite.
    bool next_in_place = i < static_cast<size_t>(upto) &&
                         (impl_->stages[i + 1].kind == LayerKind::ReLU || impl_->stages[i + 1].kind == LayerKind::Dropout);
    outs.push_back(h.scalar_type() != torch::kFloat ? to_fp32(h) : next_in_place ? h.clone() : h);
  }
  return outs;
}

void Model::forward_each(const torch::Tensor& x, int upto,
                         const std::function<void(int, const torch::Tensor&)>& visit) const {
  check_input(x);
  if (upto < 0 || upto > last_index()) throw Error("layer", "index " + std::to_string(upto) + " out of range");
  torch::Tensor h = to_compute(*impl_, (x - mean_) / std_);
  if (impl_->graph) {
    const auto outs = impl_->graph->run_all(h, upto);
    for (size_t i = 0; i < outs.size(); ++i) visit(static_cast<int>(i), to_fp32(outs[i]));
    return;
  }
  for (size_t i = 0; i <= static_cast<size_t>(upto); ++i) {
    const Stage& st = impl_->stages[i];
    if (st.flatten_before && h.dim() > 2) h = h.flatten(1);
    h = apply_stage(st, h);
    visit(static_cast<int>(i), to_fp32(h));  // before the next layer (an in-place ReLU) changes it
  }
}

std::string Model::class_name(int64_t index) const {
  if (index >= 0 && index < static_cast<int64_t>(info_.classes.size())) return info_.classes[index];
  return "#" + std::to_string(index);
}

namespace {
// glibc's allocator hands tensor-sized blocks back to the kernel as soon as they are freed
// (mmap for large blocks, trimming the heap top), and every optimization step allocates them
// again: page faults and zeroing on every step. Measured on this project's 2-core machines, a
// 32-unit olah2017 task of the default model took 21.7 s with 1.1 million page faults and
// 8.1 s with 40,000 once freed memory stays with the process. So every program linking the
// kernels keeps it: blocks up to 32 MB from the heap, which is trimmed past 1 GB of free
// space only. A user's own MALLOC_* environment settings take precedence.
const bool kKeepFreedMemory = [] {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX"})
    if (std::getenv(v)) return false;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  return true;
}();
}  // namespace

bool keeps_freed_memory() { return kKeepFreedMemory; }

ParallelFor intra_op_parallel(int64_t grain) {
  return [grain](int64_t n, const std::function<void(int64_t, int64_t)>& fn) { at::parallel_for(0, n, grain, fn); };
}

int set_threads(int n) {
  if (n <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  torch::set_num_threads(n);
  return torch::get_num_threads();
}

}  // namespace vizsweep::kernels
