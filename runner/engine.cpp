#include "runner/engine.h"

#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <map>

#include "kernels/actmax.h"
#include "kernels/classifier.h"
#include "kernels/error.h"
#include "kernels/exemplars.h"
#include "kernels/image.h"
#include "kernels/model.h"
#include "runner/results_dir.h"
#include "runner/run_context.h"
#include "runner/techniques/actmax.h"
#include "sweeps/hash.h"
#include "sweeps/technique.h"
#include "sweeps/idx.h"
#include "sweeps/techniques/actmax.h"
#include "sweeps/techniques/exemplars.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

struct Engine::Impl : RunContext {
  const sweeps::SweepSpec& spec;
  std::optional<k::Model> model_;     // in the sweep's default compute format
  // Copies in the per-layer formats of `compute:` (loaded when a task first needs one), and
  // the model the running task uses.
  std::map<sweeps::ComputeFormat, k::Model> formats;
  const k::Model* current = nullptr;
  const k::Model* finish_model = nullptr;  // the running task's fp32 finish, when it has one
  double finish = 0;
  sweeps::ModelDesc desc;
  torch::Device device = torch::kCPU;
  int threads = 1;
  std::map<std::string, sweeps::IdxImages> idx_images;
  std::map<std::string, std::vector<uint8_t>> idx_labels;
  std::map<std::string, k::Classifier> classifiers;

  explicit Impl(const sweeps::SweepSpec& s) : spec(s) {}

  const k::Model& model() const override { return current ? *current : *model_; }
  const k::Model* fp32_model() const override { return finish_model; }
  double fp32_finish() const override { return finish_model ? finish : 0; }

  // The sweep's model, freshly loaded or built, at its input size, on the device, in fp32 NCHW.
  k::Model load() const {
    std::optional<k::Model> m;
    if (spec.model.builtin()) {
      k::VggOptions o;
      o.arch = spec.model.arch, o.in_channels = spec.model.in_channels, o.num_classes = spec.model.num_classes;
      o.width = spec.model.width, o.fc_width = spec.model.fc_width, o.pool = spec.model.pool, o.seed = spec.model.seed;
      o.input_size = spec.model.input_size > 0 ? spec.model.input_size : 224;
      m = k::Model::builtin(o);
    } else {
      m = k::Model::load(spec.model.file);
    }
    if (spec.model.input_size > 0 && spec.model.input_size != m->input_size()) {
      try {
        m->set_input_size(spec.model.input_size);
      } catch (const Error& e) {
        throw Error(spec.file + ": model.input_size", e.reason_only());
      }
    }
    m->to(device);
    return *m;
  }

  // The model in `format`'s precision and layout (the default one, or a copy converted once).
  const k::Model& in_format(const sweeps::ComputeFormat& format, const std::string& field) {
    const sweeps::ComputeFormat weights{format.precision, format.channels_last};
    if (weights == sweeps::ComputeFormat{spec.precision, spec.channels_last}) return *model_;
    auto it = formats.find(weights);
    if (it != formats.end()) return it->second;
    k::Model m = load();
    try {
      m.set_compute(k::parse_precision(format.precision), format.channels_last);
    } catch (const Error& e) {
      throw Error(spec.file + ": " + field, e.reason_only());
    }
    return formats.emplace(weights, m).first->second;
  }

  // The next task computes in `format`: its model, and for an fp32 finish the fp32 NCHW one.
  void use(const sweeps::ComputeFormat& format, const std::string& field) {
    current = &in_format(format, field);
    finish_model = format.fp32_finish > 0 ? &in_format(sweeps::ComputeFormat{}, field) : nullptr;
    finish = format.fp32_finish;
  }

  const k::Classifier& classifier(const std::string& path, const std::string& field) override {
    auto it = classifiers.find(path);
    if (it != classifiers.end()) return it->second;
    try {
      return classifiers.emplace(path, k::Classifier::load(path)).first->second;
    } catch (const Error& e) {
      throw Error(spec.file + ": " + field, e.what());
    }
  }

  torch::Tensor images(const std::vector<sweeps::ImageSource>& all, const std::vector<int64_t>& idx,
                       std::vector<int64_t>& labels) override {
    const int64_t C = model_->info().in_channels, S = model_->input_size();
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
// An 8-bit shard image as [C, H, W] float in [0, 1].
torch::Tensor image_of(const ImageBlob& b) {
  auto hwc = torch::from_blob(const_cast<uint8_t*>(b.pixels.data()), {b.height, b.width, b.channels}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).to(torch::kFloat).div(255.0).contiguous();
}
}  // namespace

std::string mis_feature_model(const sweeps::SweepSpec& spec) {
  const auto* ex = spec.get<sweeps::ExemplarsSection>();
  const auto* am = spec.get<sweeps::ActmaxSection>();
  if (!ex || !am || !ex->bottom) return "";
  return ex->feature_model.empty() ? (am->judge.empty() ? spec.model.file : am->judge) : ex->feature_model;
}

std::vector<double> Engine::mis(const std::string& feature_model, const std::string& feature_layer, const std::string& layer, bool centre,
                                const std::vector<ImageBlob>& vizs, const std::vector<ImageBlob>& top,
                                const std::vector<ImageBlob>& bottom) {
  const auto& judge = impl_->classifier(feature_model, "exemplars.feature_model");
  const int64_t C = judge.info().in_channels, S = judge.info().input_size;
  const auto& m = *impl_->model_;
  const auto& L = m.layer(layer);
  auto features = [&](const std::vector<ImageBlob>& blobs, bool cut) {
    std::vector<torch::Tensor> xs;
    for (const auto& b : blobs) {
      auto x = image_of(b);
      if (cut && L.spatial()) {
        const auto w = m.receptive_field(L.index, L.shape[1] / 2, L.shape[2] / 2);
        x = x.slice(1, w.y0, w.y1).slice(2, w.x0, w.x1);
      }
      xs.push_back(k::conform_image(x, C, S));
    }
    return judge.features(torch::stack(xs), feature_layer, "exemplars.feature_layer");
  };
  auto ft = features(top, false), fb = features(bottom, false), fv = features(vizs, centre);
  std::vector<double> out;
  for (int64_t i = 0; i < fv.size(0); ++i) out.push_back(k::machine_interpretability(fv[i], ft, fb));
  return out;
}

std::vector<double> Engine::sweep_mis(const std::string& layer, const std::vector<ImageBlob>& vizs, const std::vector<ImageBlob>& top,
                                      const std::vector<ImageBlob>& bottom) {
  const auto& spec = impl_->spec;
  const auto* ex = spec.get<sweeps::ExemplarsSection>();
  const auto* am = spec.get<sweeps::ActmaxSection>();
  if (!ex || !am) throw std::logic_error("sweep_mis: the sweep has no actmax and exemplars sections");
  return mis(mis_feature_model(spec), ex->feature_layer_for(layer), layer, am->objective.unit_kind() == k::ObjectiveKind::CentreUnit,
             vizs, top, bottom);
}

ImageBlob blob(const std::string& name, const torch::Tensor& image) {
  auto hwc = k::to_uint8_hwc(image);
  ImageBlob b;
  b.name = name;
  b.height = hwc.size(0), b.width = hwc.size(1), b.channels = hwc.size(2);
  b.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return b;
}

namespace {
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
}  // namespace

FloatArray floats(const std::string& name, const torch::Tensor& t) {
  return host_array<FloatArray, float>(name, t, torch::kFloat);
}

IntArray ints(const std::string& name, const torch::Tensor& t) {
  return host_array<IntArray, int64_t>(name, t, torch::kLong);
}

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
  impl_->model_ = impl_->load();
  auto& m = *impl_->model_;
  if (compute_format) {
    try {
      m.set_compute(k::parse_precision(spec.precision), spec.channels_last);
    } catch (const Error& e) {
      throw Error(spec.file + ": precision", e.reason_only());
    }
  }
  // Per-layer formats are loaded when their first task runs; what this device cannot run
  // stops the run here, before anything is written.
  if (compute_format)
    for (const auto& c : spec.compute)
      if (c.precision == "fp16" && !impl_->device.is_cuda())
        throw Error(spec.file + ": " + c.layer.field + ".precision",
                    "fp16 needs a CUDA device (this rank runs on " + impl_->device.str() + "); use bf16 or fp32");
  auto& d = impl_->desc;
  d.arch = m.info().arch;
  d.graph = m.is_graph();
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
    D.other_names = L.other_names;
    if (L.spatial()) D.height = L.shape[1], D.width = L.shape[2];
    // A graph model's taps before this one are not all on its path; its FLOPs from the input
    // are the nodes it depends on, and it runs uncropped.
    for (int i = 0; i <= L.index; ++i) {
      const auto& P = layers[static_cast<size_t>(i)];
      double elems = 1;
      for (int64_t x : P.shape) elems *= static_cast<double>(x);
      const double share = P.spatial() ? area : 1.0;
      D.crop_flops_to_here += P.flops * share;
      D.bytes_per_item += 4.0 * elems;
      D.crop_bytes_per_item += 4.0 * elems * share;
    }
    if (m.is_graph()) {  // the taps before this one are not all on its path: its own FLOPs, cropped by area
      D.crop_flops_to_here = L.flops_to_here * area;
      D.crop_bytes_per_item = D.bytes_per_item * area;
    }
    d.layers.push_back(D);
  }
  // Image files are checked before anything is written, so a bad one stops the run at once.
  for (const auto& e : spec.sections)
    if (const auto* images = e.section->inputs())
      for (size_t i = 0; i < images->size(); ++i)
        if (!(*images)[i].file.empty())
          k::check_image_file((*images)[i].file, e.technique->name + ".images[" + std::to_string(i) + "]");
  for (const auto& e : spec.sections)
    if (const auto& prepare = run_technique(e.technique->name).prepare) prepare(*impl_, *e.section);
  // The taps machine interpretability compares in (other than the logits), checked against the
  // feature model before anything is written.
  if (const auto* ex = spec.get<sweeps::ExemplarsSection>(); ex && !mis_feature_model(spec).empty()) {
    std::vector<std::string> taps;
    if (ex->feature_layer != "logits") taps.push_back(ex->feature_layer);
    for (const auto& [l, tap] : ex->feature_layers)
      if (tap != "logits") taps.push_back(tap);
    if (!taps.empty()) {
      const auto& fm = impl_->classifier(mis_feature_model(spec), "exemplars.feature_model");
      const auto probe = torch::zeros({1, fm.info().in_channels, fm.info().input_size, fm.info().input_size});
      for (const auto& tap : taps) fm.features(probe, tap, "exemplars.feature_layer");
    }
  }
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
  return sweeps::file_hash(impl_->spec.model.file);
}

nlohmann::json Engine::run(const sweeps::Task& task, TaskData& data, const nlohmann::json& context) {
  data = TaskData{};
  data.attributes = {{"technique", task.technique}, {"layer", task.layer}, {"canonical", task.canonical}};
  impl_->current = impl_->finish_model = nullptr;
  const auto& spec = impl_->spec;
  sweeps::ComputeFormat format{spec.precision, spec.channels_last};
  if (sweeps::has_compute_formats(task.technique)) {  // SweepSpec::compute
    const auto* L = impl_->desc.find(task.layer);
    format = spec.format_for(task.layer, L ? L->path : "");
    impl_->use(format, "compute." + task.layer);
  }
  if (!(format == sweeps::ComputeFormat{})) data.attributes["compute"] = format.name();
  for (const auto& e : impl_->spec.sections)
    if (e.technique->name == task.technique) {
      auto rows = run_technique(task.technique).run(*impl_, *e.section, task, data);
      if (context.contains("exemplars")) score_by_exemplars(task, data, rows, context.at("exemplars"));
      return rows;
    }
  throw std::logic_error("task " + task.key + ": the sweep has no " + task.technique + " section");
}

void Engine::score_by_exemplars(const sweeps::Task& task, const TaskData& data, nlohmann::json& rows, const nlohmann::json& exemplars) {
  const auto& spec = impl_->spec;
  const auto* ex = spec.get<sweeps::ExemplarsSection>();
  if (!ex || task.technique != "actmax" || !rows.contains("actmax_results") || !exemplars.contains(task.layer)) return;
  const auto& lists = exemplars.at(task.layer);
  std::map<std::string, const ImageBlob*> image;  // dataset path -> the task's image
  for (const auto& b : data.images) image[ResultsDir::dataset(task.key, b.name)] = &b;
  // The exemplar images at the model's input, as the exemplars task stored them, cut to their boxes.
  auto crops = [&](const nlohmann::json& list) {
    std::vector<int64_t> ids, labels;
    for (const auto& e : list) ids.push_back(e.at(0).get<int64_t>());
    const auto x = impl_->images(ex->images, ids, labels);
    std::vector<ImageBlob> out;
    for (size_t i = 0; i < ids.size(); ++i) {
      const auto& e = list.at(i);
      out.push_back(crop(blob("", x[static_cast<int64_t>(i)]), e.at(1).get<int64_t>(), e.at(2).get<int64_t>(), e.at(3).get<int64_t>(),
                         e.at(4).get<int64_t>()));
    }
    return out;
  };
  auto& out = rows.at("actmax_results");
  std::map<int64_t, std::vector<size_t>> by_unit;
  for (size_t i = 0; i < out.size(); ++i) {
    by_unit[out[i].at("unit").get<int64_t>()].push_back(i);
    out[i]["mis"] = nullptr, out[i]["activation_ratio"] = nullptr;  // every row has the same columns
  }
  for (const auto& [unit, at] : by_unit) {
    const auto it = lists.find(std::to_string(unit));
    if (it == lists.end()) continue;  // no exemplars for this unit: not scored, as at the end
    std::vector<ImageBlob> vizs;
    for (size_t i : at) vizs.push_back(*image.at(out[i].at("dataset").get<std::string>()));
    const auto m = sweep_mis(task.layer, vizs, crops(it->at("top")), crops(it->at("bottom")));
    const double top1 = it->at("top1").get<double>();
    for (size_t j = 0; j < at.size(); ++j) {
      auto& r = out[at[j]];
      r["mis"] = m[j];
      if (top1 > 0) r["activation_ratio"] = r.at("final_activation").get<double>() / top1;
    }
  }
}

namespace {
void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}
}  // namespace

Engine::Probe Engine::probe_actmax(const sweeps::Task& task, const sweeps::ComputeFormat& format, int iterations, size_t units) {
  const auto* sec = impl_->spec.get<sweeps::ActmaxSection>();
  if (!sec || task.technique != "actmax") throw std::logic_error("probe_actmax: not an actmax task");
  impl_->use(format, "compute." + task.layer);
  k::ActMaxRequest req = actmax_request(*impl_, *sec, task);
  const k::Model& m = impl_->model();
  impl_->current = impl_->finish_model = nullptr;
  if (units > 0 && units < req.units.size()) req.units.resize(units);
  req.settings.iterations = iterations;
  const auto& ref = impl_->in_format(sweeps::ComputeFormat{}, "precision");
  sync(impl_->device);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = k::activation_maximization(m, req);
  sync(impl_->device);
  Probe p;
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  torch::NoGradGuard ng;
  const auto& L = ref.layer(task.layer);
  k::UnitObjective obj(ref, L, req.units, req.objective.unit_kind());
  auto v = obj.evaluate(ref.forward(r.images, L.index)).to(torch::kCPU, torch::kDouble).contiguous();
  auto hf = r.hf_energy.to(torch::kCPU, torch::kDouble).contiguous();
  p.objective.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  p.hf_energy.assign(hf.data_ptr<double>(), hf.data_ptr<double>() + hf.numel());
  return p;
}

double Engine::time_task(const sweeps::Task& task) {
  TaskData data;
  sync(impl_->device);
  const auto t0 = std::chrono::steady_clock::now();
  run(task, data);
  sync(impl_->device);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace vizsweep::runner
