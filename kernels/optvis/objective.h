// Objectives: what activation maximization ascends, one value per image of a batch, read from
// one layer's output. Made from a few kinds and combined with + and * (Lucid's algebra):
//
//   unit(...)                    one unit per image: at the centre, at (y, x), or its channel mean
//   direction(...)               a vector over the layer's channels, at a position or averaged
//   diversity(...)               Lucid's Gram-matrix penalty within each group of images
//   a + b, 2.0 * a, -a, a - b    weighted sums
//
// An objective that reads one output position of a spatial layer says which (position()):
// the loop then runs on the input window that position sees (Model::input_window) and reads
// the objective moved() to the crop's output.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/objective_spec.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

struct OutputPosition {
  int64_t y = 0, x = 0;
  bool operator==(const OutputPosition& o) const { return y == o.y && x == o.x; }
};

class Objective;
using ObjectivePtr = std::shared_ptr<const Objective>;

// The outputs an objective reads: its own layer's (`target`) and those of the layers it
// names in layers() (by layer index).
struct LayerOutputs {
  int target = -1;
  std::map<int, torch::Tensor> of;
};

class Objective {
 public:
  virtual ~Objective() = default;
  // act: the layer's output [B, ...] -> [B].
  virtual torch::Tensor evaluate(const torch::Tensor& act) const = 0;
  // Layers other than its own it reads (indices); empty: its own only.
  virtual std::vector<int> layers() const { return {}; }
  // The same on the outputs of every layer it reads.
  virtual torch::Tensor evaluate_outputs(const LayerOutputs& o) const { return evaluate(o.of.at(o.target)); }
  // The one output position of a spatial layer it reads, if it reads one.
  virtual std::optional<OutputPosition> position() const = 0;
  // The same objective reading `p` where it read position() (a crop's output).
  virtual ObjectivePtr moved(OutputPosition p) const = 0;
  // "conv5_3 unit {unit} at centre (7,7)"; "{unit}" stands for each image's unit.
  virtual std::string description() const = 0;
};

// Per image b, the activation of unit units[b] of `layer` (fc layers: the unit itself).
class UnitObjective : public Objective {
 public:
  UnitObjective(const Model& model, const LayerInfo& layer, std::vector<int64_t> units, ObjectiveKind kind);
  torch::Tensor evaluate(const torch::Tensor& act) const override;
  std::optional<OutputPosition> position() const override;
  ObjectivePtr moved(OutputPosition p) const override { return std::make_shared<UnitObjective>(at(p.y, p.x)); }
  std::string description() const override;
  // [B] bool: whether unit units[b] is the largest of its layer at the objective's location.
  torch::Tensor is_argmax(const torch::Tensor& act) const;
  const LayerInfo& layer() const { return layer_; }
  const std::vector<int64_t>& units() const { return units_; }
  // The same objective read at output position (y, x) instead of the centre.
  UnitObjective at(int64_t y, int64_t x) const;

 private:
  torch::Tensor per_unit(const torch::Tensor& act) const;  // [B, units of layer]
  LayerInfo layer_;
  std::vector<int64_t> units_;
  torch::Tensor index_;  // [B, 1] int64 on the model's device
  ObjectiveKind kind_;
  int64_t at_y_ = -1, at_x_ = -1;  // -1: the centre of the output
};

ObjectivePtr unit_objective(const Model& model, const LayerInfo& layer, std::vector<int64_t> units, ObjectiveKind kind);

// sum_c weights[c] x act[b, c] at `at` (the centre when unset; fc layers: the features), or
// averaged over positions with channel_mean. The same direction for every image.
ObjectivePtr direction_objective(const Model& model, const LayerInfo& layer, std::vector<double> weights,
                                 std::optional<OutputPosition> at, bool channel_mean = false);

// Lucid's diversity: each image's layer output as a Gram matrix over channels (spatial
// positions summed), normalized to unit Frobenius norm; image b scores minus the mean, over
// the other images j of its group (groups[b] == groups[j]), of <G_b, G_j>. Higher when an
// image's channel correlations differ from its group's. Reads the whole output of `layer`,
// which may be another layer than the objective's (layers()): for a class unit, Lucid's
// penalty on the logits' outer product fights the class itself, and a layer with positions
// before it makes the images differ in what they show (diversity_layer()).
ObjectivePtr diversity_objective(const LayerInfo& layer, std::vector<int64_t> groups);
// The layer diversity reads by default for a mapped layer: the layer itself when its output
// has at least 4 x 4 positions, else the last layer before it that has (the layer itself
// when none has).
const LayerInfo& diversity_layer(const Model& model, const LayerInfo& mapped);

// The sweep's objective (objective_spec.h) for images of `units` (one each): each term an
// objective above, their weighted sum (a single term of weight 1 is that objective itself).
// Throws vizsweep::Error naming "objective" or "position" for what does not fit the layer.
ObjectivePtr make_objective(const ObjectiveSpec& spec, const Model& model, const LayerInfo& layer,
                            const std::vector<int64_t>& units);

// Weighted sums. A sum reads one position when all its terms read the same one.
ObjectivePtr operator+(const ObjectivePtr& a, const ObjectivePtr& b);
ObjectivePtr operator*(double w, const ObjectivePtr& a);
ObjectivePtr operator-(const ObjectivePtr& a);
ObjectivePtr operator-(const ObjectivePtr& a, const ObjectivePtr& b);

}  // namespace vizsweep::kernels
