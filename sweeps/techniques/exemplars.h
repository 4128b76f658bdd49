// Natural exemplars (kernels/exemplars.h): the sweep file's `exemplars` section.
#pragma once

#include "sweeps/technique.h"

namespace vizsweep::sweeps {

struct ExemplarsSection : Section {
  std::vector<Located> layers;       // expanded ("all" -> every conv and fc layer)
  bool all_layers = false;
  std::vector<int64_t> units;        // empty = all units of each layer
  int units_line = 0;
  std::vector<ImageSource> images;   // the dataset scanned; image_id = position here
  int64_t skipped_files = 0;         // non-image files in its folders
  int64_t k = 9;
  bool bottom = false;               // keep the bottom-k as well
  std::string position = "max";      // max | centre (kernels::ExemplarPosition)
  int64_t batch = 100;               // images per forward pass
  int64_t images_per_task = 2000;    // a multiple of batch (tasks = dataset shards)
  // The classifier file whose features are the space of the machine interpretability score
  // (runner/engine.h, mis_feature_model); empty: actmax.judge, else the sweep's model file.
  std::string feature_model;
  // Where in the feature model machine interpretability compares: "logits" (the default), or a
  // tap of it (`vizsweep layers FILE` lists them) whose output, averaged over positions (or
  // tokens), is the feature vector. One tap for every layer (`feature_layer`), or one per
  // layer (`feature_layers`, each with its place in the file; the others keep "logits").
  std::string feature_layer = "logits";
  std::vector<std::pair<Located, std::string>> feature_layers;
  // The tap machine interpretability uses for `layer`.
  const std::string& feature_layer_for(const std::string& layer) const {
    for (const auto& [l, tap] : feature_layers)
      if (l.name == layer) return tap;
    return feature_layer;
  }

  const std::vector<ImageSource>* inputs() const override { return &images; }
  std::string plan_note(const std::vector<Task>& tasks) const override;
};

}  // namespace vizsweep::sweeps
