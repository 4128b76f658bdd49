// Writes every tap of a model for a batch of images, for tests/graph/test_conformance.py:
//   vizsweep-dump-taps MODEL INPUT.pt OUTDIR
// INPUT.pt: images in pixel space [0, 1] (torch.save of a [N, C, S, S] tensor). OUTDIR gets
// taps.json (per tap: name, aliases, type, layout, shape, grid, class_token, file) and one
// torch.save-readable file per tap with its output from Model::forward (only the tap's prefix
// computed), plus all.pt files from Model::forward_all for the same taps (one pass) to prove
// the two agree. Where a tap has a receptive-field crop (Model::input_window), taps.json also
// has its centre unit's output on the crop against the whole image; every map tap, its centre
// unit's box (Model::receptive_field).
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "kernels/model.h"

using vizsweep::kernels::Model;

namespace {
std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void save(const torch::Tensor& t, const std::string& path) {
  const auto bytes = torch::pickle_save(t.contiguous());
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: vizsweep-dump-taps MODEL INPUT.pt OUTDIR\n");
    return 2;
  }
  try {
    torch::NoGradGuard ng;
    Model m = Model::load(argv[1]);
    auto x = torch::pickle_load(read_file(argv[2])).toTensor().to(torch::kFloat);
    m.set_input_size(x.size(2));
    const std::string out = argv[3];
    nlohmann::json taps = nlohmann::json::array();
    const auto all = m.forward_all(x);
    for (const auto& L : m.layers()) {
      const std::string file = "tap" + std::to_string(L.index) + ".pt";
      save(m.forward(x, L.index), out + "/" + file);
      save(all[static_cast<size_t>(L.index)], out + "/all_" + file);
      nlohmann::json t{{"name", L.alias}, {"aliases", L.other_names}, {"type", L.type}, {"shape", L.shape},
                       {"units", L.units}, {"flops_to_here", L.flops_to_here}, {"file", file}, {"rf_size", L.rf_size},
                       {"rf_stride", L.rf_stride}, {"rf_note", L.rf_note}};
      // The box exemplars and the atlas show for the centre unit (a token tap: its patch).
      if (L.spatial()) {
        const auto f = m.receptive_field(L.index, L.shape[1] / 2, L.shape[2] / 2);
        t["field"] = {f.y0, f.y1, f.x0, f.x1};
      }
      // The receptive-field crop: the centre unit's output computed on its crop alone against
      // the same output on the whole image.
      if (L.spatial())
        if (const auto w = m.input_window(L.index, L.shape[1] / 2, L.shape[2] / 2)) {
          const auto crop = x.slice(2, w->y0, w->y1).slice(3, w->x0, w->x1);
          const auto on_crop = m.forward_crop(crop, L.index).select(3, w->ox).select(2, w->oy);
          const auto on_image = all[static_cast<size_t>(L.index)].select(3, L.shape[2] / 2).select(2, L.shape[1] / 2);
          t["crop"] = {{"window", {w->y0, w->y1, w->x0, w->x1}},
                       {"max_diff", (on_crop - on_image).abs().max().item<double>()},
                       {"scale", on_image.abs().max().item<double>()}};
        }
      taps.push_back(t);
    }
    std::ofstream(out + "/taps.json") << nlohmann::json{{"taps", taps}, {"graph", m.is_graph()},
                                                        {"in_channels", m.info().in_channels},
                                                        {"num_classes", m.info().num_classes}}.dump(1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vizsweep-dump-taps: %s\n", e.what());
    return 1;
  }
  return 0;
}
