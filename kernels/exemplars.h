// Natural exemplars (Yosinski et al. 2015's find_maxes; Borowski et al. 2021): the dataset
// images that drive each unit hardest (top-k) and least (bottom-k), kept for every requested
// unit of every requested layer in one forward pass per image batch.
//
// A unit's response to an image is its activation at the layer's output: for conv units the
// maximum over positions (`max`, the default: the image's best patch for the channel, as
// find_maxes ranks them) or the value at the centre position (`centre`, what the `centre`
// objective of activation maximization optimizes); for fc units the value itself.
//
// Order is total: by response (descending for top, ascending for bottom), then by image id
// (ascending). So the top-k of a union of image sets is the top-k of the union of their top-k
// lists: shards scanned apart and merged give exactly the single scan's lists, provided each
// image's response is computed identically (the same batch composition and threads).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/model.h"

namespace vizsweep::kernels {

enum class ExemplarPosition { Max, Centre };
const char* exemplar_position_name(ExemplarPosition p);
// "max" or "centre"; throws vizsweep::Error naming `field` otherwise.
ExemplarPosition parse_exemplar_position(const std::string& name, const std::string& field = "position");

struct ExemplarLayerRequest {
  std::string layer;           // alias or path
  std::vector<int64_t> units;  // empty = every unit
};

// One entry of a unit's list.
struct Exemplar {
  int64_t image = 0;           // image id (the caller's numbering; ties go to the lower id)
  float activation = 0;        // the unit's response to the image
  int64_t y = 0, x = 0;        // position of the response in the layer's output (0, 0 for fc)
  Model::InputWindow box;      // its receptive field in input pixels, clipped to the image
};

struct UnitExemplars {
  int64_t unit = 0;
  std::vector<Exemplar> top, bottom;  // best first; bottom: lowest first (empty unless asked)
};

class ExemplarScan {
 public:
  // Throws vizsweep::Error for an unknown layer ("layer") or unit ("units"), or k < 1 ("k").
  ExemplarScan(const Model& model, const std::vector<ExemplarLayerRequest>& layers, int64_t k, bool bottom,
               ExemplarPosition position);

  // One batch: images [B, C, S, S] in [0, 1] and their ids, which must increase within the
  // batch and exceed every id added before (the tie rule relies on it). One forward pass up to
  // the deepest layer, no gradients. Throws NumericalError on a non-finite response.
  void add(const torch::Tensor& images, const std::vector<int64_t>& ids);

  // Every requested layer's units, in request order, with up to k entries each (fewer when
  // fewer images were added).
  struct LayerExemplars {
    LayerInfo layer;
    std::vector<UnitExemplars> units;
  };
  std::vector<LayerExemplars> result() const;

  int64_t images_seen() const { return seen_; }

 private:
  // A unit's list: k slots of (value, image id, flat position), best first; n filled.
  struct Lists {
    std::vector<float> v;
    std::vector<int64_t> id, pos, n;
  };
  struct State {
    const LayerInfo* layer;
    torch::Tensor units;                 // [U] long
    std::vector<int64_t> unit_ids;       // the same, on the host
    bool all_units = false;              // units = every unit in order (no selection needed)
    Lists top, bottom;                   // U x k slots each
  };
  const Model& model_;
  int64_t k_;
  bool bottom_;
  ExemplarPosition position_;
  int upto_ = 0;
  int64_t seen_ = 0, last_id_ = -1;
  std::vector<State> states_;
};

// Machine interpretability (after Zimmermann, Klindt & Brendel, NeurIPS 2024): the two-
// alternative task people were given, answered in a feature space. Reference: a
// visualization's features [D]; queries: one of the unit's top exemplars [k, D] against one of
// its bottom exemplars [m, D]; the answer is the query nearer the reference (Euclidean), right
// when it is the top one. Returns the share of right answers over all k x m pairs, a tie
// counting half: 1 = the visualization looks like what drives the unit and unlike what does
// not, 0.5 = chance.
double machine_interpretability(const torch::Tensor& reference, const torch::Tensor& top, const torch::Tensor& bottom);

}  // namespace vizsweep::kernels
