// vizsweep-train: trains a TorchScript classifier on an IDX dataset (Fashion-MNIST by
// default) with LibTorch and saves it as TorchScript with its metadata and a JSON record.
//
//   vizsweep-train --template small_vgg.pt --out models/fashion_vgg11.pt
//                  [--data /usr/share/datasets/fashion-mnist] [--epochs 8] [--batch 128]
//                  [--lr 0.001] [--seed 0] [--threads 0] [--train-subset N] [--test-subset N]
//
// The template is the untrained architecture, exported by models/export_torchvision.py
// (torchvision's VGG class, so every technique treats the result exactly like VGG16; or the
// residual judge architecture, --arch resnet_small).
// Images are resized to the template's input size exactly as the runner resizes them.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/image.h"
#include "kernels/classifier.h"
#include "sweeps/idx.h"

namespace {

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

struct Data {
  torch::Tensor x;  // [N, 1, S, S] in [0, 1]
  torch::Tensor y;  // [N] int64
};

Data load(const std::string& dir, const std::string& stem, int64_t size, int64_t subset) {
  auto im = vizsweep::sweeps::read_idx_images(dir + "/" + stem + "-images-idx3-ubyte.gz", subset);
  auto lb = vizsweep::sweeps::read_idx_labels(dir + "/" + stem + "-labels-idx1-ubyte.gz", subset);
  auto x = torch::from_blob(im.pixels.data(), {im.count, 1, im.rows, im.cols}, torch::kUInt8).to(torch::kFloat).div(255.0);
  x = vizsweep::kernels::resize_batch(x, size);  // as the runner resizes one image
  auto y = torch::from_blob(lb.data(), {static_cast<int64_t>(lb.size())}, torch::kUInt8).to(torch::kLong);
  return {x.contiguous(), y.clone()};
}

double accuracy(torch::jit::Module& m, const Data& d, const torch::Tensor& mean, const torch::Tensor& std) {
  torch::NoGradGuard ng;
  m.eval();
  int64_t correct = 0;
  for (int64_t i = 0; i < d.x.size(0); i += 1000) {
    auto xb = d.x.slice(0, i, i + 1000);
    auto logits = m.forward({(xb - mean) / std}).toTensor();
    correct += (logits.argmax(1) == d.y.slice(0, i, i + 1000)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / d.x.size(0);
}

// --augment: each image shifted by up to 3 px, rotated by up to 15 degrees and scaled by
// 0.9-1.1 about its centre, the uncovered border black (Fashion-MNIST's background): a
// classifier that recognizes an object wherever it sits judges synthetic images fairly.
torch::Tensor augmented(const torch::Tensor& x, at::Generator& gen) {
  namespace F = torch::nn::functional;
  const int64_t n = x.size(0);
  auto u = torch::rand({4, n}, gen) * 2.0 - 1.0;
  auto angle = u[0] * (15.0 * M_PI / 180.0), factor = 1.0 + 0.1 * u[1];
  auto shift = u.slice(0, 2, 4) * (3.0 * 2.0 / static_cast<double>(x.size(3)));  // grid units: 2 per image side
  auto cos = angle.cos() / factor, sin = angle.sin() / factor;
  auto theta = torch::stack({torch::stack({cos, -sin, shift[0]}, 1), torch::stack({sin, cos, shift[1]}, 1)}, 1);
  auto grid = F::affine_grid(theta, x.sizes(), /*align_corners=*/false);
  return F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
}

}  // namespace

int main(int argc, char** argv) {
  std::string tmpl, out, data = "/usr/share/datasets/fashion-mnist";
  int epochs = 8, batch = 128, threads = 0;
  double lr = 1e-3;
  uint64_t seed = 0;
  int64_t train_subset = -1, test_subset = -1;
  bool augment = false;  // random shifts, rotations and scaling on top of the flips
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "vizsweep-train: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--template") tmpl = next();
    else if (a == "--out") out = next();
    else if (a == "--data") data = next();
    else if (a == "--epochs") epochs = std::stoi(next());
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--lr") lr = std::stod(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--train-subset") train_subset = std::stoll(next());
    else if (a == "--test-subset") test_subset = std::stoll(next());
    else if (a == "--augment") augment = true;
    else {
      std::cerr << "usage: vizsweep-train --template T.pt --out M.pt [--data DIR] [--epochs N] [--batch N] [--lr X] "
                   "[--seed N] [--threads N] [--train-subset N] [--test-subset N] [--augment]\n";
      return 2;
    }
  }
  if (tmpl.empty() || out.empty()) {
    std::cerr << "vizsweep-train: --template and --out are required\n";
    return 2;
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    int n = vizsweep::kernels::set_threads(threads);
    torch::manual_seed(seed);
    // Metadata through the project's loader (any architecture: VGG-style models to visualize,
    // other classifiers to judge them).
    auto probe = vizsweep::kernels::Classifier::load(tmpl);
    const int64_t S = probe.info().input_size;
    if (probe.info().in_channels != 1 || probe.info().num_classes != 10)
      throw vizsweep::Error(tmpl, "the template must take 1 channel and have 10 classes");
    torch::jit::ExtraFilesMap extra{{"vizsweep.json", ""}};
    auto m = torch::jit::load(tmpl, torch::kCPU, extra);
    auto meta = nlohmann::json::parse(extra["vizsweep.json"]);
    auto mean = torch::tensor(probe.info().mean, torch::kFloat).view({1, -1, 1, 1});
    auto std = torch::tensor(probe.info().std, torch::kFloat).view({1, -1, 1, 1});

    Data train = load(data, "train", S, train_subset), test = load(data, "t10k", S, test_subset);
    std::printf("vizsweep-train: %s (%s), %lld train / %lld test images at %lld px, %d threads\n", tmpl.c_str(),
                meta.value("arch", "?").c_str(), static_cast<long long>(train.x.size(0)), static_cast<long long>(test.x.size(0)),
                static_cast<long long>(S), n);

    std::vector<torch::Tensor> params;
    for (auto p : m.parameters()) {
      p.set_requires_grad(true);
      params.push_back(p);
    }
    torch::optim::Adam opt(params, torch::optim::AdamOptions(lr));
    auto gen = at::detail::createCPUGenerator(seed);
    const int64_t N = train.x.size(0);
    const int64_t steps_per_epoch = (N + batch - 1) / batch, total_steps = steps_per_epoch * epochs;
    int64_t step = 0;
    nlohmann::json history = nlohmann::json::array();
    for (int e = 0; e < epochs; ++e) {
      m.train();
      auto perm = torch::randperm(N, gen, torch::kLong);
      double loss_sum = 0;
      int64_t seen = 0;
      for (int64_t i = 0; i < N; i += batch) {
        // Cosine learning-rate decay over the whole run.
        double f = 0.5 * (1 + std::cos(M_PI * static_cast<double>(step++) / total_steps));
        for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr * f);
        auto idx = perm.slice(0, i, i + batch);
        auto xb = train.x.index_select(0, idx);
        // Random horizontal flips: clothes are left-right symmetric.
        auto flip = torch::rand({xb.size(0)}, gen) < 0.5;
        xb = torch::where(flip.view({-1, 1, 1, 1}), xb.flip({3}), xb);
        if (augment) xb = augmented(xb, gen);
        auto yb = train.y.index_select(0, idx);
        auto logits = m.forward({(xb - mean) / std}).toTensor();
        auto loss = torch::nn::functional::cross_entropy(logits, yb);
        opt.zero_grad();
        loss.backward();
        opt.step();
        loss_sum += loss.item<double>() * xb.size(0);
        seen += xb.size(0);
      }
      double acc = accuracy(m, test, mean, std);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("epoch %d/%d: train loss %.4f, test accuracy %.4f (%.0fs)\n", e + 1, epochs, loss_sum / seen, acc, secs);
      std::fflush(stdout);
      history.push_back({{"epoch", e + 1}, {"train_loss", loss_sum / seen}, {"test_accuracy", acc}});
    }
    m.eval();
    for (auto p : m.parameters()) p.set_requires_grad(false);
    double acc = accuracy(m, test, mean, std);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    meta["classes"] = kFashionClasses;
    meta["weights"] = "trained on fashion-mnist by vizsweep-train";
    meta["training"] = {{"dataset", data},       {"train_images", N},        {"test_images", test.x.size(0)},
                        {"epochs", epochs},      {"batch", batch},           {"lr", lr},
                        {"optimizer", augment ? "adam, cosine decay, random horizontal flips, random shifts (+-3 px), "
                                                "rotations (+-15 degrees) and scaling (0.9-1.1)"
                                              : "adam, cosine decay, random horizontal flips"},
                        {"seed", seed},          {"test_accuracy", acc},     {"training_seconds", secs},
                        {"threads", n},          {"history", history}};
    m.save(out, {{"vizsweep.json", meta.dump()}});
    std::string record = out.substr(0, out.rfind('.')) + ".json";
    std::ofstream(record) << meta.dump(2) << "\n";
    std::printf("vizsweep-train: test accuracy %.4f after %d epochs in %.0fs -> %s (+ %s)\n", acc, epochs, secs, out.c_str(),
                record.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "vizsweep-train: error: " << e.what() << "\n";
    return 1;
  }
}
