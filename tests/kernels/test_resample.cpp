// The transforms' resampling (kernels/resample.h) against LibTorch's grid_sample, values and
// gradients; and its promises that a band of input rows and a window of outputs give the
// whole image's values and gradient bit for bit (what keeps the receptive-field crop exact).
#include <gtest/gtest.h>

#include <torch/torch.h>
#include <ATen/Parallel.h>

#include <array>
#include <cmath>
#include <vector>

#include "kernels/actmax.h"
#include "kernels/resample.h"

using namespace vizsweep::kernels;

namespace {

ParallelFor serial() {
  return [](int64_t n, const std::function<void(int64_t, int64_t)>& fn) { fn(0, n); };
}

// Per image: a scale in [0.8, 1.2], an angle up to 20 degrees either way and a shift of up to
// 5 pixels, image 0 shifted far enough that part of its window samples off the image.
std::vector<AffineMap> random_maps(int64_t B, int64_t S, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto u = torch::rand({B, 4}, gen, torch::kDouble);
  std::vector<AffineMap> maps;
  for (int64_t b = 0; b < B; ++b) {
    const double factor = 0.8 + 0.4 * u[b][0].item<double>(), radians = (u[b][1].item<double>() - 0.5) * 0.7;
    const int64_t dy = b == 0 ? S / 3 : static_cast<int64_t>(std::lround((u[b][2].item<double>() - 0.5) * 10));
    const int64_t dx = b == 0 ? -S / 4 : static_cast<int64_t>(std::lround((u[b][3].item<double>() - 0.5) * 10));
    maps.push_back(AffineMap::of(factor, radians, dy, dx, S));
  }
  return maps;
}

// grid_sample's resampling of the window [y0, y1) x [x0, x1) at the maps' positions.
torch::Tensor grid_of(const std::vector<AffineMap>& maps, int64_t S, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  auto grid = torch::empty({static_cast<int64_t>(maps.size()), y1 - y0, x1 - x0, 2});
  float* g = grid.data_ptr<float>();
  for (const auto& m : maps)
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t x = x0; x < x1; ++x, g += 2) m.at(y, x, S, g[0], g[1]);
  return grid;
}

torch::Tensor resampled(const AffineResample& rs, const torch::Tensor& band, int64_t row0, float fill, const ParallelFor& pf) {
  auto out = torch::empty({rs.batch(), band.size(1), rs.height(), rs.width()});
  auto in = band.contiguous();
  rs.forward(in.data_ptr<float>(), band.size(1), row0, band.size(2), fill, out.data_ptr<float>(), pf);
  return out;
}

torch::Tensor gradient(const AffineResample& rs, const torch::Tensor& grad_out, int64_t row0, int64_t nrows,
                       const ParallelFor& pf) {
  auto g = grad_out.contiguous();
  auto grad = torch::empty({rs.batch(), g.size(1), nrows, rs.side()});
  rs.backward(g.data_ptr<float>(), g.size(1), row0, nrows, grad.data_ptr<float>(), pf);
  return grad;
}

}  // namespace

TEST(Resample, MatchesGridSampleValuesAndGradients) {
  // The same bilinear interpolation as grid_sample (zero padding around x - fill, plus fill)
  // at the same float positions; grid_sample's vectorized kernel forms its weights and sums
  // in other operations and orders, so values agree to float rounding of a few products
  // (measured here up to 7.5e-7 on pixels in [0, 1]; bound 4e-6) and gradients to rounding
  // of the sums over the outputs that sample a pixel (measured up to 8.8e-7 of the largest
  // entry; bound 1e-5). A wrong tap or weight moves a value by 1e-2 or more.
  namespace F = torch::nn::functional;
  const auto opts = F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false);
  for (int64_t S : {32, 28, 21}) {
    for (int64_t C : {1, 3}) {
      const int64_t B = 3;
      const float fill = 0.3f;
      auto gen = at::detail::createCPUGenerator(S * 10 + C);
      auto x = torch::rand({B, C, S, S}, gen);
      auto maps = random_maps(B, S, 7 + S);
      AffineResample rs(maps, S, 0, S, 0, S);
      auto ref_in = x.clone().requires_grad_(true);
      auto ref = F::grid_sample(ref_in - fill, grid_of(maps, S, 0, S, 0, S), opts) + fill;
      auto out = resampled(rs, x, 0, fill, serial());
      EXPECT_LT((out - ref).abs().max().item<double>(), 4e-6) << "S " << S << " C " << C;
      auto go = torch::randn({B, C, S, S}, gen);
      auto ref_grad = torch::autograd::grad({ref}, {ref_in}, {go})[0];
      auto grad = gradient(rs, go, 0, S, serial());
      EXPECT_LT((grad - ref_grad).abs().max().item<double>(), 1e-5 * ref_grad.abs().max().item<double>()) << "S " << S;
      // Image 0's shift takes part of its window off the image: those outputs are the fill.
      EXPECT_GT((out[0] == fill).sum().item<int64_t>(), 0);
    }
  }
}

TEST(Resample, ABandOfRowsAndAWindowGiveTheWholeImagesBits) {
  const int64_t S = 40, B = 4, C = 3;
  auto gen = at::detail::createCPUGenerator(3);
  auto x = torch::rand({B, C, S, S}, gen);
  // Scaled, turned and shifted a little: the window's rows read stay inside the image.
  const std::vector<AffineMap> maps = {AffineMap::of(0.9, 0.15, -2, 3, S), AffineMap::of(1.1, -0.1, 1, 0, S),
                                       AffineMap::of(1.05, 0.05, 3, -2, S), AffineMap::of(0.95, -0.17, 0, 1, S)};
  const float fill = 0.5f;
  // The whole image's outputs and the gradient of a loss that reads the window alone, the
  // images split between two threads (6,400 outputs: AffineResample::split), the window's
  // 484 on one.
  AffineResample whole;
  whole.assign(maps, S, 0, S, 0, S, {}, intra_op_parallel());
  const int64_t y0 = 13, y1 = 24, x0 = 9, x1 = 20;
  AffineResample window(maps, S, y0, y1, x0, x1);
  auto go = torch::randn({B, C, y1 - y0, x1 - x0}, gen);
  auto go_whole = torch::zeros({B, C, S, S});
  go_whole.slice(2, y0, y1).slice(3, x0, x1).copy_(go);
  auto out_whole = resampled(whole, x, 0, fill, intra_op_parallel());
  auto grad_whole = gradient(whole, go_whole, 0, S, intra_op_parallel());
  // The window reads a band of rows: from a band just covering it, its values and gradient
  // are the whole image's, bit for bit, and nothing outside the band has a gradient.
  const auto [r0, r1] = window.rows();
  ASSERT_GE(r0, 3);
  ASSERT_LT(r1, S);
  EXPECT_LT(r1 - r0, S) << "a window of 11 rows reads fewer than all 40 rows";
  auto band = x.slice(2, r0, r1);
  auto out = resampled(window, band, r0, fill, serial());
  EXPECT_TRUE(torch::equal(out, out_whole.slice(2, y0, y1).slice(3, x0, x1)));
  auto grad = gradient(window, go, r0, r1 - r0, serial());
  EXPECT_TRUE(torch::equal(grad, grad_whole.slice(2, r0, r1)));
  EXPECT_EQ(grad_whole.slice(2, 0, r0).abs().max().item<double>(), 0.0);
  EXPECT_EQ(grad_whole.slice(2, r1, S).abs().max().item<double>(), 0.0);
  // A wider band changes nothing.
  auto wide = x.slice(2, r0 - 3, std::min(S, r1 + 2));
  EXPECT_TRUE(torch::equal(resampled(window, wide, r0 - 3, fill, intra_op_parallel()), out));
  EXPECT_TRUE(torch::equal(gradient(window, go, r0 - 3, wide.size(2), intra_op_parallel()).slice(2, 3, 3 + r1 - r0), grad));
  // A band that misses a row the window reads is refused.
  EXPECT_THROW(resampled(window, x.slice(2, r0 + 1, r1), r0 + 1, fill, serial()), std::invalid_argument);
}

TEST(Resample, MirroredImagesResampleAsTheirFlips) {
  // A mirror flag makes the resampling read its image flipped left to right: the values and
  // the gradient are those of resampling the flipped image (the gradient flipped back), bit
  // for bit, on the whole image and on a window from a band of rows, on one thread and two.
  // Image 0 samples partly off the image (the edge taps' path), image 2 is not mirrored.
  const int64_t S = 32, B = 4, C = 3;
  auto gen = at::detail::createCPUGenerator(11);
  auto x = torch::rand({B, C, S, S}, gen);
  const auto maps = random_maps(B, S, 5);
  const std::vector<uint8_t> mirrored = {1, 1, 0, 1};
  auto flipped = x.clone();
  for (int64_t b = 0; b < B; ++b)
    if (mirrored[b]) flipped[b].copy_(x[b].flip({2}));
  auto unflip = [&](torch::Tensor g) {
    for (int64_t b = 0; b < B; ++b)
      if (mirrored[b]) g[b].copy_(g[b].flip({2}));
    return g;
  };
  const float fill = 0.4f;
  for (const auto& w : std::vector<std::array<int64_t, 4>>{{0, S, 0, S}, {9, 23, 5, 19}}) {
    AffineResample plain(maps, S, w[0], w[1], w[2], w[3]), mirror;
    mirror.assign(maps, S, w[0], w[1], w[2], w[3], mirrored, intra_op_parallel());
    ASSERT_EQ(mirror.rows(), plain.rows()) << "a flip moves columns only";
    const auto [r0, r1] = plain.rows();
    auto go = torch::randn({B, C, w[1] - w[0], w[3] - w[2]}, gen);
    auto ref = resampled(plain, flipped.slice(2, r0, r1), r0, fill, serial());
    auto ref_grad = unflip(gradient(plain, go, r0, r1 - r0, serial()));
    for (const ParallelFor& pf : {serial(), intra_op_parallel()}) {
      EXPECT_TRUE(torch::equal(resampled(mirror, x.slice(2, r0, r1), r0, fill, pf), ref)) << "window from row " << w[0];
      EXPECT_TRUE(torch::equal(gradient(mirror, go, r0, r1 - r0, pf), ref_grad)) << "window from row " << w[0];
    }
    EXPECT_FALSE(torch::equal(resampled(plain, x.slice(2, r0, r1), r0, fill, serial()), ref)) << "the flags matter";
  }
  EXPECT_THROW(AffineResample(maps, S, 0, S, 0, S, {1, 0}), std::invalid_argument);
}

TEST(Resample, RowsReadFollowTheMaps) {
  // The identity map reads the window's rows and the one below (its taps of weight 0; a band
  // must hold every tap it reads); a shift of d rows moves them by d, and
  // rows shifted off the image are not read.
  const int64_t S = 32;
  AffineResample same({AffineMap::of(1.0, 0.0, 0, 0, S)}, S, 10, 15, 4, 20);
  EXPECT_EQ(same.rows(), (std::pair<int64_t, int64_t>{10, 16}));  // the bottom taps (weight 0) included
  AffineResample down({AffineMap::of(1.0, 0.0, 3, 0, S)}, S, 10, 15, 4, 20);  // output y samples y - 3
  EXPECT_EQ(down.rows(), (std::pair<int64_t, int64_t>{7, 13}));
  AffineResample off({AffineMap::of(1.0, 0.0, -40, 0, S)}, S, 10, 15, 4, 20);
  EXPECT_EQ(off.rows().first, off.rows().second);
  auto out = resampled(off, torch::zeros({1, 1, 0, S}), 0, 0.25f, serial());
  EXPECT_TRUE(torch::equal(out, torch::full({1, 1, 5, 16}, 0.25f)));
  EXPECT_THROW(AffineResample({AffineMap{}}, S, 10, 40, 0, 5), std::invalid_argument);
}
