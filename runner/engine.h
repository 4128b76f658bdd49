// Engine: one rank's model on its device, running tasks. The torch side of the runner,
// behind a torch-free interface so the coordinator, index and shard code compile fast.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "runner/shard.h"
#include "sweeps/sweep.h"

namespace vizsweep::runner {

// The classifier whose features machine interpretability compares in: exemplars.feature_model,
// else actmax.judge, else the sweep's model file; "" when the sweep scores none (no actmax,
// no exemplars with bottom lists, or a built-in model without a feature model).
std::string mis_feature_model(const sweeps::SweepSpec& spec);

class Engine {
 public:
  // Loads or builds the sweep's model on `device` ("cpu", "cuda", "cuda:K") with `threads`
  // ATen threads (<= 0: all cores), in the sweep's compute format (precision,
  // channels_last) unless `compute_format` is false (planning only reads the layer table).
  // Throws vizsweep::Error (missing or corrupt model, bad device, fp16 on a CPU).
  Engine(const sweeps::SweepSpec& spec, const std::string& device, int threads, bool compute_format = true);
  ~Engine();

  const sweeps::ModelDesc& model() const;
  // Content hash of the model file ("builtin:<identity>" for built-ins).
  std::string model_hash() const;
  std::string device() const;
  int threads() const;

  // Runs a task through its technique's runner side (runner/techniques/): fills `data` for the
  // shard and returns the index rows, {result table: [rows]} (dataset paths are
  // /tasks/<key>/<name>). With a search trial's context (SearchRun::context: its units'
  // exemplars), its actmax rows also get mis and activation_ratio, computed on the images in
  // memory as the run's finishing step computes them from the shards (runner/finish.h).
  // Throws vizsweep::Error or NumericalError.
  nlohmann::json run(const sweeps::Task& task, TaskData& data, const nlohmann::json& context = nullptr);

  // Machine interpretability (kernels/exemplars.h) of one unit's visualizations `vizs` (whole
  // images, as the shards hold them) against its exemplar crops, in the feature space of the
  // classifier file `feature_model` (loaded once) at `feature_layer` (Classifier::features:
  // "logits" or a tap averaged over positions). Each visualization is first cut to the
  // receptive field of the centre unit of `layer` when `centre` (the whole image for fc
  // layers); every image is resized to the classifier's input. One value per visualization.
  std::vector<double> mis(const std::string& feature_model, const std::string& feature_layer, const std::string& layer, bool centre,
                          const std::vector<ImageBlob>& vizs, const std::vector<ImageBlob>& top,
                          const std::vector<ImageBlob>& bottom);

  // mis as the sweep stores it: in its feature space (mis_feature_model, the tap
  // exemplars.feature_layer gives `layer`), cut to the centre unit's receptive field when the
  // actmax objective is the centre unit. The finishing step and a search trial both call this.
  std::vector<double> sweep_mis(const std::string& layer, const std::vector<ImageBlob>& vizs, const std::vector<ImageBlob>& top,
                                const std::vector<ImageBlob>& bottom);

  // For `vizsweep tune` (runner/tune.cpp): actmax task `task` with `iterations` steps and
  // its first `units` units (0: all) in compute format `format`, nothing written. seconds:
  // the call's wall time (the device synchronized); objective: each unit's objective on the
  // final images under the fp32 NCHW model (the same weights); hf_energy per unit.
  struct Probe {
    double seconds = 0;
    std::vector<double> objective, hf_energy;
  };
  Probe probe_actmax(const sweeps::Task& task, const sweeps::ComputeFormat& format, int iterations, size_t units = 0);
  // Seconds `run` takes on `task` (its data discarded).
  double time_task(const sweeps::Task& task);

  static std::string torch_version();
  static bool cuda_available();
  static int cuda_device_count();

 private:
  // run's scoring of a search trial's images against its units' exemplars (the context's
  // "exemplars" entry): mis and activation_ratio in each actmax_results row.
  void score_by_exemplars(const sweeps::Task& task, const TaskData& data, nlohmann::json& rows, const nlohmann::json& exemplars);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vizsweep::runner
