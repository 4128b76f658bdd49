#include "kernels/actmax.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/fft.h>

#include <cmath>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "kernels/adam.h"
#include "kernels/error.h"
#include "kernels/metrics.h"
#include "kernels/resample.h"
#include "kernels/tune.h"

namespace vizsweep::kernels {

UnitObjective::UnitObjective(const Model& model, const LayerInfo& layer, std::vector<int64_t> units,
                             ObjectiveKind kind)
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

torch::Tensor UnitObjective::evaluate(const torch::Tensor& act) const {
  return per_unit(act).gather(1, index_).squeeze(1);
}

torch::Tensor UnitObjective::is_argmax(const torch::Tensor& act) const {
  return per_unit(act).argmax(1) == index_.squeeze(1);
}

std::string UnitObjective::description() const {
  std::string d = layer_.alias + " unit {unit}";
  if (!layer_.spatial()) return d;
  if (kind_ == ObjectiveKind::ChannelMean) return d + " channel mean";
  return d + " at centre (" + std::to_string(layer_.shape[1] / 2) + "," + std::to_string(layer_.shape[2] / 2) + ")";
}

std::vector<std::unique_ptr<Regularizer>> make_regularizers(const ActMaxSettings& s) {
  validate(s);
  std::vector<std::unique_ptr<Regularizer>> regs;
  if (s.decay > 0) regs.push_back(std::make_unique<L2Decay>(s.decay));
  if (s.blur_radius > 0) regs.push_back(std::make_unique<GaussianBlur>(s.blur_radius, s.blur_every));
  if (s.norm_pct > 0) regs.push_back(std::make_unique<ClipSmallNorm>(s.norm_pct));
  if (s.contrib_pct > 0) regs.push_back(std::make_unique<ClipSmallContribution>(s.contrib_pct));
  return regs;
}

namespace {

// Pixel-scale (0..255, mean removed) bounds of a valid image, [1, C, 1, 1] each.
struct PixelFrame {
  torch::Tensor mean255, lo, hi;
  explicit PixelFrame(const Model& model) {
    mean255 = torch::tensor(model.info().mean, torch::kFloat).view({1, -1, 1, 1}).mul(255.0).to(model.device());
    lo = -mean255;
    hi = 255.0 - mean255;
  }
  torch::Tensor to_image(const torch::Tensor& c) const { return (c + mean255) / 255.0; }
};

}  // namespace

namespace {

// Each image rolled by a random non-zero shift of up to max_shift pixels in y and x.
torch::Tensor shifted_copies(const torch::Tensor& images, int max_shift, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed ^ 0x9e3779b97f4a7c15ULL);
  const int64_t B = images.size(0);
  auto shifted = torch::empty_like(images);
  int64_t side = 2 * max_shift + 1;
  for (int64_t b = 0; b < B; ++b) {
    int64_t dy = 0, dx = 0;
    if (max_shift > 0) {
      while (dy == 0 && dx == 0) {
        auto r = torch::randint(0, side, {2}, gen, torch::kLong);
        dy = r[0].item<int64_t>() - max_shift;
        dx = r[1].item<int64_t>() - max_shift;
      }
    }
    shifted[b].copy_(torch::roll(images[b], {dy, dx}, {1, 2}));
  }
  return shifted;
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

}  // namespace

// The sampling grid of grid_sample (align_corners false) for the window of each image of a
// batch of side S, translated by shifts[b] = (dy, dx) pixels (when defined), then scaled about
// its centre by a factor in [1 - scale, 1 + scale] and rotated by an angle in [-rotate, rotate]
// degrees, drawn as draw[0][b] and draw[1][b] (uniform in [0, 1)): output position p samples
// the input at M^-1 p - d, d the shift in normalized units (2 per image side); affine_grid's
// mapping, computed for the window's positions alone in one pass on the host.
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

namespace {

// The columns the resampling computes for a window: [a, b), multiples of 16 around it.
std::pair<int64_t, int64_t> resampled_columns(const Model::InputWindow& win, int64_t S) {
  return {win.x0 / 16 * 16, std::min(S, (win.x1 + 15) / 16 * 16)};
}

// The window of each image of x [B, C, S, S] in [0, 1] translated by shifts[b] (when defined),
// then scaled and rotated about its centre (affine_sampling_grid), in one bilinear resampling
// of the whole image, the uncovered border `fill` (0.5: mid-grey), with grid_sample: the
// resampling off the CPU (on the CPU, resample.h's). Only the window's rows are computed, and
// of those the columns from a multiple of 16 to a multiple of 16 around the window's, which
// keeps a CPU gradient's sums in the whole image's order (grid_sample's CPU kernel walks its
// output in runs of one vector, at most 16 floats). grid: affine_sampling_grid's for the
// window's rows and resampled_columns, drawn for the step on the host.
torch::Tensor scaled_rotated(const torch::Tensor& x, const torch::Tensor& grid, double fill, const Model::InputWindow& win) {
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

}  // namespace

namespace {

// spec -> the images [B, C, S, S] (rows outside the rendered ones `fill`), or with `band`
// the rendered rows [a0, a1) alone, [B, C, a1 - a0, S].
struct SpectralRenderFunction : torch::autograd::Function<SpectralRenderFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& spec, const SpectralRender* render,
                               int64_t r0, int64_t r1, double fill, bool band) {
    auto in = spec.contiguous();
    const int64_t B = in.size(3), C = in.size(4), S = render->side();
    const auto [a, b] = render->rendered_rows(r0, r1);
    auto out = torch::empty({B, C, band ? b - a : S, S}, in.options());
    render->forward(in.data_ptr<float>(), B, C, r0, r1, static_cast<float>(fill), out.data_ptr<float>(), intra_op_parallel(), band);
    ctx->save_for_backward({out});
    ctx->saved_data["render"] = reinterpret_cast<int64_t>(render);
    ctx->saved_data["r0"] = r0;
    ctx->saved_data["r1"] = r1;
    ctx->saved_data["band"] = band;
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto* render = reinterpret_cast<const SpectralRender*>(ctx->saved_data["render"].toInt());
    auto out = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    const int64_t B = out.size(0), C = out.size(1), S = render->side();
    auto grad = torch::empty({2, S, S / 2 + 1, B, C}, out.options());
    render->backward(g.data_ptr<float>(), out.data_ptr<float>(), B, C, ctx->saved_data["r0"].toInt(),
                     ctx->saved_data["r1"].toInt(), grad.data_ptr<float>(), intra_op_parallel(), ctx->saved_data["band"].toBool());
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

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

torch::Tensor spectrum_planar(const torch::Tensor& spec) { return spec.permute({4, 2, 3, 0, 1}).contiguous(); }

torch::Tensor spectrum_interleaved(const torch::Tensor& planar) { return planar.permute({3, 4, 1, 2, 0}).contiguous(); }

namespace {

void check_spectrum(const SpectralRender& render, const torch::Tensor& spec) {
  if (!spec.device().is_cpu() || spec.scalar_type() != torch::kFloat || spec.dim() != 5 || spec.size(0) != 2 ||
      spec.size(1) != render.side() || spec.size(2) != render.side() / 2 + 1)
    throw std::invalid_argument("spectral_render: spec must be a float CPU tensor [2, S, S/2 + 1, B, C]");
}

}  // namespace

torch::Tensor spectral_render(const SpectralRender& render, const torch::Tensor& spec, int64_t r0, int64_t r1, double fill) {
  check_spectrum(render, spec);
  return SpectralRenderFunction::apply(spec, &render, r0, r1, fill, false);
}

torch::Tensor spectral_render_band(const SpectralRender& render, const torch::Tensor& spec, int64_t r0, int64_t r1) {
  check_spectrum(render, spec);
  return SpectralRenderFunction::apply(spec, &render, r0, r1, 0.0, true);
}

torch::Tensor colour_decorrelation() {
  // Lucid's color_correlation_svd_sqrt (lucid/optvis/param/color.py): the square root of the
  // ImageNet colour covariance from its SVD, rows R, G, B; divided by its largest column norm.
  auto m = torch::tensor({0.26f, 0.09f, 0.02f, 0.27f, 0.00f, -0.05f, 0.27f, -0.09f, 0.03f}).view({3, 3});
  return m / m.norm(2, {0}).max();
}

namespace {

// after / before where before > 0, else 0.
torch::Tensor robustness_ratio(const torch::Tensor& before, const torch::Tensor& after) {
  return torch::where(before > 0, after / before.clamp_min(1e-30), torch::zeros_like(before));
}

}  // namespace

torch::Tensor unit_robustness(const Model& model, const UnitObjective& objective, const torch::Tensor& images,
                              int max_shift, uint64_t seed) {
  const int index = objective.layer().index;
  torch::NoGradGuard ng;
  auto before = objective.evaluate(model.forward(images, index));
  return robustness_ratio(before, objective.evaluate(model.forward(shifted_copies(images, max_shift, seed), index)));
}

int fp32_finish_iterations(const Model& model, const ActMaxRequest& req) {
  if (!(req.fp32_finish >= 0 && req.fp32_finish <= 1))
    throw Error("fp32_finish", "must be in [0, 1] (the share of the last iterations run in fp32), got " + std::to_string(req.fp32_finish));
  if (!req.fp32_model || req.fp32_finish == 0) return 0;
  const Model& f = *req.fp32_model;
  if (f.precision() != Model::Precision::Fp32 || f.input_size() != model.input_size() || f.device() != model.device() ||
      f.layers().size() != model.layers().size() || f.info().in_channels != model.info().in_channels)
    throw Error("fp32_finish", "the finish model must be the same network in fp32, at the same input size, on the same device");
  return ComputeFormat{"fp32", false, req.fp32_finish}.finish_iterations(req.settings.iterations);
}

ActMaxResult activation_maximization(const Model& model, const ActMaxRequest& req) {
  const LayerInfo& layer = model.layer(req.layer);
  UnitObjective objective(model, layer, req.units, req.objective);
  const ActMaxSettings& s = req.settings;
  auto regs = make_regularizers(s);
  const int64_t B = static_cast<int64_t>(req.units.size());
  const int64_t C = model.info().in_channels, S = model.input_size();
  const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(model.device());
  PixelFrame frame(model);
  // The network each step runs on: `model`, and for the fp32 finish's last steps fp32_model.
  const int finish = fp32_finish_iterations(model, req);
  const Model* net = &model;

  auto gen = at::detail::createCPUGenerator(req.seed);
  torch::Tensor c = (torch::randn({B, C, S, S}, gen, torch::kFloat) * s.init_std).to(model.device());
  c = torch::max(torch::min(c, frame.hi), frame.lo);
  torch::Tensor trace = torch::empty({s.iterations, B}, opts);

  std::optional<Model::InputWindow> win;
  if (req.crop_to_receptive_field && req.objective == ObjectiveKind::CentreUnit && layer.spatial())
    win = model.input_window(layer.index, layer.shape[1] / 2, layer.shape[2] / 2);
  const UnitObjective crop_objective = win ? objective.at(win->oy, win->ox) : objective;
  torch::Tensor grad = win ? torch::zeros_like(c) : torch::Tensor();
  // Every transform (flip, pad, jitter, scaling, rotation) acts on the whole image, and the
  // receptive-field crop is then cut from what the model sees: the centre unit depends on
  // those input pixels only, so the crop stays exact under all of them, and the gradient flows
  // back through the transforms to every pixel a cropped pixel was resampled from.
  const bool affine = s.scale > 0 || s.rotate > 0;
  const std::optional<Model::InputWindow> loop_win = win;
  // Transform sizes in pixels of this input (fractions of it below 1).
  const int jit = transform_pixels(s.jitter, S), pad = transform_pixels(s.pad, S);

  // Transformation robustness: every step each image is seen translated by its own random
  // (dy, dx) in [-jitter, jitter], drawn from the task's seed, with wrap-around (the
  // translation robustness measures too). The objective of the translated image's crop is
  // that of the whole translated image, so the crop stays exact; the gradient flows back
  // through the translation to the untranslated image.
  auto jitter_gen = at::detail::createCPUGenerator(req.seed ^ 0x6a09e667f3bcc909ULL);
  // Scaling and rotation (after jitter, Lucid's order): per image and step, a factor in
  // [1 - scale, 1 + scale] and an angle in [-rotate, rotate] degrees, drawn from the task's seed.
  auto affine_gen = at::detail::createCPUGenerator(req.seed ^ 0xbb67ae8584caa73bULL);
  torch::Tensor affine_draw;  // [2, B]: the step's scale and angle draws, uniform in [0, 1)
  torch::Tensor shifts;
  // The part of what the model sees that the optimization needs: the crop when there is one.
  const Model::InputWindow view = loop_win.value_or(Model::InputWindow{0, S, 0, S});
  // The view's window of the framed images y [B, C, S + 2 pad, S + 2 pad], each rolled by its
  // own (dy, dx) with wrap-around (torch::roll's values): out[i][j] = y[(i - dy) mod H][(j - dx)
  // mod W], as two gathers for the whole batch that read only the window's rows and columns.
  auto jittered_window = [&](const torch::Tensor& y) {
    const int64_t H = y.size(2), W = y.size(3), Cx = y.size(1), h = view.y1 - view.y0, w = view.x1 - view.x0;
    auto iy = torch::empty({B, h}, torch::kLong), ix = torch::empty({B, w}, torch::kLong);
    const int64_t* d = shifts.data_ptr<int64_t>();  // drawn on the host: [B, 2], (dy, dx)
    int64_t* py = iy.data_ptr<int64_t>();
    int64_t* px = ix.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t k = 0; k < h; ++k) py[b * h + k] = ((view.y0 + pad + k - d[2 * b]) % H + H) % H;
      for (int64_t k = 0; k < w; ++k) px[b * w + k] = ((view.x0 + pad + k - d[2 * b + 1]) % W + W) % W;
    }
    auto rows = y.gather(2, iy.to(y.device()).view({B, 1, h, 1}).expand({B, Cx, h, W}));
    return rows.gather(3, ix.to(y.device()).view({B, 1, 1, w}).expand({B, Cx, h, w}));
  };
  // What the model sees of images x: pad (mid-grey frame), jitter, scale and rotation, in
  // Lucid's order, then the centre S x S of the frame; of that, the view's window only. Drawn
  // per step by draw_transforms. Flips (first, when on: each image mirrored left to right
  // with probability 1/2) come from their own stream of the task's seed.
  const bool transforms = jit > 0 || affine || pad > 0 || s.flip;
  const double fill = s.background;
  auto flip_gen = at::detail::createCPUGenerator(req.seed ^ 0x3c6ef372fe94f82bULL);
  torch::Tensor flips, grid;
  // Scale and rotation resample on the CPU with resample.h (the view's window of outputs,
  // from a band of input rows; the flips too, as mirrored reads), elsewhere with grid_sample
  // at `grid`.
  const bool own_resample = model.device().is_cpu();
  const bool flip_in_resample = affine && own_resample;
  std::optional<AffineResample> resampler;
  std::vector<uint8_t> mirrored;  // the step's flips, for the resampler
  // Each kind of draw (flips, shifts, scale and angle) comes from its own generator, so
  // drawing kDrawAhead steps of one kind at once gives the values one draw per step would,
  // for a fraction of the calls.
  constexpr int kDrawAhead = 64;
  torch::Tensor flip_block, shift_block, affine_block;  // steps [block0, block0 + kDrawAhead)
  int block0 = -1;
  auto draw_transforms = [&](int it) {
    if (block0 < 0 || it >= block0 + kDrawAhead) {
      block0 = it;
      const int64_t n = std::min(kDrawAhead, s.iterations - it);
      if (s.flip) flip_block = torch::rand({n, B}, flip_gen);
      if (jit > 0) shift_block = torch::randint(-jit, jit + 1, {n, B, 2}, jitter_gen, torch::kLong);
      if (affine) affine_block = torch::rand({n, 2, B}, affine_gen, torch::kFloat);
    }
    const int64_t i = it - block0;
    if (s.flip && flip_in_resample) {
      const float* u = flip_block[i].data_ptr<float>();
      mirrored.resize(B);
      for (int64_t b = 0; b < B; ++b) mirrored[b] = u[b] < 0.5f;
    } else if (s.flip) {
      flips = (flip_block[i] < 0.5).view({B, 1, 1, 1}).to(model.device());
    }
    if (jit > 0) shifts = shift_block[i];
    if (affine) {
      affine_draw = affine_block[i];
      const torch::Tensor shift = jit > 0 ? shifts : torch::Tensor();
      if (own_resample) {
        const auto maps = affine_maps(affine_draw, s.scale, s.rotate, shift, S);
        if (!resampler) resampler.emplace();
        resampler->assign(maps, S, view.y0, view.y1, view.x0, view.x1, mirrored, intra_op_parallel());
      } else {
        const auto [a, b] = resampled_columns(view, S);
        grid = affine_sampling_grid(affine_draw, s.scale, s.rotate, shift, S, view.y0, view.y1, a, b);
      }
    }
  };
  // The rows of the image that this step's view reads: those the resampling samples, those
  // jitter's shifts bring into the window (the rest of the frame is background), or the
  // view's own; flips move columns only.
  auto rows_read = [&]() -> std::pair<int64_t, int64_t> {
    if (affine) return resampler ? resampler->rows() : rows_sampled(grid, S);
    if (jit == 0) return {view.y0, view.y1};
    const int64_t H = S + 2 * pad, h = view.y1 - view.y0;
    const int64_t* d = shifts.data_ptr<int64_t>();
    int64_t lo = S, hi = 0;
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t k = 0; k < h; ++k) {
        const int64_t row = ((view.y0 + pad + k - d[2 * bb]) % H + H) % H - pad;
        if (row >= 0 && row < S) lo = std::min(lo, row), hi = std::max(hi, row + 1);
      }
    return {lo, std::max(lo, hi)};
  };
  // Under scaling or rotation, jitter's shift joins their resampling (one per step), and
  // the pad frame is the resampling's fill: what a shift uncovers is `fill`, not wrapped round.
  // x: the images, or on the CPU under scaling or rotation the band of their rows from row0.
  auto seen = [&](const torch::Tensor& x, int64_t row0) {
    namespace F = torch::nn::functional;
    auto y = s.flip && !flip_in_resample ? torch::where(flips, x.flip({3}), x) : x;
    if (affine) return resampler ? AffineResampleFunction::apply(y, &*resampler, row0, fill) : scaled_rotated(y, grid, fill, view);
    if (pad > 0 && jit > 0) y = F::pad(y - fill, F::PadFuncOptions({pad, pad, pad, pad})) + fill;
    if (jit > 0) return jittered_window(y);
    // Without a shift the frame is never seen: the centre is the image itself.
    return y.slice(2, view.y0, view.y1).slice(3, view.x0, view.x1);
  };
  // The objective of the view's window of what the model sees.
  auto evaluate_view = [&](const torch::Tensor& xw) {
    return loop_win ? crop_objective.evaluate(net->forward_crop(xw, layer.index)) : objective.evaluate(net->forward(xw, layer.index));
  };
  // One ascent step on the optimized variable v (the pixels, or the spectrum under fft) with
  // its gradient g; `dims` are v's dimensions but the batch.
  torch::Tensor adam_m, adam_v;  // Adam's running means of the gradient and its square
  auto step = [&](torch::Tensor& v, const torch::Tensor& g, int it, std::vector<int64_t> dims) {
    if (s.lr_policy == LrPolicy::Constant) {
      v.add_(g, s.lr);
    } else if (s.lr_policy == LrPolicy::Normalized) {
      v.add_(g / (g.abs().mean(dims, /*keepdim=*/true) + 1e-12), s.lr);
    } else if (s.lr_policy == LrPolicy::Adam) {
      if (!adam_m.defined()) adam_m = torch::zeros_like(v), adam_v = torch::zeros_like(v);
      if (v.device().is_cpu() && v.scalar_type() == torch::kFloat && v.is_contiguous()) {  // adam.h's one pass
        const auto gc = g.contiguous();
        adam_update(v.data_ptr<float>(), gc.data_ptr<float>(), adam_m.data_ptr<float>(), adam_v.data_ptr<float>(), v.numel(),
                    AdamStep{s.lr, s.adam_beta1, s.adam_beta2, it + 1}, intra_op_parallel());
        return;
      }
      const double t = it + 1;
      adam_m.mul_(s.adam_beta1).add_(g, 1.0 - s.adam_beta1);
      adam_v.mul_(s.adam_beta2).addcmul_(g, g, 1.0 - s.adam_beta2);
      auto m_hat = adam_m / (1.0 - std::pow(s.adam_beta1, t));
      auto v_hat = adam_v / (1.0 - std::pow(s.adam_beta2, t));
      v.add_(m_hat / (v_hat.sqrt() + 1e-8), s.lr);
    } else {
      auto g2 = g.pow(2).sum(dims, /*keepdim=*/true);
      auto lr = (s.progress_target / g2).clamp_max(s.lr);  // g2 == 0 gives inf, capped at lr
      v.add_(g * lr);
    }
  };

  if (s.param == ImageParam::Fft) {
    // Spectral parameterization (Olah et al. 2017, Lucid's fft_image): the optimized variable
    // is each image's 2-D real FFT, scaled by 1 / max(f, 1/S)^decay_power (f: the frequency
    // in cycles per pixel), so a step moves low frequencies more than high ones; the image is
    // sigmoid(irfft2(scaled spectrum, orthonormal) / 4), always a valid image in (0, 1).
    // The render is cheap against the network (an FFT per image per step) and exact under
    // the receptive-field crop: the crop is cut from the rendered image. Yosinski's
    // regularizers act on the rendered pixels, which are then mapped back to the spectrum
    // (sigmoid and FFT are invertible), so every combination works.
    auto fy = torch::fft::fftfreq(S, torch::TensorOptions().dtype(torch::kFloat)).unsqueeze(1);
    auto fx = torch::fft::rfftfreq(S, torch::TensorOptions().dtype(torch::kFloat)).unsqueeze(0);
    auto freqs = (fy * fy + fx * fx).sqrt();
    auto scale = (1.0 / freqs.clamp_min(1.0 / static_cast<double>(S)).pow(s.decay_power)).to(model.device());
    // Decorrelated colour (3 channels): the rendered channels are a fixed mix of the optimized
    // ones, so a step moves colours along the directions natural images vary in.
    const bool mix = s.decorrelate && C == 3;
    const torch::Tensor colour = mix ? colour_decorrelation().to(model.device()) : torch::Tensor();
    const torch::Tensor uncolour = mix ? torch::inverse(colour) : torch::Tensor();
    auto mixed = [](const torch::Tensor& m, const torch::Tensor& img) { return torch::einsum("ij,bjyx->biyx", {m, img}); };
    // A background other than 0.5 shifts the sigmoid: a zero spectrum renders to it.
    const double offset = std::log(s.background / (1.0 - s.background));
    // On the CPU, where the side factors into primes up to 13 (224 = 2^5 x 7, 32, 28, 96,
    // ...), the render is spectral.h's: only the rows this step reads are rendered, in the
    // same float operations as in the whole image's render, so a crop stays exact; the
    // orthonormal 1/S is folded into its scale. Elsewhere LibTorch's FFT renders the whole.
    std::optional<SpectralRender> own;
    if (model.device().is_cpu() && SpectralRender::supported(S)) {
      auto factor = (scale.to(torch::kCPU) / (4.0 * static_cast<double>(S))).contiguous();
      std::vector<float> colours;
      if (mix) {
        auto m = colour.to(torch::kCPU).contiguous();
        colours.assign(m.data_ptr<float>(), m.data_ptr<float>() + 9);
      }
      own.emplace(S, std::vector<float>(factor.data_ptr<float>(), factor.data_ptr<float>() + factor.numel()), colours,
                  static_cast<float>(offset));
    }
    // LibTorch's render: the scale and the 1/4 as one real factor on the spectrum's (re, im)
    // pairs, the same values as scaling the complex spectrum and dividing the image by 4 (a
    // power of two), in one operation fewer each way and without a complex scale every step.
    const torch::Tensor render_scale = own ? torch::Tensor() : (scale / 4.0).unsqueeze(-1);
    // The image, its rows [r0, r1) at least (the others are never read).
    auto render_rows = [&](const torch::Tensor& spec, int64_t r0, int64_t r1) {
      if (own) return spectral_render(*own, spec, r0, r1, fill);
      auto img = torch::fft::irfft2(torch::view_as_complex(spec * render_scale), c10::IntArrayRef{S, S}, {-2, -1}, "ortho");
      if (mix) img = mixed(colour, img);
      return torch::sigmoid(s.background == 0.5 ? img : img + offset);
    };
    auto render = [&](const torch::Tensor& spec) { return render_rows(spec, 0, S); };
    auto unrender = [&](const torch::Tensor& x) {
      auto y = x.clamp(1e-6, 1.0 - 1e-6);
      auto logit = y.log() - (-y).log1p();
      if (s.background != 0.5) logit = logit - offset;
      if (mix) logit = mixed(uncolour, logit);
      auto spectrum = torch::view_as_real(torch::fft::rfft2(logit * 4.0, c10::nullopt, {-2, -1}, "ortho") / scale);
      return own ? spectrum_planar(spectrum) : spectrum.contiguous();
    };
    // Lucid's start: the spectrum drawn from N(0, 0.01^2). Under the own render it is kept in
    // that render's layout (Adam acts element by element; the per-image reductions of the
    // other step policies run over dimensions {0, 1, 2, 4} there).
    torch::Tensor spec = (torch::randn({B, C, S, S / 2 + 1, 2}, gen, torch::kFloat) * 0.01).to(model.device());
    if (own) spec = spectrum_planar(spec);
    const std::vector<int64_t> spec_dims = own ? std::vector<int64_t>{0, 1, 2, 4} : std::vector<int64_t>{1, 2, 3, 4};
    for (int it = 0; it < s.iterations; ++it) {
      if (it == s.iterations - finish) net = req.fp32_model;
      draw_transforms(it);
      spec.requires_grad_(true);
      const auto [r0, r1] = rows_read();
      // Into resample.h's resampling, the band of rendered rows alone (from row0).
      const bool band = own && resampler;
      const int64_t row0 = band ? own->rendered_rows(r0, r1).first : 0;
      auto x = band ? spectral_render_band(*own, spec, r0, r1) : render_rows(spec, r0, r1);
      auto obj = evaluate_view(seen(x, row0));
      auto g = regs.empty() ? torch::autograd::grad({obj.sum()}, {spec}) : torch::autograd::grad({obj.sum()}, {spec, x});
      torch::NoGradGuard ng;
      trace[it].copy_(obj.detach());
      spec = spec.detach();
      step(spec, g[0], it, spec_dims);
      if (!regs.empty()) {  // on the rendered pixels, in the paper's pixel scale, then back
        auto px = render(spec) * 255.0 - frame.mean255;
        auto px_grad = g[1] / 255.0;
        if (band) {  // the band's gradient in the whole image (zero in the rows not read)
          auto whole = torch::zeros({B, C, S, S}, px_grad.options());
          whole.slice(2, row0, row0 + px_grad.size(2)).copy_(px_grad);
          px_grad = whole;
        }
        for (const auto& r : regs) r->apply(px, px_grad, it);
        px = torch::max(torch::min(px, frame.hi), frame.lo);
        spec = unrender(frame.to_image(px));
      }
    }
    torch::NoGradGuard ng;
    c = render(spec) * 255.0 - frame.mean255;
  }

  for (int it = 0; s.param == ImageParam::Pixel && it < s.iterations; ++it) {
    if (it == s.iterations - finish) net = req.fp32_model;
    if (transforms) {
      draw_transforms(it);
      c.requires_grad_(true);
      auto obj = evaluate_view(seen(frame.to_image(c), 0));
      grad = torch::autograd::grad({obj.sum()}, {c})[0];
      torch::NoGradGuard ng;
      trace[it].copy_(obj.detach());
    } else if (win) {
      auto cc = c.slice(2, win->y0, win->y1).slice(3, win->x0, win->x1).detach().requires_grad_(true);
      auto obj = crop_objective.evaluate(net->forward_crop(frame.to_image(cc), layer.index));
      auto g = torch::autograd::grad({obj.sum()}, {cc})[0];
      torch::NoGradGuard ng;
      grad.slice(2, win->y0, win->y1).slice(3, win->x0, win->x1).copy_(g);  // zero outside, as uncropped
      trace[it].copy_(obj.detach());
    } else {
      c.requires_grad_(true);
      auto obj = objective.evaluate(net->forward(frame.to_image(c), layer.index));
      grad = torch::autograd::grad({obj.sum()}, {c})[0];
      torch::NoGradGuard ng;
      trace[it].copy_(obj.detach());
    }
    torch::NoGradGuard ng;
    c = c.detach();
    step(c, grad, it, {1, 2, 3});
    for (const auto& r : regs) r->apply(c, grad, it);
    c = torch::max(torch::min(c, frame.hi), frame.lo);
  }

  ActMaxResult res;
  torch::NoGradGuard ng;
  res.images = frame.to_image(c).clamp(0.0, 1.0);
  // The final activation, the argmax flag and robustness read the unit's position only: on
  // the crop too (every unit at that position shares the receptive field). After an fp32
  // finish, in fp32.
  const Model& last = finish > 0 ? *req.fp32_model : model;
  auto final_forward = [&](const torch::Tensor& x) {
    return win ? last.forward_crop(x.slice(2, win->y0, win->y1).slice(3, win->x0, win->x1), layer.index)
               : last.forward(x, layer.index);
  };
  // One batched forward pass for the final images and, for robustness, their shifted copies
  // (none with a shift of 0: an image is its own unshifted copy, robustness 1).
  const bool shift = req.robustness_shift > 0;
  auto all = final_forward(shift ? torch::cat({res.images, shifted_copies(res.images, req.robustness_shift, req.seed)})
                                 : res.images);
  auto act = all.slice(0, 0, B);
  res.final_activation = crop_objective.evaluate(act);
  res.is_argmax = crop_objective.is_argmax(act);
  res.objective_trace = trace;
  // One check at the end keeps host-device synchronization out of the loop; NaN anywhere
  // in the loop propagates to the final image or the trace.
  if (!torch::isfinite(trace).all().item<bool>() || !torch::isfinite(res.final_activation).all().item<bool>() ||
      !torch::isfinite(c).all().item<bool>())
    throw NumericalError("actmax", "NaN or Inf during optimization of " + layer.alias + " (setting " + s.name +
                                        "; try a smaller lr)");
  res.hf_energy = high_frequency_energy(res.images);
  res.total_variation = total_variation(res.images);
  res.saturation = saturated_fraction(res.images);
  res.robustness = robustness_ratio(res.final_activation,
                                    shift ? crop_objective.evaluate(all.slice(0, B, 2 * B)) : res.final_activation);
  res.objective = objective.description();
  for (const auto& r : regs) res.regularizers += (res.regularizers.empty() ? "" : "+") + r->description();
  if (res.regularizers.empty()) res.regularizers = "none";
  return res;
}

}  // namespace vizsweep::kernels
