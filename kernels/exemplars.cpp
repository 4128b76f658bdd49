#include "kernels/exemplars.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

namespace vizsweep::kernels {

const char* exemplar_position_name(ExemplarPosition p) { return p == ExemplarPosition::Max ? "max" : "centre"; }

ExemplarPosition parse_exemplar_position(const std::string& name, const std::string& field) {
  if (name == "max") return ExemplarPosition::Max;
  if (name == "centre" || name == "center") return ExemplarPosition::Centre;
  throw Error(field, "unknown position '" + name + "' (valid: max, centre)");
}

ExemplarScan::ExemplarScan(const Model& model, const std::vector<ExemplarLayerRequest>& layers, int64_t k, bool bottom,
                           ExemplarPosition position)
    : model_(model), k_(k), bottom_(bottom), position_(position) {
  if (k < 1) throw Error("k", "must be at least 1, got " + std::to_string(k));
  if (layers.empty()) throw Error("layers", "no layers to scan");
  for (const auto& req : layers) {
    const LayerInfo& L = model.layer(req.layer);
    std::vector<int64_t> units = req.units;
    if (units.empty())
      for (int64_t u = 0; u < L.units; ++u) units.push_back(u);
    for (int64_t u : units) model.check_unit(L, u);
    State s;
    s.layer = &L;
    s.units = torch::tensor(units, torch::kLong).to(model.device());
    s.all_units = static_cast<int64_t>(units.size()) == L.units;
    for (size_t u = 0; s.all_units && u < units.size(); ++u) s.all_units = units[u] == static_cast<int64_t>(u);
    s.unit_ids = units;
    const auto slots = units.size() * static_cast<size_t>(k);
    for (Lists* l : {&s.top, &s.bottom}) {
      if (l == &s.bottom && !bottom) break;
      l->v.assign(slots, 0.0f), l->id.assign(slots, 0), l->pos.assign(slots, 0), l->n.assign(units.size(), 0);
    }
    upto_ = std::max(upto_, L.index);
    states_.push_back(std::move(s));
  }
}

namespace {
// Offers each image of a batch to every unit's list, in image order. values, positions:
// [B, U] on the host. A new entry goes after every entry that is as good (their image ids are
// lower), so each list stays the first k in the total order (value, then id).
template <bool Top>
void offer(std::vector<float>& lv, std::vector<int64_t>& lid, std::vector<int64_t>& lpos, std::vector<int64_t>& ln, int64_t k,
           const float* values, const int64_t* positions, const std::vector<int64_t>& ids, int64_t U) {
  auto better = [](float a, float b) { return Top ? a > b : a < b; };
  for (size_t b = 0; b < ids.size(); ++b) {
    const float* row = values + static_cast<int64_t>(b) * U;
    const int64_t* prow = positions + static_cast<int64_t>(b) * U;
    for (int64_t u = 0; u < U; ++u) {
      const float x = row[u];
      const int64_t base = u * k, n = ln[static_cast<size_t>(u)];
      if (n == k && !better(x, lv[static_cast<size_t>(base + k - 1)])) continue;
      int64_t j = n < k ? n : k - 1;  // the slot freed (or the last, dropped)
      while (j > 0 && better(x, lv[static_cast<size_t>(base + j - 1)])) {
        lv[static_cast<size_t>(base + j)] = lv[static_cast<size_t>(base + j - 1)];
        lid[static_cast<size_t>(base + j)] = lid[static_cast<size_t>(base + j - 1)];
        lpos[static_cast<size_t>(base + j)] = lpos[static_cast<size_t>(base + j - 1)];
        --j;
      }
      lv[static_cast<size_t>(base + j)] = x, lid[static_cast<size_t>(base + j)] = ids[b], lpos[static_cast<size_t>(base + j)] = prow[u];
      if (n < k) ++ln[static_cast<size_t>(u)];
    }
  }
}
}  // namespace

void ExemplarScan::add(const torch::Tensor& images, const std::vector<int64_t>& ids) {
  if (images.size(0) != static_cast<int64_t>(ids.size())) throw Error("images", "batch size and id count differ");
  if (ids.empty()) return;
  for (size_t j = 0; j < ids.size(); ++j)
    if (ids[j] <= (j == 0 ? last_id_ : ids[j - 1]))
      throw Error("images", "image ids must increase across batches (got " + std::to_string(ids[j]) + ")");
  torch::NoGradGuard ng;
  const auto dev = model_.device();
  // Each layer's responses are reduced the moment the layer is computed: nothing is copied.
  std::vector<std::vector<State*>> at(static_cast<size_t>(upto_) + 1);
  for (auto& s : states_) at[static_cast<size_t>(s.layer->index)].push_back(&s);
  auto take = [&](State& s, const torch::Tensor& out) {
    auto a = s.all_units ? out : out.index_select(1, s.units);
    torch::Tensor v, p;
    if (a.dim() == 4) {
      const int64_t H = a.size(2), W = a.size(3);
      auto flat = a.flatten(2);  // [B, U, H*W]
      if (position_ == ExemplarPosition::Max) {
        std::tie(v, p) = flat.max(2);
      } else {
        const int64_t c = (H / 2) * W + W / 2;
        v = flat.select(2, c).clone();
        p = torch::full_like(v, c, torch::kLong);
      }
    } else {
      v = a.clone();
      p = torch::zeros_like(v, torch::kLong);
    }
    v = v.to(torch::kCPU).contiguous(), p = p.to(torch::kCPU).contiguous();  // [B, U]
    const float* vd = v.data_ptr<float>();
    for (int64_t i = 0; i < v.numel(); ++i)
      if (!std::isfinite(vd[i]))
        throw NumericalError(s.layer->alias, "non-finite activation for an image of ids " + std::to_string(ids.front()) + ".." +
                                                 std::to_string(ids.back()));
    const int64_t U = v.size(1);
    offer<true>(s.top.v, s.top.id, s.top.pos, s.top.n, k_, vd, p.data_ptr<int64_t>(), ids, U);
    if (bottom_) offer<false>(s.bottom.v, s.bottom.id, s.bottom.pos, s.bottom.n, k_, vd, p.data_ptr<int64_t>(), ids, U);
  };
  model_.forward_each(images.to(dev), upto_, [&](int index, const torch::Tensor& out) {
    for (State* s : at[static_cast<size_t>(index)]) take(*s, out);
  });
  seen_ += static_cast<int64_t>(ids.size());
  last_id_ = ids.back();
}

std::vector<ExemplarScan::LayerExemplars> ExemplarScan::result() const {
  std::vector<LayerExemplars> out;
  for (const auto& s : states_) {
    LayerExemplars le;
    le.layer = *s.layer;
    const int64_t W = s.layer->spatial() ? s.layer->shape[2] : 1;
    auto list = [&](const Lists& l) {
      std::vector<std::vector<Exemplar>> all(s.unit_ids.size());
      for (size_t u = 0; u < s.unit_ids.size(); ++u)
        for (int64_t j = 0; j < l.n[u]; ++j) {
          const auto at = u * static_cast<size_t>(k_) + static_cast<size_t>(j);
          Exemplar e;
          e.image = l.id[at];
          e.activation = l.v[at];
          e.y = l.pos[at] / W, e.x = l.pos[at] % W;
          e.box = model_.receptive_field(s.layer->index, e.y, e.x);
          all[u].push_back(e);
        }
      return all;
    };
    auto top = list(s.top);
    std::vector<std::vector<Exemplar>> bottom;
    if (bottom_) bottom = list(s.bottom);
    for (size_t u = 0; u < s.unit_ids.size(); ++u) {
      UnitExemplars ue;
      ue.unit = s.unit_ids[u];
      ue.top = std::move(top[u]);
      if (bottom_) ue.bottom = std::move(bottom[u]);
      le.units.push_back(std::move(ue));
    }
    out.push_back(std::move(le));
  }
  return out;
}

double machine_interpretability(const torch::Tensor& reference, const torch::Tensor& top, const torch::Tensor& bottom) {
  if (top.size(0) == 0 || bottom.size(0) == 0) throw Error("exemplars", "machine interpretability needs top and bottom exemplars");
  auto r = reference.to(torch::kDouble).view({1, -1});
  auto dt = (top.to(torch::kDouble) - r).norm(2, 1), db = (bottom.to(torch::kDouble) - r).norm(2, 1);
  auto a = dt.view({-1, 1}), b = db.view({1, -1});
  auto right = (a < b).to(torch::kDouble) + 0.5 * (a == b).to(torch::kDouble);
  return right.mean().item<double>();
}

}  // namespace vizsweep::kernels
