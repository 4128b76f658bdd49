// vizsweep-demo: the four techniques on one model, end to end, with PNGs and a summary.
//
//   vizsweep-demo [--model FILE.pt] [--image FILE] [--out DIR] [--threads N] [--iterations N]
//                 [--device cpu|cuda|cuda:K]     (default: cuda when present, else cpu)
//
// Without --model it builds a small VGG11 (random weights, 64 px) so it runs anywhere in
// under a minute; with --model it loads a TorchScript VGG (models/export_torchvision.py).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include "kernels/actmax.h"
#include "kernels/error.h"
#include "kernels/featuremaps.h"
#include "kernels/fgsm.h"
#include "kernels/image.h"
#include "kernels/inversion.h"
#include "kernels/model.h"

namespace fs = std::filesystem;
using namespace vizsweep::kernels;

namespace {

void write_png(const fs::path& path, const torch::Tensor& image) {
  auto bytes = encode_png(image);
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw vizsweep::Error(path.string(), "cannot write");
}

// [B, C, S, S] -> one row of images with a 2 px white gap, upscaled by `zoom`.
torch::Tensor row_of(const torch::Tensor& images, int zoom) {
  auto x = images.detach().to(torch::kCPU);
  if (zoom > 1) x = x.repeat_interleave(zoom, 2).repeat_interleave(zoom, 3);
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < x.size(0); ++b) {
    if (b) parts.push_back(torch::ones({x.size(1), x.size(2), 2}));
    parts.push_back(x[b]);
  }
  return torch::cat(parts, 2);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int usage(const char* argv0) {
  std::cerr << "usage: " << argv0
            << " [--model FILE.pt] [--image FILE] [--out DIR] [--threads N] [--iterations N]"
               " [--device cpu|cuda|cuda:K]\n";
  return 2;
}

// 1. Feature maps of every conv layer.
void demo_feature_maps(const Model& model, const torch::Tensor& image, const std::string& out) {
  int written = 0;
  for (const auto& fm : feature_maps(model, image)) {
    if (fm.layer.kind != LayerKind::Conv) continue;
    write_png(fs::path(out) / ("featuremaps_" + fm.layer.alias + ".png"), tile_feature_map(fm.activations[0]));
    ++written;
  }
  std::cout << "feature maps: " << written << " conv layers tiled -> " << out << "/featuremaps_*.png\n";

}

// 2. Activation maximization: 8 units of a middle conv layer and of the class layer,
//    unregularized and with Yosinski's preset 3.
void demo_actmax(const Model& model, int iterations, const std::string& out) {
  const int64_t S = model.input_size(), C = model.info().in_channels;
  std::string mid;
  for (const auto& L : model.layers())
    if (L.kind == LayerKind::Conv && L.rf_size * 2 <= S * 3) mid = L.alias;  // deepest with a modest field
  for (std::string layer : {mid, std::string("fc8")}) {
    const auto& L = model.layer(layer);
    std::vector<int64_t> units;
    for (int64_t u = 0; u < std::min<int64_t>(8, L.units); ++u) units.push_back(u);
    std::vector<torch::Tensor> rows;
    for (std::string preset : {"unregularized", "yosinski3"}) {
      ActMaxRequest req;
      req.layer = layer;
      req.units = units;
      req.settings = actmax_preset(preset);
      req.settings.iterations = iterations;
      if (preset == "yosinski3") {
        // Table 1's constant lr of 100 assumes a trained Caffe net's gradient scale; the
        // normalized policy keeps the regularizers and moves pixels ~2 grey levels a step.
        req.settings.lr_policy = LrPolicy::Normalized;
        req.settings.lr = 2.0;
        preset = "yosinski3/norm";
      }
      auto t = std::chrono::steady_clock::now();
      auto r = activation_maximization(model, req);
      std::printf("actmax %-8s %-14s %zu units x %d it: activation %8.3f  hf-energy %.3f  saturated %.3f  "
                  "robustness %.2f  argmax %lld/%zu  (%.1fs)\n",
                  layer.c_str(), preset.c_str(), units.size(), req.settings.iterations,
                  r.final_activation.mean().item<double>(), r.hf_energy.mean().item<double>(),
                  r.saturation.mean().item<double>(), r.robustness.mean().item<double>(),
                  static_cast<long long>(r.is_argmax.sum().item<int64_t>()), units.size(), seconds_since(t));
      rows.push_back(row_of(r.images, 2));
    }
    auto gap = torch::ones({C, 4, rows[0].size(2)});
    write_png(fs::path(out) / ("actmax_" + layer + ".png"), torch::cat({rows[0], gap, rows[1]}, 1));
  }
  std::cout << "actmax grids (row 1 unregularized, row 2 decay + blur) -> " << out << "/actmax_*.png\n";

}

// 3. Inversion of the input image at increasing depth.
void demo_inversion(const Model& model, const torch::Tensor& image, int iterations, const std::string& out) {
  std::vector<torch::Tensor> inv;
  for (const auto& L : model.layers()) {
    if (L.kind != LayerKind::ReLU || L.alias.find("_1") == std::string::npos) continue;
    InversionSettings s;
    s.iterations = iterations;
    auto r = invert(model, L.alias, image, s, 0);
    std::printf("invert %-8s error %.4f  loss %.4f -> %.4f\n", L.alias.c_str(), r.rep_error[0].item<double>(),
                r.loss_trace[0][0].item<double>(), r.loss_trace[-1][0].item<double>());
    inv.push_back(r.images);
  }
  write_png(fs::path(out) / "inversion.png", row_of(torch::cat(inv, 0), 2));
  std::cout << "inversions by depth -> " << out << "/inversion.png\n";

}

// 4. FGSM and iterative FGSM against the model's own predictions on 16 random images.
void demo_fgsm(const Model& model, torch::Device device) {
  const int64_t S = model.input_size(), C = model.info().in_channels;
  auto x = torch::rand({16, C, S, S}, torch::Generator(at::detail::createCPUGenerator(2))).to(device);
  torch::Tensor labels;
  {
    torch::NoGradGuard ng;
    labels = model.logits(x).argmax(1);
  }
  std::printf("fgsm: eps     1-step flipped   10-step flipped\n");
  for (double eps : {0.001, 0.003, 0.01, 0.03}) {
    FgsmSettings s;
    s.eps = eps;
    auto one = fgsm(model, x, labels, s);
    s.steps = 10;
    auto ten = fgsm(model, x, labels, s);
    std::printf("      %-7g %8lld/16       %8lld/16\n", eps,
                static_cast<long long>((one.pred[-1] != labels).sum().item<int64_t>()),
                static_cast<long long>((ten.pred[-1] != labels).sum().item<int64_t>()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, image_path, out = "results/demo";
  std::string device_name = torch::cuda::is_available() ? "cuda" : "cpu";
  int threads = 0, iterations = 200;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw vizsweep::Error(a, "needs a value");
      return argv[++i];
    };
    try {
      if (a == "--model") model_path = next();
      else if (a == "--image") image_path = next();
      else if (a == "--out") out = next();
      else if (a == "--threads") threads = std::stoi(next());
      else if (a == "--iterations") iterations = std::stoi(next());
      else if (a == "--device") device_name = next();
      else if (a == "-h" || a == "--help") return usage(argv[0]), 0;
      else return usage(argv[0]);
    } catch (const std::exception& e) {
      std::cerr << "vizsweep-demo: " << e.what() << "\n";
      return 2;
    }
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    int n = set_threads(threads);
    Model model = [&] {
      if (!model_path.empty()) return Model::load(model_path);
      VggOptions o;
      o.arch = "vgg11", o.width = 0.25, o.fc_width = 256, o.pool = 1, o.num_classes = 10, o.input_size = 64, o.seed = 0;
      return Model::builtin(o);
    }();
    torch::Device device(torch::kCPU);
    try {
      device = torch::Device(device_name);
    } catch (const std::exception&) {
      throw vizsweep::Error("--device", "'" + device_name + "' is not a device (cpu, cuda, cuda:K)");
    }
    if (device.is_cuda() && !torch::cuda::is_available())
      throw vizsweep::Error("--device", "CUDA requested but this LibTorch build or machine has no CUDA device");
    model.to(device);
    const int64_t S = model.input_size(), C = model.info().in_channels;
    fs::create_directories(out);
    std::cout << "model: " << model.info().arch << " (" << model.info().source << "), " << model.layers().size()
              << " layers, input " << C << "x" << S << "x" << S << ", " << device.str() << ", " << n << " threads\n";

    // An input image: the given file, or a smooth synthetic scene.
    torch::Tensor image;
    if (!image_path.empty()) {
      image = read_image(image_path, C, S).unsqueeze(0).to(device);
    } else {
      auto g = torch::Generator(at::detail::createCPUGenerator(1));
      namespace F = torch::nn::functional;
      image = F::interpolate(torch::rand({1, C, 6, 6}, g), F::InterpolateFuncOptions()
                                                             .size(std::vector<int64_t>{S, S})
                                                             .mode(torch::kBilinear)
                                                             .align_corners(false))
                  .to(device);
    }
    write_png(fs::path(out) / "input.png", image[0]);

    demo_feature_maps(model, image, out);
    demo_actmax(model, iterations, out);
    demo_inversion(model, image, iterations, out);
    demo_fgsm(model, device);
    std::printf("done in %.1fs; outputs in %s\n", seconds_since(t0), fs::absolute(out).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "vizsweep-demo: error: " << e.what() << "\n";
    return 1;
  }
}
