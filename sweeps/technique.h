// A technique, as the sweep layer sees it: its sweep-file section (keys, parsing, the
// hyperparameters it declares), how the section expands into tasks, and what the index keeps
// of its settings and images. No torch here; the runner side of a technique (running a task
// into images, arrays and result rows) is runner/technique.h.
//
// Each technique is one file in sweeps/techniques/ (with its section type in a header there)
// and one in runner/techniques/; both folders are read by CMake, so a new file is all it takes
// to register one (docs/design.md, "Adding a technique").
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/settings.h"
#include "sweeps/types.h"

namespace YAML {
class Node;
}

namespace vizsweep::sweeps {

class Reader;
struct SweepSpec;  // sweeps/sweep.h: techniques see it only through Expansion

// The settings table rows the index keeps for a section: setting_id is the position.
struct SettingsRows {
  std::string table;  // e.g. "actmax_settings"
  struct Row {
    std::string name;
    std::vector<std::pair<std::string, kernels::ParamValue>> params;
  };
  std::vector<Row> rows;
};

// A technique's parsed section of a sweep file.
struct Section {
  virtual ~Section() = default;
  // What the index's settings table holds for it (table empty: the technique has none).
  virtual SettingsRows settings_rows() const { return {}; }
  // The section's input images (the index's images table), or nullptr.
  virtual const std::vector<ImageSource>* inputs() const { return nullptr; }
  // Extra lines for `vizsweep plan` after the per-layer table (may be empty).
  virtual std::string plan_note(const std::vector<Task>&) const { return ""; }
};

// What expansion needs from the sweep and the model, shared by every technique.
class Expansion {
 public:
  Expansion(const SweepSpec& spec, const ModelDesc& model, const Reader& reader, std::vector<Task>& out);
  const SweepSpec& spec;
  const ModelDesc& model;
  const Reader& reader;
  // "model=...|size=...[|precision=...]": the start of every canonical task description, in
  // the sweep's default precision, and in the precision of one layer (its `compute:` entry,
  // else the default; actmax tasks).
  std::string head;
  std::string head_for(const LayerDesc& layer) const;
  // Forward FLOPs and working memory per item through the whole model.
  double total_flops = 0, total_bytes = 0;
  // Items per task: `asked`, lowered so that items x bytes_per_item fits batch_memory_gb.
  size_t fit(int64_t asked, double bytes_per_item) const;
  // The layers named (or all conv and fc layers, or all layers); a name with * ? [ is a glob
  // over every name of every layer; unknown names are errors that suggest the nearest.
  std::vector<const LayerDesc*> layers(const std::vector<Located>& layers, bool all, bool conv_and_fc) const;
  // "; nearest: a, b, c" for a name the model does not have.
  std::string nearest(const std::string& name) const;
  // Finishes a task (key and seed from its canonical description) and adds it.
  void add(Task t);

 private:
  std::vector<Task>& out_;
};

struct SweepTechnique {
  std::string name;   // the section's key in a sweep file, and tasks.technique in the index
  // Expansion order among techniques: task order and the spec hash follow it, so an existing
  // technique's order never changes (actmax 10, invert 20, fgsm 30, featuremaps 40).
  int order = 0;
  std::vector<std::string> keys;  // the section's keys, in the order errors list them
  std::string items;              // what a task's items are: "units" or "images"
  // The hyperparameters its settings declare (kernels/settings.cpp), where a sweep file sets
  // them, and the index table whose columns they are; nullptr / empty when it has none.
  const std::vector<kernels::ParamInfo>* params = nullptr;
  std::string params_where, settings_table;
  // Parses the section (keys already checked against `keys`); errors through the reader.
  std::function<std::shared_ptr<const Section>(const Reader&, const YAML::Node&)> parse;
  // Checks the section against the model and adds its tasks, deterministically.
  std::function<void(const Section&, Expansion&)> expand;
  // Whether its tasks compute in per-layer formats (the sweep's `compute:`, `vizsweep tune`'s
  // choice, plan's projection by layer): optimizations whose speed the format changes.
  bool compute_formats = false;
};

// Every technique, in `order`. The list is made from sweeps/techniques/ at configure time.
const std::vector<const SweepTechnique*>& techniques();
// nullptr when no technique has that name.
const SweepTechnique* find_technique(const std::string& name);
// The words the declarations give a sweep file: every top-level key, every section's keys,
// every hyperparameter (as "name:") and its choices, every transform. The fuzzer's
// dictionary (tests/fuzz/run_fuzzer.sh) is tests/fuzz/sweep.dict's syntax plus these.
std::vector<std::string> declared_words();
// Whether the technique named computes in per-layer formats (false for an unknown name).
bool has_compute_formats(const std::string& technique);

}  // namespace vizsweep::sweeps
