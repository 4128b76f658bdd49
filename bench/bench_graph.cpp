// vizsweep-bench-graph: the cost of a graph model's tap prefix (kernels/graph.h) against
// LibTorch's own forward of the same part of the network, forward and backward to the input.
//
//   vizsweep-bench-graph MODEL [--taps fc,layer3] [--batch 4] [--size 224] [--threads 2] [--rounds 7]
//
// MODEL: a TorchScript classifier whose top-level children run in order (torchvision's ResNets:
// conv1, bn1, relu, maxpool, layer1..layer4, avgpool, then fc on the flattened output). For
// each tap named by a top-level child, LibTorch's side runs the children up to it through
// their own forward methods (the module's forward for the last child, fc); vizsweep's side is
// Model::forward at that tap (its prefix graph, in-place operations out of place, run by the
// TorchScript interpreter). Both differentiate the output's sum with respect to the input.
// Rounds alternate the two; the median of each is printed with their ratio:
//   graph tap=T batch=B size=S torch_ms=A vizsweep_ms=B ratio=B/A
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "kernels/model.h"

using Clock = std::chrono::steady_clock;
namespace k = vizsweep::kernels;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: vizsweep-bench-graph MODEL [--taps fc,layer3] [--batch 4] [--size 224] [--threads 2] [--rounds 7]\n");
    return 2;
  }
  std::string file = argv[1], taps = "fc,layer3";
  int batch = 4, size = 0, threads = 2, rounds = 7;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--taps") taps = v;
    else if (a == "--batch") batch = std::atoi(v.c_str());
    else if (a == "--size") size = std::atoi(v.c_str());
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--rounds") rounds = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "vizsweep-bench-graph: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    k::set_threads(threads);
    k::Model m = k::Model::load(file);
    if (size > 0) m.set_input_size(size);
    torch::jit::Module mod = torch::jit::load(file);
    mod.eval();
    for (auto p : mod.parameters()) p.set_requires_grad(false);
    const int64_t S = m.input_size(), C = m.info().in_channels;
    auto x = torch::rand({batch, C, S, S}, torch::TensorOptions().dtype(torch::kFloat));
    const auto mean = torch::tensor(m.info().mean).view({1, -1, 1, 1}).to(torch::kFloat);
    const auto sd = torch::tensor(m.info().std).view({1, -1, 1, 1}).to(torch::kFloat);
    std::stringstream ss(taps);
    std::string tap;
    while (std::getline(ss, tap, ',')) {
      const k::LayerInfo& L = m.layer(tap);
      std::vector<torch::jit::Module> chain;
      bool found = false;
      for (const auto& c : mod.named_children()) {
        chain.push_back(c.value);
        if (c.name == tap) {
          found = true;
          break;
        }
      }
      if (!found) throw std::runtime_error("no top-level child " + tap);
      auto torch_side = [&] {
        auto in = x.clone().requires_grad_(true);
        auto h = (in - mean) / sd;
        for (size_t i = 0; i < chain.size(); ++i) {
          if (i + 1 == chain.size() && h.dim() > 2 && tap == "fc") h = h.flatten(1);
          h = chain[i].forward({h}).toTensor();
        }
        return torch::autograd::grad({h.sum()}, {in})[0];
      };
      auto our_side = [&] {
        auto in = x.clone().requires_grad_(true);
        auto h = m.forward(in, L.index);
        return torch::autograd::grad({h.sum()}, {in})[0];
      };
      const double diff = (torch_side() - our_side()).abs().max().item<double>();  // warm-up, and the same gradient
      std::vector<double> a, b;
      for (int r = 0; r < rounds; ++r) {
        auto t0 = Clock::now();
        torch_side();
        auto t1 = Clock::now();
        our_side();
        auto t2 = Clock::now();
        a.push_back(std::chrono::duration<double>(t1 - t0).count() * 1e3);
        b.push_back(std::chrono::duration<double>(t2 - t1).count() * 1e3);
      }
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      const double ta = a[a.size() / 2], tb = b[b.size() / 2];
      std::printf("graph tap=%s batch=%d size=%lld torch_ms=%.1f vizsweep_ms=%.1f ratio=%.3f grad_max_diff=%.3g\n", tap.c_str(), batch,
                  static_cast<long long>(S), ta, tb, tb / ta, diff);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vizsweep-bench-graph: %s\n", e.what());
    return 1;
  }
  return 0;
}
