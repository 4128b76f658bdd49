#include "kernels/optvis/objective.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include "kernels/error.h"

namespace vizsweep::kernels {

UnitObjective::UnitObjective(const Model& model, const LayerInfo& layer, std::vector<int64_t> units, ObjectiveKind kind)
    : layer_(layer), units_(std::move(units)), kind_(kind) {
  if (units_.empty()) throw Error("units", "no units given");
  for (int64_t u : units_) model.check_unit(layer_, u);
  index_ = torch::tensor(units_, torch::kLong).view({-1, 1}).to(model.device());
}

torch::Tensor UnitObjective::per_unit(const torch::Tensor& act) const {
  if (act.dim() == 2) return act;
  if (kind_ == ObjectiveKind::ChannelMean) return act.mean({2, 3});
  return act.select(3, at_x_ >= 0 ? at_x_ : act.size(3) / 2).select(2, at_y_ >= 0 ? at_y_ : act.size(2) / 2);
}

UnitObjective UnitObjective::at(int64_t y, int64_t x) const {
  UnitObjective o = *this;
  o.at_y_ = y, o.at_x_ = x;
  return o;
}

std::optional<OutputPosition> UnitObjective::position() const {
  if (!layer_.spatial() || kind_ != ObjectiveKind::CentreUnit) return std::nullopt;
  return OutputPosition{at_y_ >= 0 ? at_y_ : layer_.shape[1] / 2, at_x_ >= 0 ? at_x_ : layer_.shape[2] / 2};
}

torch::Tensor UnitObjective::evaluate(const torch::Tensor& act) const { return per_unit(act).gather(1, index_).squeeze(1); }

torch::Tensor UnitObjective::is_argmax(const torch::Tensor& act) const { return per_unit(act).argmax(1) == index_.squeeze(1); }

std::string UnitObjective::description() const {
  std::string d = layer_.alias + " unit {unit}";
  if (!layer_.spatial()) return d;
  if (kind_ == ObjectiveKind::ChannelMean) return d + " channel mean";
  const auto p = *position();
  return d + (at_y_ >= 0 ? " at (" : " at centre (") + std::to_string(p.y) + "," + std::to_string(p.x) + ")";
}

ObjectivePtr unit_objective(const Model& model, const LayerInfo& layer, std::vector<int64_t> units, ObjectiveKind kind) {
  return std::make_shared<UnitObjective>(model, layer, std::move(units), kind);
}

namespace {

class DirectionObjective : public Objective {
 public:
  DirectionObjective(const LayerInfo& layer, torch::Tensor weights, std::optional<OutputPosition> at, bool mean)
      : layer_(layer), weights_(std::move(weights)), at_(at), mean_(mean) {}
  torch::Tensor evaluate(const torch::Tensor& act) const override {
    if (act.dim() == 2) return act.matmul(weights_);
    if (mean_) return act.mean({2, 3}).matmul(weights_);
    const auto p = *position();
    return act.select(3, p.x).select(2, p.y).matmul(weights_);
  }
  std::optional<OutputPosition> position() const override {
    if (!layer_.spatial() || mean_) return std::nullopt;
    return at_ ? *at_ : OutputPosition{layer_.shape[1] / 2, layer_.shape[2] / 2};
  }
  ObjectivePtr moved(OutputPosition p) const override { return std::make_shared<DirectionObjective>(layer_, weights_, p, mean_); }
  std::string description() const override {
    std::string d = layer_.alias + " direction over " + std::to_string(weights_.size(0)) + " channels";
    if (!layer_.spatial()) return d;
    if (mean_) return d + " channel mean";
    const auto p = *position();
    return d + " at (" + std::to_string(p.y) + "," + std::to_string(p.x) + ")";
  }

 private:
  LayerInfo layer_;
  torch::Tensor weights_;  // [C] on the model's device
  std::optional<OutputPosition> at_;
  bool mean_;
};

class DiversityObjective : public Objective {
 public:
  DiversityObjective(const LayerInfo& layer, std::vector<int64_t> groups) : layer_(layer), groups_(std::move(groups)) {}
  torch::Tensor evaluate(const torch::Tensor& act) const override {
    const int64_t B = act.size(0);
    if (B != static_cast<int64_t>(groups_.size()))
      throw Error("diversity", "a batch of " + std::to_string(B) + " images for " + std::to_string(groups_.size()) + " groups");
    auto f = act.reshape({B, act.size(1), -1});                    // [B, C, positions]
    auto gram = torch::bmm(f, f.transpose(1, 2)).reshape({B, -1});  // [B, C x C]
    gram = gram / gram.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-10);
    auto same = torch::tensor(groups_, torch::kLong).to(act.device());
    auto mask = (same.view({-1, 1}) == same.view({1, -1})).to(act.scalar_type());
    mask.fill_diagonal_(0);
    auto others = mask.sum(1).clamp_min(1);
    return -(gram.matmul(gram.t()) * mask).sum(1) / others;
  }
  std::vector<int> layers() const override { return {layer_.index}; }
  torch::Tensor evaluate_outputs(const LayerOutputs& o) const override { return evaluate(o.of.at(layer_.index)); }
  std::optional<OutputPosition> position() const override { return std::nullopt; }
  ObjectivePtr moved(OutputPosition) const override { return std::make_shared<DiversityObjective>(*this); }
  std::string description() const override { return layer_.alias + " diversity"; }

 private:
  LayerInfo layer_;
  std::vector<int64_t> groups_;
};

class SumObjective : public Objective {
 public:
  explicit SumObjective(std::vector<std::pair<double, ObjectivePtr>> terms) : terms_(std::move(terms)) {}
  torch::Tensor evaluate(const torch::Tensor& act) const override {
    torch::Tensor total;
    for (const auto& [w, o] : terms_) {
      auto v = w == 1.0 ? o->evaluate(act) : o->evaluate(act) * w;
      total = total.defined() ? total + v : v;
    }
    return total;
  }
  std::vector<int> layers() const override {
    std::vector<int> v;
    for (const auto& t : terms_)
      for (int i : t.second->layers())
        if (std::find(v.begin(), v.end(), i) == v.end()) v.push_back(i);
    return v;
  }
  torch::Tensor evaluate_outputs(const LayerOutputs& o) const override {
    torch::Tensor total;
    for (const auto& [w, t] : terms_) {
      auto v = w == 1.0 ? t->evaluate_outputs(o) : t->evaluate_outputs(o) * w;
      total = total.defined() ? total + v : v;
    }
    return total;
  }
  std::optional<OutputPosition> position() const override {
    std::optional<OutputPosition> p;
    for (const auto& t : terms_) {
      auto q = t.second->position();
      if (!q || (p && !(*p == *q))) return std::nullopt;
      p = q;
    }
    return p;
  }
  ObjectivePtr moved(OutputPosition p) const override {
    auto terms = terms_;
    for (auto& t : terms) t.second = t.second->moved(p);
    return std::make_shared<SumObjective>(std::move(terms));
  }
  std::string description() const override {
    std::string d;
    for (const auto& [w, o] : terms_) {
      const std::string factor = w == 1.0 ? "" : w == -1.0 ? "-" : format_number(w) + " x ";
      d += (d.empty() ? factor : (w < 0 ? " - " + factor.substr(w == -1.0 ? 1 : 0) : " + " + factor)) + o->description();
    }
    return d;
  }
  const std::vector<std::pair<double, ObjectivePtr>>& terms() const { return terms_; }

 private:
  std::vector<std::pair<double, ObjectivePtr>> terms_;
};

std::vector<std::pair<double, ObjectivePtr>> terms_of(const ObjectivePtr& a, double w) {
  if (const auto* s = dynamic_cast<const SumObjective*>(a.get())) {
    auto t = s->terms();
    for (auto& x : t) x.first *= w;
    return t;
  }
  return {{w, a}};
}

}  // namespace

ObjectivePtr direction_objective(const Model& model, const LayerInfo& layer, std::vector<double> weights,
                                 std::optional<OutputPosition> at, bool channel_mean) {
  if (static_cast<int64_t>(weights.size()) != layer.units)
    throw Error("direction", "has " + std::to_string(weights.size()) + " weights; " + layer.alias + " has " +
                                 std::to_string(layer.units) + " channels");
  if (at && layer.spatial() && (at->y < 0 || at->y >= layer.shape[1] || at->x < 0 || at->x >= layer.shape[2]))
    throw Error("position", "(" + std::to_string(at->y) + ", " + std::to_string(at->x) + ") is outside " + layer.alias +
                                "'s " + std::to_string(layer.shape[1]) + " x " + std::to_string(layer.shape[2]) + " output");
  auto w = torch::tensor(weights, torch::kDouble).to(torch::kFloat).to(model.device());
  return std::make_shared<DirectionObjective>(layer, w, at, channel_mean);
}

ObjectivePtr diversity_objective(const LayerInfo& layer, std::vector<int64_t> groups) {
  return std::make_shared<DiversityObjective>(layer, std::move(groups));
}

const LayerInfo& diversity_layer(const Model& model, const LayerInfo& mapped) {
  auto positions = [](const LayerInfo& L) { return L.spatial() ? L.shape[1] * L.shape[2] : 0; };
  if (positions(mapped) >= 16) return mapped;
  for (int i = mapped.index - 1; i >= 0; --i)
    if (positions(model.layers()[static_cast<size_t>(i)]) >= 16) return model.layers()[static_cast<size_t>(i)];
  return mapped;
}

ObjectivePtr make_objective(const ObjectiveSpec& spec, const Model& model, const LayerInfo& layer,
                            const std::vector<int64_t>& units) {
  const std::string bad = check_objective(spec, layer.units, layer.spatial() ? layer.shape[1] : 0, layer.spatial() ? layer.shape[2] : 0);
  if (!bad.empty()) throw Error("objective", spec.canonical() + ": " + bad + " (" + layer.alias + ")");
  ObjectivePtr sum;
  for (const auto& t : spec.terms) {
    using K = ObjectiveTerm::Kind;
    ObjectivePtr o;
    const std::optional<OutputPosition> at = t.at ? std::optional<OutputPosition>(OutputPosition{t.y, t.x}) : std::nullopt;
    if (t.kind == K::Unit || t.kind == K::ChannelMean) {
      UnitObjective u(model, layer, t.channel < 0 ? units : std::vector<int64_t>(units.size(), t.channel),
                      t.kind == K::Unit ? ObjectiveKind::CentreUnit : ObjectiveKind::ChannelMean);
      o = std::make_shared<UnitObjective>(at && layer.spatial() ? u.at(at->y, at->x) : u);
    } else {
      o = direction_objective(model, layer, t.weights, at, t.kind == K::DirectionMean);
    }
    if (spec.terms.size() == 1 && t.weight == 1.0) return o;
    o = t.weight * o;
    sum = sum ? sum + o : o;
  }
  return sum;
}

ObjectivePtr operator+(const ObjectivePtr& a, const ObjectivePtr& b) {
  auto t = terms_of(a, 1.0);
  for (auto& x : terms_of(b, 1.0)) t.push_back(x);
  return std::make_shared<SumObjective>(std::move(t));
}

ObjectivePtr operator*(double w, const ObjectivePtr& a) { return std::make_shared<SumObjective>(terms_of(a, w)); }

ObjectivePtr operator-(const ObjectivePtr& a) { return -1.0 * a; }

ObjectivePtr operator-(const ObjectivePtr& a, const ObjectivePtr& b) { return a + (-1.0 * b); }

}  // namespace vizsweep::kernels
