// Closed forms for the four regularizers and the image metrics on hand-made tensors.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/metrics.h"
#include "kernels/regularizers.h"

using namespace vizsweep::kernels;

TEST(Regularizers, DecayScalesExactly) {
  auto c = torch::randn({2, 3, 5, 5});
  auto want = c * (1.0 - 0.3);
  L2Decay(0.3).apply(c, torch::Tensor(), 0);
  EXPECT_TRUE(torch::equal(c, want));
  EXPECT_THROW(L2Decay(1.0), vizsweep::Error);
  EXPECT_THROW(L2Decay(-0.1), vizsweep::Error);
}

TEST(Regularizers, BlurOfADeltaIsTheGaussianKernel) {
  for (double radius : {0.5, 1.0, 2.0}) {
    const int64_t S = 21, mid = 10;
    auto c = torch::zeros({1, 2, S, S});
    c.index_put_({0, 0, mid, mid}, 1.0);
    GaussianBlur(radius, 4).apply(c, torch::Tensor(), 0);
    // Independent closed form: separable normalized Gaussian truncated at int(4r + 0.5).
    const int half = static_cast<int>(4 * radius + 0.5);
    std::vector<double> k(2 * half + 1);
    double sum = 0;
    for (int i = -half; i <= half; ++i) sum += k[i + half] = std::exp(-i * i / (2 * radius * radius));
    for (auto& v : k) v /= sum;
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        int dy = y - mid, dx = x - mid;
        double want = (std::abs(dy) <= half && std::abs(dx) <= half) ? k[dy + half] * k[dx + half] : 0.0;
        ASSERT_NEAR(c[0][0][y][x].item<double>(), want, 1e-7) << "radius " << radius << " at " << y << "," << x;
        ASSERT_EQ(c[0][1][y][x].item<double>(), 0.0);
      }
  }
}

TEST(Regularizers, BlurOnlyEveryKSteps) {
  auto c = torch::randn({1, 3, 8, 8});
  auto before = c.clone();
  GaussianBlur blur(1.0, 4);
  blur.apply(c, torch::Tensor(), 3);
  EXPECT_TRUE(torch::equal(c, before));
  blur.apply(c, torch::Tensor(), 8);
  EXPECT_FALSE(torch::equal(c, before));
  EXPECT_TRUE(torch::allclose(c, gaussian_blur(before, 1.0)));
}

TEST(Regularizers, BlurKeepsAConstantImage) {
  auto c = torch::full({1, 3, 9, 9}, 7.0);
  EXPECT_TRUE(torch::allclose(gaussian_blur(c, 1.5), c, 1e-6, 1e-6));
}

namespace {
// 16 pixels with distinct norms: pixel i has value (i+1) in channel 0 and sign-flipped
// pattern elsewhere, shuffled by a fixed permutation.
torch::Tensor distinct_pixels() {
  std::vector<int64_t> perm = {5, 12, 0, 9, 3, 15, 7, 1, 14, 10, 2, 8, 13, 4, 11, 6};
  auto c = torch::zeros({1, 3, 4, 4});
  for (int i = 0; i < 16; ++i) {
    int64_t p = perm[i];
    c.index_put_({0, 0, p / 4, p % 4}, static_cast<double>(i + 1));
    c.index_put_({0, 1, p / 4, p % 4}, -0.5 * (i + 1));
    c.index_put_({0, 2, p / 4, p % 4}, 0.25 * (i + 1));
  }
  return c;
}
}  // namespace

TEST(Regularizers, ClipSmallNormZeroesExactlyThePixelsUnderThePercentile) {
  for (double pct : {25.0, 50.0, 90.0}) {
    auto c = distinct_pixels();
    auto before = c.clone();
    ClipSmallNorm(pct).apply(c, torch::Tensor(), 0);
    auto norms = before.norm(2, {1});  // [1, 4, 4]
    const int k = static_cast<int>(std::floor(pct / 100 * 16));
    auto sorted = std::get<0>(norms.flatten().sort());
    double cut = sorted[k].item<double>();  // first kept
    int zeroed = 0;
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) {
        bool small = norms[0][y][x].item<double>() < cut;
        auto px = c.index({0, torch::indexing::Slice(), y, x});
        auto orig = before.index({0, torch::indexing::Slice(), y, x});
        if (small) {
          EXPECT_TRUE(torch::equal(px, torch::zeros_like(px)));
          ++zeroed;
        } else {
          EXPECT_TRUE(torch::equal(px, orig));
        }
      }
    EXPECT_EQ(zeroed, k) << "pct " << pct;
  }
}

TEST(Regularizers, ClipSmallContributionUsesAbsXTimesGradSummedOverChannels) {
  auto c = torch::ones({1, 2, 2, 2});
  auto g = torch::zeros({1, 2, 2, 2});
  // contributions: pixel (0,0): |1*4|+|1*-1| = 5; (0,1): 0.5+0.5 = 1; (1,0): 3; (1,1): |-2|+0 = 2
  g.index_put_({0, 0, 0, 0}, 4.0), g.index_put_({0, 1, 0, 0}, -1.0);
  g.index_put_({0, 0, 0, 1}, 0.5), g.index_put_({0, 1, 0, 1}, -0.5);
  g.index_put_({0, 0, 1, 0}, 3.0);
  g.index_put_({0, 0, 1, 1}, -2.0);
  ClipSmallContribution(50).apply(c, g, 0);  // zero the two smallest: (0,1) and (1,1)
  auto want = torch::ones({1, 2, 2, 2});
  want.index_put_({0, torch::indexing::Slice(), 0, 1}, 0.0);
  want.index_put_({0, torch::indexing::Slice(), 1, 1}, 0.0);
  EXPECT_TRUE(torch::equal(c, want)) << c;
  EXPECT_THROW(ClipSmallContribution(101), vizsweep::Error);
}

namespace {
torch::Tensor checkerboard(int64_t C, int64_t S) {
  auto i = torch::arange(S).view({S, 1}), j = torch::arange(S).view({1, S});
  return ((i + j) % 2).to(torch::kFloat).expand({1, C, S, S}).contiguous();
}
}  // namespace

TEST(Metrics, ConstantImage) {
  auto x = torch::full({2, 3, 16, 16}, 0.5);
  EXPECT_TRUE(torch::equal(high_frequency_energy(x), torch::zeros({2})));
  EXPECT_TRUE(torch::equal(total_variation(x), torch::zeros({2})));
  EXPECT_TRUE(torch::equal(saturated_fraction(x), torch::zeros({2})));
}

TEST(Metrics, Checkerboard) {
  auto x = checkerboard(3, 16);
  EXPECT_NEAR(high_frequency_energy(x).item<double>(), 1.0, 1e-9);
  EXPECT_NEAR(total_variation(x).item<double>(), 2.0, 1e-9);
  EXPECT_NEAR(saturated_fraction(x).item<double>(), 1.0, 1e-9);
}

TEST(Metrics, LowFrequencyStripesAndHalfSaturation) {
  // cos with period 8 px (0.125 cycles/px, under 0.25): all energy is low-frequency.
  auto col = torch::arange(16).to(torch::kDouble);
  auto stripes = (0.5 + 0.25 * torch::cos(2 * M_PI * col / 8.0)).to(torch::kFloat).view({1, 1, 1, 16}).expand({1, 1, 16, 16});
  EXPECT_NEAR(high_frequency_energy(stripes).item<double>(), 0.0, 1e-9);
  // Period 2.5 px (0.4 cycles/px): all high-frequency.
  auto fast = (0.5 + 0.25 * torch::cos(2 * M_PI * col * 0.375)).to(torch::kFloat).view({1, 1, 1, 16}).expand({1, 1, 16, 16});
  EXPECT_NEAR(high_frequency_energy(fast).item<double>(), 1.0, 1e-9);
  // Left half 0, right half 0.5: half the values saturated; TV = one step of 0.5 per row.
  auto half = torch::zeros({1, 1, 4, 4});
  half.index_put_({0, 0, torch::indexing::Slice(), torch::indexing::Slice(2, 4)}, 0.5);
  EXPECT_NEAR(saturated_fraction(half).item<double>(), 0.5, 1e-9);
  EXPECT_NEAR(total_variation(half).item<double>(), 0.5 / 3.0, 1e-7);  // horizontal: 4 of 12 pairs differ by 0.5
}

TEST(Regularizers, ConstructorsCheckTheDeclaredRanges) {
  // One declaration per hyperparameter (kernels/settings.cpp): the percentile clips accept
  // [0, 100) as the sweep files and the schema do, the decay [0, 1).
  auto reason = [](auto make) -> std::string {
    try {
      make();
    } catch (const vizsweep::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(reason([] { ClipSmallNorm(100); }), "norm_pct: must be in [0, 100), got 100");
  EXPECT_EQ(reason([] { ClipSmallContribution(-1); }), "contrib_pct: must be in [0, 100), got -1");
  EXPECT_EQ(reason([] { L2Decay(1); }), "decay: must be in [0, 1), got 1");
  EXPECT_EQ(reason([] { ClipSmallNorm(99.9); }), "");
}
