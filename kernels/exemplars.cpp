#include "kernels/exemplars.h"

#include <torch/torch.h>

#include <algorithm>

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
    const auto U = static_cast<int64_t>(units.size());
    auto empty_f = torch::empty({U, 0}, torch::TensorOptions().dtype(torch::kFloat).device(model.device()));
    auto empty_i = torch::empty({U, 0}, torch::TensorOptions().dtype(torch::kLong).device(model.device()));
    s.top_v = s.bot_v = empty_f;
    s.top_i = s.bot_i = s.top_p = s.bot_p = empty_i;
    upto_ = std::max(upto_, L.index);
    states_.push_back(std::move(s));
  }
}

namespace {
// Keeps the first k of [kept | batch] along dim 1 in the total order (value, then id). The
// kept entries' ids are all below the batch's and both parts are in id order among equal
// values, so a stable sort by value alone breaks ties by id.
void merge(torch::Tensor& v, torch::Tensor& i, torch::Tensor& p, const torch::Tensor& bv, const torch::Tensor& bi,
           const torch::Tensor& bp, int64_t k, bool descending) {
  auto all_v = torch::cat({v, bv}, 1), all_i = torch::cat({i, bi}, 1), all_p = torch::cat({p, bp}, 1);
  auto order = std::get<1>(torch::sort(all_v, /*stable=*/true, /*dim=*/1, descending));
  order = order.narrow(1, 0, std::min<int64_t>(k, order.size(1)));
  v = all_v.gather(1, order).contiguous();
  i = all_i.gather(1, order).contiguous();
  p = all_p.gather(1, order).contiguous();
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
  auto outs = model_.forward_all(images.to(dev), upto_);
  auto id_row = torch::tensor(ids, torch::kLong).to(dev);
  for (auto& s : states_) {
    auto a = outs[static_cast<size_t>(s.layer->index)].index_select(1, s.units);
    torch::Tensor v, p;
    if (a.dim() == 4) {
      const int64_t H = a.size(2), W = a.size(3);
      auto flat = a.flatten(2);  // [B, U, H*W]
      if (position_ == ExemplarPosition::Max) {
        std::tie(v, p) = flat.max(2);
      } else {
        const int64_t c = (H / 2) * W + W / 2;
        v = flat.select(2, c);
        p = torch::full_like(v, c, torch::kLong);
      }
    } else {
      v = a;
      p = torch::zeros_like(v, torch::kLong);
    }
    if (!torch::isfinite(v).all().item<bool>())
      throw NumericalError(s.layer->alias, "non-finite activation for an image of ids " + std::to_string(ids.front()) + ".." +
                                               std::to_string(ids.back()));
    v = v.t().contiguous(), p = p.t().contiguous();
    auto bi = id_row.unsqueeze(0).expand({v.size(0), -1}).contiguous();
    merge(s.top_v, s.top_i, s.top_p, v, bi, p, k_, true);
    if (bottom_) merge(s.bot_v, s.bot_i, s.bot_p, v, bi, p, k_, false);
  }
  seen_ += static_cast<int64_t>(ids.size());
  last_id_ = ids.back();
}

std::vector<ExemplarScan::LayerExemplars> ExemplarScan::result() const {
  std::vector<LayerExemplars> out;
  for (const auto& s : states_) {
    LayerExemplars le;
    le.layer = *s.layer;
    const int64_t W = s.layer->spatial() ? s.layer->shape[2] : 1;
    auto units = s.units.cpu();
    auto list = [&](const torch::Tensor& v_, const torch::Tensor& i_, const torch::Tensor& p_) {
      auto v = v_.cpu().contiguous(), i = i_.cpu().contiguous(), p = p_.cpu().contiguous();
      auto va = v.accessor<float, 2>();
      auto ia = i.accessor<int64_t, 2>(), pa = p.accessor<int64_t, 2>();
      std::vector<std::vector<Exemplar>> all(static_cast<size_t>(v.size(0)));
      for (int64_t u = 0; u < v.size(0); ++u)
        for (int64_t j = 0; j < v.size(1); ++j) {
          Exemplar e;
          e.image = ia[u][j];
          e.activation = va[u][j];
          e.y = pa[u][j] / W, e.x = pa[u][j] % W;
          e.box = model_.receptive_field(s.layer->index, e.y, e.x);
          all[static_cast<size_t>(u)].push_back(e);
        }
      return all;
    };
    auto top = list(s.top_v, s.top_i, s.top_p);
    std::vector<std::vector<Exemplar>> bottom;
    if (bottom_) bottom = list(s.bot_v, s.bot_i, s.bot_p);
    for (int64_t u = 0; u < units.size(0); ++u) {
      UnitExemplars ue;
      ue.unit = units[u].item<int64_t>();
      ue.top = std::move(top[static_cast<size_t>(u)]);
      if (bottom_) ue.bottom = std::move(bottom[static_cast<size_t>(u)]);
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
