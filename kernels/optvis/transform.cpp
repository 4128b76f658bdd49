#include "kernels/optvis/transform.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

namespace vizsweep::kernels {

DrawBlocks::DrawBlocks(uint64_t seed, int iterations, Draw draw)
    : gen_(at::detail::createCPUGenerator(seed)), iterations_(iterations), draw_(std::move(draw)) {}

torch::Tensor DrawBlocks::at(int it) {
  if (block0_ < 0 || it >= block0_ + kDrawAhead) {
    block0_ = it;
    block_ = draw_(std::min(kDrawAhead, iterations_ - it), gen_);
  }
  return block_[it - block0_];
}

namespace {

// The streams' salts on the task's seed: each transform's draws are its own, whatever else is on.
constexpr uint64_t kJitterSalt = 0x6a09e667f3bcc909ULL, kAffineSalt = 0xbb67ae8584caa73bULL,
                   kFlipSalt = 0x3c6ef372fe94f82bULL;

// x [B, C, H, W] rolled per image by shifts [B, 2] (dy, dx) with wrap-around (torch::roll's
// values), rows [y0, y0 + h) and columns [x0, x0 + w) of the result alone, as two gathers:
// out[i][j] = x[(i - dy) mod H][(j - dx) mod W].
torch::Tensor rolled_window(const torch::Tensor& x, const torch::Tensor& shifts, int64_t y0, int64_t h, int64_t x0, int64_t w) {
  const int64_t B = x.size(0), Cx = x.size(1), H = x.size(2), W = x.size(3);
  auto iy = torch::empty({B, h}, torch::kLong), ix = torch::empty({B, w}, torch::kLong);
  const int64_t* d = shifts.data_ptr<int64_t>();  // on the host: [B, 2]
  int64_t* py = iy.data_ptr<int64_t>();
  int64_t* px = ix.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t k = 0; k < h; ++k) py[b * h + k] = ((y0 + k - d[2 * b]) % H + H) % H;
    for (int64_t k = 0; k < w; ++k) px[b * w + k] = ((x0 + k - d[2 * b + 1]) % W + W) % W;
  }
  auto rows = x.gather(2, iy.to(x.device()).view({B, 1, h, 1}).expand({B, Cx, h, W}));
  return rows.gather(3, ix.to(x.device()).view({B, 1, 1, w}).expand({B, Cx, h, w}));
}

torch::Tensor padded(const torch::Tensor& x, int64_t pad, double fill) {
  namespace F = torch::nn::functional;
  return F::pad(x - fill, F::PadFuncOptions({pad, pad, pad, pad})) + fill;
}

// Each image's affine map (resample.h) from the draws and shifts of affine_sampling_grid.
std::vector<AffineMap> affine_maps(const torch::Tensor& draw, double scale, double rotate, const torch::Tensor& shifts, int64_t S) {
  const int64_t B = draw.size(1);
  auto u = draw.to(torch::kCPU).contiguous();
  auto d = shifts.defined() ? shifts.to(torch::kCPU).to(torch::kLong).contiguous() : torch::Tensor();
  const float* up = u.data_ptr<float>();
  const int64_t* dp = d.defined() ? d.data_ptr<int64_t>() : nullptr;
  const double radians = rotate * 3.14159265358979323846 / 180.0;
  std::vector<AffineMap> maps;
  for (int64_t b = 0; b < B; ++b)
    maps.push_back(AffineMap::of(1.0 + scale * (2.0 * up[b] - 1.0), radians * (2.0 * up[B + b] - 1.0), dp ? dp[2 * b] : 0,
                                 dp ? dp[2 * b + 1] : 0, S));
  return maps;
}

// The columns the resampling computes for a window: [a, b), multiples of 16 around it.
std::pair<int64_t, int64_t> resampled_columns(const Model::InputWindow& win, int64_t S) {
  return {win.x0 / 16 * 16, std::min(S, (win.x1 + 15) / 16 * 16)};
}

// The window of each image of x [B, C, S, S] in [0, 1] resampled at `grid` (affine_sampling_grid's
// for the window's rows and resampled_columns), the uncovered border `fill`, with grid_sample:
// the resampling off the CPU (on the CPU, resample.h's). Only the window's rows are computed,
// and of those the columns from a multiple of 16 to a multiple of 16 around the window's, which
// keeps a CPU gradient's sums in the whole image's order (grid_sample's CPU kernel walks its
// output in runs of one vector, at most 16 floats).
torch::Tensor resampled(const torch::Tensor& x, const torch::Tensor& grid, double fill, const Model::InputWindow& win) {
  namespace F = torch::nn::functional;
  const int64_t a = resampled_columns(win, x.size(2)).first;
  auto opts = F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false);
  return (F::grid_sample(x - fill, grid.to(x.device()), opts) + fill).slice(3, win.x0 - a, win.x1 - a);
}

// The image rows [r0, r1) that bilinear sampling at `grid` (normalized, align_corners
// false) reads from an S-row image, with a row to spare each side for rounding.
std::pair<int64_t, int64_t> rows_sampled(const torch::Tensor& grid, int64_t S) {
  const auto [min, max] = torch::aminmax(grid.select(3, 1));
  const double lo = min.item<double>(), hi = max.item<double>();
  auto row = [&](double g) { return static_cast<int64_t>(std::floor(((g + 1.0) * S - 1.0) / 2.0)); };
  return {std::max<int64_t>(0, row(lo) - 1), std::min<int64_t>(S, row(hi) + 3)};
}

// resample.h's resampling: x [B, C, n, S], image rows [row0, row0 + n) -> the window [B, C, h, w].
struct AffineResampleFunction : torch::autograd::Function<AffineResampleFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const AffineResample* rs,
                               int64_t row0, double fill) {
    auto in = x.contiguous();
    const int64_t C = in.size(1), n = in.size(2);
    auto out = torch::empty({rs->batch(), C, rs->height(), rs->width()}, in.options());
    rs->forward(in.data_ptr<float>(), C, row0, n, static_cast<float>(fill), out.data_ptr<float>(), intra_op_parallel());
    ctx->saved_data["rs"] = reinterpret_cast<int64_t>(rs);
    ctx->saved_data["row0"] = row0;
    ctx->saved_data["n"] = n;
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto* rs = reinterpret_cast<const AffineResample*>(ctx->saved_data["rs"].toInt());
    auto g = grads[0].contiguous();
    const int64_t C = g.size(1), n = ctx->saved_data["n"].toInt(), S = rs->side();
    auto grad = torch::empty({rs->batch(), C, n, S}, g.options());
    rs->backward(g.data_ptr<float>(), C, ctx->saved_data["row0"].toInt(), n, grad.data_ptr<float>(), intra_op_parallel());
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor affine_sampling_grid(const torch::Tensor& draw, double scale, double rotate, const torch::Tensor& shifts,
                                   int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  const auto maps = affine_maps(draw, scale, rotate, shifts, S);
  auto grid = torch::empty({static_cast<int64_t>(maps.size()), y1 - y0, x1 - x0, 2}, torch::kFloat);
  float* g = grid.data_ptr<float>();
  for (const AffineMap& m : maps)
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t x = x0; x < x1; ++x, g += 2) m.at(y, x, S, g[0], g[1]);
  return grid;
}

// Each image mirrored left to right with probability 1/2.
class FlipTransform : public Transform {
 public:
  explicit FlipTransform(const TransformContext& c)
      : c_(c), draws_(c.seed ^ kFlipSalt, c.iterations, [B = c.batch](int64_t n, at::Generator& g) { return torch::rand({n, B}, g); }) {}
  std::string name() const override { return "flip"; }
  void draw(int it) override { u_ = draws_.at(it); }
  torch::Tensor mask() const { return (u_ < 0.5).view({c_.batch, 1, 1, 1}).to(c_.device); }
  std::vector<uint8_t> flags() const {
    const float* u = u_.data_ptr<float>();
    std::vector<uint8_t> m(static_cast<size_t>(c_.batch));
    for (int64_t b = 0; b < c_.batch; ++b) m[static_cast<size_t>(b)] = u[b] < 0.5f;
    return m;
  }
  torch::Tensor apply(const torch::Tensor& x, double) const override { return torch::where(mask(), x.flip({3}), x); }

 private:
  TransformContext c_;
  DrawBlocks draws_;
  torch::Tensor u_;  // [B] uniform
};

// The image framed by `pixels` of the background on every side.
class PadTransform : public Transform {
 public:
  explicit PadTransform(int64_t pixels) : pixels_(pixels) {}
  std::string name() const override { return "pad"; }
  void draw(int) override {}
  int64_t pixels() const { return pixels_; }
  torch::Tensor apply(const torch::Tensor& x, double fill) const override { return padded(x, pixels_, fill); }

 private:
  int64_t pixels_;
};

// Each image translated by its own (dy, dx) in [-pixels, pixels], with wrap-around.
class JitterTransform : public Transform {
 public:
  JitterTransform(const TransformContext& c, int64_t pixels)
      : pixels_(pixels), draws_(c.seed ^ kJitterSalt, c.iterations, [B = c.batch, pixels](int64_t n, at::Generator& g) {
          return torch::randint(-pixels, pixels + 1, {n, B, 2}, g, torch::kLong);
        }) {}
  std::string name() const override { return "jitter"; }
  void draw(int it) override { shifts_ = draws_.at(it); }
  int64_t pixels() const { return pixels_; }
  const torch::Tensor& shifts() const { return shifts_; }  // [B, 2] on the host
  torch::Tensor apply(const torch::Tensor& x, double) const override {
    return rolled_window(x, shifts_, 0, x.size(2), 0, x.size(3));
  }

 private:
  int64_t pixels_;
  DrawBlocks draws_;
  torch::Tensor shifts_;
};

// Scaling (factor in [1 - amount, 1 + amount]) or rotation (angle in [-amount, amount]
// degrees) about the image centre, the uncovered border `fill`. Both draw from one stream,
// [step][2][image] (row 0 the scale's, row 1 the angle's), so either alone or both together
// read the same values.
class AffineTransform : public Transform {
 public:
  enum What { Scale, Rotate };
  AffineTransform(const TransformContext& c, What what, double amount)
      : what_(what), amount_(amount), draws_(c.seed ^ kAffineSalt, c.iterations, [B = c.batch](int64_t n, at::Generator& g) {
          return torch::rand({n, 2, B}, g, torch::kFloat);
        }) {}
  std::string name() const override { return what_ == Scale ? "scale" : "rotate"; }
  void draw(int it) override { draw_ = draws_.at(it); }
  What what() const { return what_; }
  double amount() const { return amount_; }
  const torch::Tensor& draws() const { return draw_; }  // [2, B]
  torch::Tensor apply(const torch::Tensor& x, double fill) const override {
    const int64_t S = x.size(2);
    auto grid = affine_sampling_grid(draw_, what_ == Scale ? amount_ : 0.0, what_ == Rotate ? amount_ : 0.0, torch::Tensor(), S,
                                     0, S, 0, S);
    return resampled(x, grid, fill, Model::InputWindow{0, S, 0, S});
  }

 private:
  What what_;
  double amount_;
  DrawBlocks draws_;
  torch::Tensor draw_;
};

// The transforms of kernels/optvis/transforms/, one file each: CMake lists the folder.
#define VIZSWEEP_TECHNIQUE(NAME) TransformDeclaration transform_declaration_##NAME();
#include "kernels/optvis/transform_list.inc"
#undef VIZSWEEP_TECHNIQUE

const std::vector<TransformDeclaration>& transform_declarations() {
  static const std::vector<TransformDeclaration> table = [] {
    std::vector<TransformDeclaration> v{
      {"flip", "flip", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
         return s.flip ? std::make_unique<FlipTransform>(c) : nullptr;
       }},
      {"pad", "pad", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
         const int p = transform_pixels(s.pad, c.side);
         return p > 0 ? std::make_unique<PadTransform>(p) : nullptr;
       }},
      {"jitter", "jitter", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
         const int p = transform_pixels(s.jitter, c.side);
         return p > 0 ? std::make_unique<JitterTransform>(c, p) : nullptr;
       }},
      {"scale", "scale", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
         return s.scale > 0 ? std::make_unique<AffineTransform>(c, AffineTransform::Scale, s.scale) : nullptr;
       }},
      {"rotate", "rotate", [](const ActMaxSettings& s, const TransformContext& c) -> TransformPtr {
         return s.rotate > 0 ? std::make_unique<AffineTransform>(c, AffineTransform::Rotate, s.rotate) : nullptr;
       }},
    };
#define VIZSWEEP_TECHNIQUE(NAME) v.push_back(transform_declaration_##NAME());
#include "kernels/optvis/transform_list.inc"
#undef VIZSWEEP_TECHNIQUE
    return v;
  }();
  return table;
}

PerImagePointwise::PerImagePointwise(const TransformContext& c, double amount, uint64_t salt)
    : c_(c), amount_(amount), draws_(c.seed ^ salt, c.iterations, [B = c.batch](int64_t n, at::Generator& g) {
        return torch::rand({n, B}, g);
      }) {}

void PerImagePointwise::draw(int it) {
  value_ = ((draws_.at(it) * 2.0 - 1.0) * amount_).view({c_.batch, 1, 1, 1}).to(c_.device);
}

std::vector<TransformPtr> make_transforms(const ActMaxSettings& s, const TransformContext& context,
                                         const std::vector<std::string>& order) {
  const auto& all = transform_declarations();
  std::vector<const TransformDeclaration*> ordered;
  for (const auto& name : order) {
    auto it = std::find_if(all.begin(), all.end(), [&](const TransformDeclaration& d) { return d.name == name; });
    if (it == all.end()) throw Error("transform_order", "no transform '" + name + "'");
    if (std::find(ordered.begin(), ordered.end(), &*it) != ordered.end())
      throw Error("transform_order", "'" + name + "' given twice");
    ordered.push_back(&*it);
  }
  for (const auto& d : all)
    if (std::find(ordered.begin(), ordered.end(), &d) == ordered.end()) ordered.push_back(&d);
  std::vector<TransformPtr> v;
  for (const auto* d : ordered)
    if (auto t = d->make(s, context)) v.push_back(std::move(t));
  return v;
}

// The fused pass over the built-in spatial transforms (in Lucid's relative order): pad and
// jitter as gathers that read only the window's rows, or under scale or rotation one
// bilinear resampling (on the CPU resample.h's, which also applies the flips as mirrored
// reads and reads only a band of rows; elsewhere grid_sample over the window's rows).
struct Transforms::Fused {
  const FlipTransform* flip = nullptr;
  const PadTransform* pad = nullptr;
  const JitterTransform* jitter = nullptr;
  const AffineTransform *scale = nullptr, *rotate = nullptr;
  bool own_resample = false;       // scale or rotation on the CPU: resample.h's
  std::optional<AffineResample> resampler;
  torch::Tensor flips, grid;       // the step's flip mask (outside the resampling), grid_sample's grid
  bool affine() const { return scale || rotate; }
  bool flip_in_resample() const { return flip && affine() && own_resample; }
  int64_t jit() const { return jitter ? jitter->pixels() : 0; }
  int64_t pad_pixels() const { return pad ? pad->pixels() : 0; }
};

Transforms::Transforms(std::vector<TransformPtr> transforms, const TransformContext& context, Model::InputWindow view,
                       double fill)
    : all_(std::move(transforms)), context_(context), view_(view), fill_(fill) {
  // The fused pass takes the built-in spatial transforms in Lucid's relative order (scale and
  // rotation about the same centre commute), with pointwise transforms before or after them.
  auto f = std::make_unique<Fused>();
  int rank = -1;
  bool spatial_seen = false, spatial_done = false, fusable = true;
  for (const auto& t : all_) {
    if (t->kind() == Transform::Kind::Pointwise) {
      (spatial_seen ? after_ : before_).push_back(t.get());
      if (spatial_seen) spatial_done = true;
      continue;
    }
    int r = -1;
    if (auto* p = dynamic_cast<const FlipTransform*>(t.get())) f->flip = p, r = 0;
    else if (auto* p = dynamic_cast<const PadTransform*>(t.get())) f->pad = p, r = 1;
    else if (auto* p = dynamic_cast<const JitterTransform*>(t.get())) f->jitter = p, r = 2;
    else if (auto* p = dynamic_cast<const AffineTransform*>(t.get())) (p->what() == AffineTransform::Scale ? f->scale : f->rotate) = p, r = 3;
    if (r < 0 || r < rank || spatial_done) fusable = false;
    rank = std::max(rank, r);
    spatial_seen = true;
  }
  if (!fusable) {
    before_.clear(), after_.clear();
    return;
  }
  f->own_resample = context_.device.is_cpu();
  fused_ = std::move(f);
}

Transforms::~Transforms() = default;

void Transforms::draw(int it) {
  for (auto& t : all_) t->draw(it);
  if (!fused_) return;
  Fused& f = *fused_;
  if (f.flip && !f.flip_in_resample()) f.flips = f.flip->mask();
  if (!f.affine()) return;
  const torch::Tensor shift = f.jitter ? f.jitter->shifts() : torch::Tensor();
  const torch::Tensor& draw = (f.scale ? f.scale : f.rotate)->draws();
  const double scale = f.scale ? f.scale->amount() : 0.0, rotate = f.rotate ? f.rotate->amount() : 0.0;
  const int64_t S = context_.side;
  if (f.own_resample) {
    const auto maps = affine_maps(draw, scale, rotate, shift, S);
    if (!f.resampler) f.resampler.emplace();
    const std::vector<uint8_t> mirrored = f.flip_in_resample() ? f.flip->flags() : std::vector<uint8_t>{};
    f.resampler->assign(maps, S, view_.y0, view_.y1, view_.x0, view_.x1, mirrored, intra_op_parallel());
  } else {
    const auto [a, b] = resampled_columns(view_, S);
    f.grid = affine_sampling_grid(draw, scale, rotate, shift, S, view_.y0, view_.y1, a, b);
  }
}

std::pair<int64_t, int64_t> Transforms::rows_read() const {
  const int64_t S = context_.side;
  if (!fused_) return {0, S};  // each in turn on the whole image
  const Fused& f = *fused_;
  // Those the resampling samples, those jitter's shifts bring into the window (the rest of
  // the frame is background), or the view's own; flips move columns only.
  if (f.affine()) return f.resampler ? f.resampler->rows() : rows_sampled(f.grid, S);
  if (f.jit() == 0) return {view_.y0, view_.y1};
  const int64_t pad = f.pad_pixels(), H = S + 2 * pad, h = view_.y1 - view_.y0;
  const int64_t* d = f.jitter->shifts().data_ptr<int64_t>();
  int64_t lo = S, hi = 0;
  for (int64_t b = 0; b < context_.batch; ++b)
    for (int64_t k = 0; k < h; ++k) {
      const int64_t row = ((view_.y0 + pad + k - d[2 * b]) % H + H) % H - pad;
      if (row >= 0 && row < S) lo = std::min(lo, row), hi = std::max(hi, row + 1);
    }
  return {lo, std::max(lo, hi)};
}

bool Transforms::reads_band() const { return fused_ && fused_->affine() && fused_->own_resample; }

torch::Tensor Transforms::apply(const torch::Tensor& x, int64_t row0) const {
  const int64_t S = context_.side;
  if (!fused_) {  // each in turn on the whole images, then the centre S x S and the view
    torch::Tensor y = x;
    for (const auto& t : all_) y = t->apply(y, fill_);
    const int64_t top = (y.size(2) - S) / 2, left = (y.size(3) - S) / 2;
    return y.slice(2, top + view_.y0, top + view_.y1).slice(3, left + view_.x0, left + view_.x1);
  }
  const Fused& f = *fused_;
  torch::Tensor y = x;
  for (const Transform* t : before_) y = t->apply(y, fill_);
  if (f.flip && !f.flip_in_resample()) y = torch::where(f.flips, y.flip({3}), y);
  if (f.affine()) {
    // Jitter's shift joins the resampling, and the pad frame is its fill: what a shift
    // uncovers is `fill`, not wrapped round.
    y = f.resampler ? AffineResampleFunction::apply(y, &*f.resampler, row0, fill_) : resampled(y, f.grid, fill_, view_);
  } else if (f.jit() > 0) {
    const int64_t pad = f.pad_pixels();
    if (pad > 0) y = padded(y, pad, fill_);
    y = rolled_window(y, f.jitter->shifts(), view_.y0 + pad, view_.y1 - view_.y0, view_.x0 + pad, view_.x1 - view_.x0);
  } else {
    // Without a shift the frame is never seen: the centre is the image itself.
    y = y.slice(2, view_.y0, view_.y1).slice(3, view_.x0, view_.x1);
  }
  for (const Transform* t : after_) y = t->apply(y, fill_);
  return y;
}

std::string Transforms::description() const {
  std::string d;
  for (const auto& t : all_) d += (d.empty() ? "" : "+") + t->name();
  return d.empty() ? "none" : d;
}

}  // namespace vizsweep::kernels
