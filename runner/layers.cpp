// `vizsweep layers MODEL`: the layers (a graph model's taps) a sweep file can name.
#include <cstdio>
#include <optional>
#include <string>

#include "kernels/error.h"
#include "kernels/model.h"
#include "runner/commands.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {
std::string shape_text(const std::vector<int64_t>& s) {
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
  return t;
}
}  // namespace

int layers_command(const LayersOptions& o) {
  std::optional<k::Model> m;
  const bool builtin = o.model == "vgg11" || o.model == "vgg13" || o.model == "vgg16" || o.model == "vgg19";
  if (builtin) {
    k::VggOptions v;
    v.arch = o.model;
    m = k::Model::builtin(v);
  } else {
    m = k::Model::load(o.model);
  }
  if (o.input_size > 0) m->set_input_size(o.input_size);
  const int64_t S = m->input_size();
  std::printf("%s: %s, %lld x %lld px, %lld classes, %zu %s\n", o.model.c_str(), m->is_graph() ? "graph" : m->info().arch.c_str(),
              static_cast<long long>(S), static_cast<long long>(S), static_cast<long long>(m->info().num_classes),
              m->layers().size(), m->is_graph() ? "taps" : "layers");
  std::printf("%-40s %-20s %-14s %7s %-28s %10s  %s\n", "name", "type", "shape", "units", "receptive field", "MFLOP", "also");
  for (const auto& L : m->layers()) {
    std::string field;
    if (!L.spatial() || L.rf_stride == 0) {
      field = L.rf_note.empty() ? "whole image" : L.rf_note;
      // A transformer's tokens: the whole image, shown (exemplar boxes, the atlas) as the patch.
      if (const auto box = m->receptive_field(L.index, 0, 0); L.spatial() && box.y1 - box.y0 < S)
        field += " (box: " + std::to_string(box.y1 - box.y0) + " px patch)";
    } else {
      const auto w = m->input_window(L.index, L.shape[1] / 2, L.shape[2] / 2);
      field = std::to_string(L.rf_size) + " px, stride " + std::to_string(L.rf_stride) + (w ? "" : " (uncropped)");
    }
    std::string also;
    for (const auto& n : L.other_names) also += (also.empty() ? "" : ", ") + n;
    if (!m->is_graph() && L.path != L.alias) also = L.path;
    std::printf("%-40s %-20s %-14s %7lld %-28s %10.1f  %s\n", L.alias.c_str(),
                (L.type.empty() ? k::layer_kind_name(L.kind) : L.type.c_str()), shape_text(L.shape).c_str(),
                static_cast<long long>(L.units), field.c_str(), L.flops_to_here / 1e6, also.c_str());
  }
  if (m->is_graph())
    std::printf("\nA sweep file names a tap by any of its names (or a glob such as 'layer*.?.conv2'). A tap with a field "
                "smaller than the image runs on its centre unit's crop; the others on the whole image.\n");
  return kExitOk;
}

}  // namespace vizsweep::runner
