#include "runner/engine.h"

#include <torch/torch.h>

#include <fstream>
#include <map>

#include "kernels/actmax.h"
#include "kernels/error.h"
#include "kernels/featuremaps.h"
#include "kernels/fgsm.h"
#include "kernels/image.h"
#include "kernels/inversion.h"
#include "kernels/model.h"
#include "sweeps/hash.h"
#include "sweeps/idx.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

struct Engine::Impl {
  const sweeps::SweepSpec& spec;
  std::optional<k::Model> model;
  sweeps::ModelDesc desc;
  torch::Device device = torch::kCPU;
  int threads = 1;
  std::map<std::string, sweeps::IdxImages> idx_images;
  std::map<std::string, std::vector<uint8_t>> idx_labels;

  explicit Impl(const sweeps::SweepSpec& s) : spec(s) {}

  // Images [B, C, S, S] on the device, and their dataset labels (-1 when unknown).
  torch::Tensor images(const std::vector<sweeps::ImageSource>& all, const std::vector<int64_t>& idx,
                       std::vector<int64_t>& labels) {
    const int64_t C = model->info().in_channels, S = model->input_size();
    std::vector<torch::Tensor> out;
    labels.clear();
    for (int64_t i : idx) {
      const auto& src = all.at(static_cast<size_t>(i));
      if (!src.file.empty()) {
        out.push_back(k::read_image(src.file, C, S));
        labels.push_back(-1);
        continue;
      }
      auto it = idx_images.find(src.idx_images);
      if (it == idx_images.end()) it = idx_images.emplace(src.idx_images, sweeps::read_idx_images(src.idx_images)).first;
      const auto& im = it->second;
      if (src.index >= im.count) throw Error(src.id, "index past the end of " + src.idx_images);
      auto px = torch::from_blob(const_cast<uint8_t*>(im.pixels.data()) + src.index * im.rows * im.cols, {1, im.rows, im.cols},
                                 torch::kUInt8);
      out.push_back(k::conform_image(px.to(torch::kFloat).div(255.0), C, S));
      int64_t label = -1;
      if (!src.idx_labels.empty()) {
        auto lt = idx_labels.find(src.idx_labels);
        if (lt == idx_labels.end()) lt = idx_labels.emplace(src.idx_labels, sweeps::read_idx_labels(src.idx_labels)).first;
        label = lt->second.at(static_cast<size_t>(src.index));
      }
      labels.push_back(label);
    }
    return torch::stack(out).to(device);
  }
};

namespace {

ImageBlob blob(const std::string& name, const torch::Tensor& image) {
  auto hwc = k::to_uint8_hwc(image);
  ImageBlob b;
  b.name = name;
  b.height = hwc.size(0), b.width = hwc.size(1), b.channels = hwc.size(2);
  b.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return b;
}

// A tensor as a named host array of element type T (FloatArray or IntArray).
template <typename Array, typename T>
Array host_array(const std::string& name, const torch::Tensor& t, torch::ScalarType type) {
  auto c = t.detach().to(torch::kCPU, type).contiguous();
  Array a;
  a.name = name;
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  a.data.assign(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
  return a;
}

FloatArray floats(const std::string& name, const torch::Tensor& t) {
  return host_array<FloatArray, float>(name, t, torch::kFloat);
}

IntArray ints(const std::string& name, const torch::Tensor& t) {
  return host_array<IntArray, int64_t>(name, t, torch::kLong);
}

std::string file_hash(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  sweeps::Hasher h;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(f.gcount()));
  }
  return h.hex();
}

}  // namespace

Engine::Engine(const sweeps::SweepSpec& spec, const std::string& device, int threads, bool compute_format)
    : impl_(std::make_unique<Impl>(spec)) {
  try {
    impl_->device = torch::Device(device);
  } catch (const std::exception&) {
    throw Error("device", "'" + device + "' is not a device (cpu, cuda, cuda:K)");
  }
  if (impl_->device.is_cuda() && !torch::cuda::is_available())
    throw Error("device", "CUDA requested but this LibTorch build or machine has no CUDA device");
  impl_->threads = k::set_threads(threads);
  if (spec.model.builtin()) {
    k::VggOptions o;
    o.arch = spec.model.arch, o.in_channels = spec.model.in_channels, o.num_classes = spec.model.num_classes;
    o.width = spec.model.width, o.fc_width = spec.model.fc_width, o.pool = spec.model.pool, o.seed = spec.model.seed;
    o.input_size = spec.model.input_size > 0 ? spec.model.input_size : 224;
    impl_->model = k::Model::builtin(o);
  } else {
    impl_->model = k::Model::load(spec.model.file);
  }
  auto& m = *impl_->model;
  if (spec.model.input_size > 0 && spec.model.input_size != m.input_size()) {
    try {
      m.set_input_size(spec.model.input_size);
    } catch (const Error& e) {
      throw Error(spec.file + ": model.input_size", e.reason_only());
    }
  }
  m.to(impl_->device);
  if (compute_format) {
    try {
      m.set_compute(k::parse_precision(spec.precision), spec.channels_last);
    } catch (const Error& e) {
      throw Error(spec.file + ": precision", e.reason_only());
    }
  }
  auto& d = impl_->desc;
  d.arch = m.info().arch;
  d.in_channels = m.info().in_channels;
  d.num_classes = m.info().num_classes;
  d.input_size = m.input_size();
  d.classes = m.info().classes;
  // The cost model: FLOPs and working memory per item up to each layer, on the whole input
  // and on the crop that covers the receptive field of the layer's centre unit.
  const auto& layers = m.layers();
  const double full = static_cast<double>(m.input_size()) * static_cast<double>(m.input_size());
  for (const auto& L : layers) {
    double area = 1.0;  // the crop's share of the input
    if (L.spatial())
      if (auto w = m.input_window(L.index, L.shape[1] / 2, L.shape[2] / 2))
        area = static_cast<double>((w->y1 - w->y0) * (w->x1 - w->x0)) / full;
    sweeps::LayerDesc D{L.alias, L.path, k::layer_kind_name(L.kind), L.units, L.spatial(), L.flops_to_here};
    for (int i = 0; i <= L.index; ++i) {
      const auto& P = layers[static_cast<size_t>(i)];
      double elems = 1;
      for (int64_t x : P.shape) elems *= static_cast<double>(x);
      const double share = P.spatial() ? area : 1.0;
      D.crop_flops_to_here += P.flops * share;
      D.bytes_per_item += 4.0 * elems;
      D.crop_bytes_per_item += 4.0 * elems * share;
    }
    d.layers.push_back(D);
  }
  // Image files are checked before anything is written, so a bad one stops the run at once.
  auto check = [](const std::vector<sweeps::ImageSource>& images, const std::string& section) {
    for (size_t i = 0; i < images.size(); ++i)
      if (!images[i].file.empty()) k::check_image_file(images[i].file, section + ".images[" + std::to_string(i) + "]");
  };
  if (spec.invert) check(spec.invert->images, "invert");
  if (spec.fgsm) check(spec.fgsm->images, "fgsm");
  if (spec.featuremaps) check(spec.featuremaps->images, "featuremaps");
}

Engine::~Engine() = default;

const sweeps::ModelDesc& Engine::model() const { return impl_->desc; }
std::string Engine::device() const { return impl_->device.str(); }
int Engine::threads() const { return impl_->threads; }
std::string Engine::torch_version() { return TORCH_VERSION; }
bool Engine::cuda_available() { return torch::cuda::is_available(); }
int Engine::cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

std::string Engine::model_hash() const {
  if (impl_->spec.model.builtin()) return "builtin:" + impl_->spec.model.identity();
  return file_hash(impl_->spec.model.file);
}

nlohmann::json Engine::run(const sweeps::Task& task, TaskData& data) {
  const auto& spec = impl_->spec;
  const auto& m = *impl_->model;
  const std::string group = "/tasks/" + task.key + "/";
  nlohmann::json rows = nlohmann::json::object();
  data = TaskData{};
  data.attributes = {{"technique", sweeps::technique_name(task.technique)}, {"layer", task.layer}, {"canonical", task.canonical}};
  switch (task.technique) {
    case sweeps::Technique::Actmax: {
      const auto& sec = *spec.actmax;
      k::ActMaxRequest req;
      req.layer = task.layer;
      req.units = task.items;
      req.objective = sec.objective;
      req.settings = sec.settings.at(static_cast<size_t>(task.setting));
      req.seed = task.seed;
      auto r = k::activation_maximization(m, req);
      data.attributes["objective"] = r.objective;
      data.attributes["regularizers"] = r.regularizers;
      data.attributes["setting"] = req.settings.name;
      auto& out = rows["actmax"] = nlohmann::json::array();
      for (size_t b = 0; b < task.items.size(); ++b) {
        std::string name = "unit_" + std::to_string(task.items[b]);
        data.images.push_back(blob(name, r.images[static_cast<int64_t>(b)]));
        out.push_back({{"unit", task.items[b]},
                       {"final_activation", r.final_activation[b].item<double>()},
                       {"hf_energy", r.hf_energy[b].item<double>()},
                       {"total_variation", r.total_variation[b].item<double>()},
                       {"saturation", r.saturation[b].item<double>()},
                       {"robustness", r.robustness[b].item<double>()},
                       {"is_argmax", r.is_argmax[b].item<bool>() ? 1 : 0},
                       {"dataset", group + name}});
      }
      data.ints.push_back(ints("units", torch::tensor(task.items)));
      data.floats.push_back(floats("objective_trace", r.objective_trace));
      data.floats.push_back(floats("final_activation", r.final_activation));
      data.floats.push_back(floats("hf_energy", r.hf_energy));
      data.floats.push_back(floats("total_variation", r.total_variation));
      data.floats.push_back(floats("saturation", r.saturation));
      data.floats.push_back(floats("robustness", r.robustness));
      data.ints.push_back(ints("is_argmax", r.is_argmax));
      break;
    }
    case sweeps::Technique::Invert: {
      const auto& sec = *spec.invert;
      std::vector<int64_t> labels;
      auto x = impl_->images(sec.images, task.items, labels);
      const auto& st = sec.settings.at(static_cast<size_t>(task.setting));
      auto r = k::invert(m, task.layer, x, st, task.seed);
      data.attributes["setting"] = st.name;
      data.attributes["l_tv"] = k::format_number(r.l_tv);
      auto& out = rows["invert"] = nlohmann::json::array();
      for (size_t b = 0; b < task.items.size(); ++b) {
        std::string name = "image_" + std::to_string(task.items[b]);
        data.images.push_back(blob(name, r.images[static_cast<int64_t>(b)]));
        data.images.push_back(blob("target_" + std::to_string(task.items[b]), x[static_cast<int64_t>(b)]));
        out.push_back({{"image_id", task.items[b]},
                       {"rep_error", r.rep_error[b].item<double>()},
                       {"hf_energy", r.hf_energy[b].item<double>()},
                       {"dataset", group + name}});
      }
      data.ints.push_back(ints("image_ids", torch::tensor(task.items)));
      data.floats.push_back(floats("loss_trace", r.loss_trace));
      data.floats.push_back(floats("rep_error", r.rep_error));
      break;
    }
    case sweeps::Technique::Fgsm: {
      const auto& sec = *spec.fgsm;
      std::vector<int64_t> labels;
      auto x = impl_->images(sec.images, task.items, labels);
      torch::Tensor clean_pred;
      {
        torch::NoGradGuard ng;
        clean_pred = m.logits(x).argmax(1).cpu();
      }
      // Unknown labels (image files): the model's own prediction on the clean image.
      std::vector<int64_t> truth(labels.size());
      for (size_t b = 0; b < labels.size(); ++b) truth[b] = labels[b] >= 0 ? labels[b] : clean_pred[static_cast<int64_t>(b)].item<int64_t>();
      const auto& st = sec.settings.at(static_cast<size_t>(task.setting));
      auto y = torch::tensor(truth);
      if (st.targeted) y = (y + sec.target_offset) % m.info().num_classes;
      auto r = k::fgsm(m, x, y, st);
      auto& out = rows["fgsm"] = nlohmann::json::array();
      auto& steps = rows["fgsm_steps"] = nlohmann::json::array();
      auto pred = r.pred.cpu(), pp = r.pred_prob.cpu(), lp = r.label_prob.cpu(), loss = r.loss.cpu(), probs = r.probs.cpu();
      for (size_t b = 0; b < task.items.size(); ++b) {
        const int64_t bi = static_cast<int64_t>(b);
        std::string name = "adversarial_" + std::to_string(task.items[b]);
        data.images.push_back(blob(name, r.adversarial[bi]));
        data.images.push_back(blob("clean_" + std::to_string(task.items[b]), x[bi]));
        int64_t final_pred = pred[st.steps][bi].item<int64_t>();
        bool success = st.targeted ? final_pred == y[bi].item<int64_t>() : final_pred != truth[b];
        out.push_back({{"image_id", task.items[b]},
                       {"true_label", truth[b]},
                       {"target", st.targeted ? nlohmann::json(y[bi].item<int64_t>()) : nlohmann::json(nullptr)},
                       {"clean_pred", clean_pred[bi].item<int64_t>()},
                       {"final_pred", final_pred},
                       {"success", success ? 1 : 0},
                       {"dataset", group + name}});
        for (int s = 0; s <= st.steps; ++s)
          steps.push_back({{"image_id", task.items[b]},
                           {"step", s},
                           {"pred", pred[s][bi].item<int64_t>()},
                           {"pred_prob", pp[s][bi].item<double>()},
                           {"label_prob", lp[s][bi].item<double>()},
                           {"final_prob", probs[s][bi][final_pred].item<double>()},
                           {"loss", loss[s][bi].item<double>()}});
      }
      data.attributes["step_size"] = k::format_number(r.step_size);
      data.ints.push_back(ints("image_ids", torch::tensor(task.items)));
      data.ints.push_back(ints("labels", y));
      data.ints.push_back(ints("pred", r.pred));
      data.floats.push_back(floats("pred_prob", r.pred_prob));
      data.floats.push_back(floats("label_prob", r.label_prob));
      data.floats.push_back(floats("loss", r.loss));
      data.floats.push_back(floats("perturbation", r.adversarial - x));
      break;
    }
    case sweeps::Technique::Featuremaps: {
      const auto& sec = *spec.featuremaps;
      std::vector<int64_t> labels;
      auto x = impl_->images(sec.images, task.items, labels);
      std::vector<std::string> names;
      for (const auto& l : sec.layers) names.push_back(l.name);
      auto maps = k::feature_maps(m, x, names);
      auto& out = rows["featuremaps"] = nlohmann::json::array();
      data.images.push_back(blob("input", x[0]));
      for (const auto& fm : maps) {
        data.floats.push_back(floats(fm.layer.alias, fm.activations[0]));
        out.push_back({{"image_id", task.items[0]}, {"layer", fm.layer.alias}, {"dataset", group + fm.layer.alias}});
      }
      break;
    }
  }
  return rows;
}

}  // namespace vizsweep::runner
