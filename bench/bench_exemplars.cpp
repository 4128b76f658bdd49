// vizsweep-bench-exemplars: the cost of the exemplar scan (kernels/exemplars.h) against a bare
// batched forward pass over the same images, and the memory the scan keeps.
//
//   vizsweep-bench-exemplars [--model models/fashion_vgg11.pt] [--images FILE.idx3-ubyte.gz]
//                            [--count 60000] [--batch 100] [--k 9] [--threads 2] [--repeat 2]
//
// Both sides read the same images (decoded once, as uint8; each batch converted to float and
// resized to the model's input in the timed loop, identically on both sides):
//   forward: model.forward(batch, last layer), no gradients: what classifying the dataset costs;
//   scan:    ExemplarScan over every conv and fc layer, every unit, top-k and bottom-k.
// Each side runs --repeat times, alternating; the fastest run of each counts. Prints
//   exemplars images=N batch=B units=U layers=L forward_s=F scan_s=S ratio=S/F state_bytes=M
// state_bytes: what the scan keeps between batches (k entries of value, image id and
// position per unit and kind), independent of N; a batch's activations come on top.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/exemplars.h"
#include "kernels/image.h"
#include "kernels/model.h"
#include "sweeps/idx.h"

using namespace vizsweep::kernels;

int main(int argc, char** argv) {
  std::string model_file = "models/fashion_vgg11.pt", images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  int64_t count = 60000, batch = 100, k = 9, repeat = 2;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vizsweep-bench-exemplars: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model_file = next();
    else if (a == "--images") images = next();
    else if (a == "--count") count = std::atoll(next().c_str());
    else if (a == "--batch") batch = std::atoll(next().c_str());
    else if (a == "--k") k = std::atoll(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--repeat") repeat = std::atoll(next().c_str());
    else {
      std::fprintf(stderr, "vizsweep-bench-exemplars: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (count < 1 || batch < 1 || k < 1 || threads < 1 || repeat < 1) {
    std::fprintf(stderr, "vizsweep-bench-exemplars: --count, --batch, --k, --threads, --repeat >= 1\n");
    return 2;
  }
  try {
    set_threads(threads);
    Model m = Model::load(model_file);
    auto idx = vizsweep::sweeps::read_idx_images(images, count);
    count = idx.count;
    auto all = torch::from_blob(idx.pixels.data(), {idx.count, 1, idx.rows, idx.cols}, torch::kUInt8);
    const int64_t C = m.info().in_channels, S = m.input_size();
    auto batch_at = [&](int64_t i) {
      auto x = all.slice(0, i, std::min(count, i + batch)).to(torch::kFloat).div(255.0);
      if (C != 1) x = x.expand({-1, C, -1, -1});
      return resize_batch(x, S);
    };
    std::vector<ExemplarLayerRequest> layers;
    int64_t units = 0;
    for (const auto& L : m.layers())
      if (L.kind == LayerKind::Conv || L.kind == LayerKind::Linear) layers.push_back({L.alias, {}}), units += L.units;
    using clock = std::chrono::steady_clock;
    double best_forward = 1e300, best_scan = 1e300;
    for (int64_t r = 0; r < repeat; ++r) {
      auto t0 = clock::now();
      {
        torch::NoGradGuard ng;
        for (int64_t i = 0; i < count; i += batch) {
          auto y = m.forward(batch_at(i), m.last_index());
          (void)y;
        }
      }
      const double forward = std::chrono::duration<double>(clock::now() - t0).count();
      t0 = clock::now();
      ExemplarScan scan(m, layers, k, true, ExemplarPosition::Max);
      for (int64_t i = 0; i < count; i += batch) {
        std::vector<int64_t> ids;
        for (int64_t j = i; j < std::min(count, i + batch); ++j) ids.push_back(j);
        scan.add(batch_at(i), ids);
      }
      auto res = scan.result();
      const double secs = std::chrono::duration<double>(clock::now() - t0).count();
      best_forward = std::min(best_forward, forward), best_scan = std::min(best_scan, secs);
      std::fprintf(stderr, "run %lld: forward %.2f s, scan %.2f s (%zu layers)\n", static_cast<long long>(r + 1), forward, secs,
                   res.size());
    }
    const double state = static_cast<double>(units) * static_cast<double>(k) * 2 * (4 + 8 + 8);
    std::printf("exemplars images=%lld batch=%lld units=%lld layers=%zu forward_s=%.3f scan_s=%.3f ratio=%.3f state_bytes=%.0f\n",
                static_cast<long long>(count), static_cast<long long>(batch), static_cast<long long>(units), layers.size(),
                best_forward, best_scan, best_scan / best_forward, state);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vizsweep-bench-exemplars: %s\n", e.what());
    return 1;
  }
  return 0;
}
