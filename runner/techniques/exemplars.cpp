// Natural exemplars: a task scans one shard of the dataset for every requested unit at once
// (kernels/exemplars.h) and keeps the shard's top-k (and bottom-k) per unit; the index's view
// `exemplars` merges the shards' lists into the dataset's. The shard file holds each image
// the lists name once, at the model's input size; a unit's receptive-field crop is the box
// its row gives on that image.
#include <set>

#include "kernels/exemplars.h"
#include "runner/results_dir.h"
#include "runner/run_context.h"
#include "sweeps/techniques/exemplars.h"

namespace vizsweep::runner {

namespace k = vizsweep::kernels;

namespace {

nlohmann::json run(RunContext& ctx, const sweeps::Section& section, const sweeps::Task& task, TaskData& data) {
  const auto& sec = static_cast<const sweeps::ExemplarsSection&>(section);
  std::vector<k::ExemplarLayerRequest> layers;
  if (sec.all_layers) {
    for (const auto& L : ctx.model().layers())
      if (L.kind == k::LayerKind::Conv || L.kind == k::LayerKind::Linear) layers.push_back({L.alias, sec.units});
  } else {
    for (const auto& l : sec.layers) layers.push_back({l.name, sec.units});
  }
  k::ExemplarScan scan(ctx.model(), layers, sec.k, sec.bottom, k::parse_exemplar_position(sec.position));
  std::vector<int64_t> labels;
  for (size_t b = 0; b < task.items.size(); b += static_cast<size_t>(sec.batch)) {
    std::vector<int64_t> ids(task.items.begin() + static_cast<long>(b),
                             task.items.begin() + static_cast<long>(std::min(task.items.size(), b + static_cast<size_t>(sec.batch))));
    scan.add(ctx.images(sec.images, ids, labels), ids);
  }
  nlohmann::json rows;
  auto& out = rows["exemplar_results"] = nlohmann::json::array();
  std::set<int64_t> used;
  for (const auto& le : scan.result())
    for (const auto& ue : le.units)
      for (const auto* list : {&ue.top, &ue.bottom})
        for (size_t r = 0; r < list->size(); ++r) {
          const auto& e = (*list)[r];
          used.insert(e.image);
          out.push_back({{"layer", le.layer.alias},
                         {"unit", ue.unit},
                         {"kind", list == &ue.top ? "top" : "bottom"},
                         {"task_rank", static_cast<int64_t>(r + 1)},
                         {"image_id", e.image},
                         {"activation", static_cast<double>(e.activation)},
                         {"y", e.y},
                         {"x", e.x},
                         {"box_y0", e.box.y0},
                         {"box_y1", e.box.y1},
                         {"box_x0", e.box.x0},
                         {"box_x1", e.box.x1},
                         {"dataset", ResultsDir::dataset(task.key, "image_" + std::to_string(e.image))}});
        }
  // The images the lists name, once each.
  const std::vector<int64_t> ids(used.begin(), used.end());
  for (size_t b = 0; b < ids.size(); b += static_cast<size_t>(sec.batch)) {
    std::vector<int64_t> part(ids.begin() + static_cast<long>(b),
                              ids.begin() + static_cast<long>(std::min(ids.size(), b + static_cast<size_t>(sec.batch))));
    auto x = ctx.images(sec.images, part, labels);
    for (size_t j = 0; j < part.size(); ++j) data.images.push_back(blob("image_" + std::to_string(part[j]), x[static_cast<int64_t>(j)]));
  }
  data.attributes["images_scanned"] = std::to_string(scan.images_seen());
  data.ints = {ints("image_ids", torch::tensor(ids, torch::kLong))};
  return rows;
}

}  // namespace

VIZSWEEP_RUN_TECHNIQUE(exemplars, run, {{"exemplar_results", true}})

}  // namespace vizsweep::runner
