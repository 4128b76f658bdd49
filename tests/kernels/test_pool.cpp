// VGG's max pooling (kernels/pool.h through max_pool2x2 in model.h) against LibTorch's
// max_pool2d: the same values and the same gradient, bit for bit, on data full of ties, signed
// zeros, infinities and NaNs (where a choice could differ), at odd sizes, on one thread and
// on two; and a model's pooling stages compute exactly what max_pool2d computes.
#include <gtest/gtest.h>

#include <torch/torch.h>
#include <ATen/Parallel.h>

#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/model.h"

using namespace vizsweep::kernels;

namespace {

// Values from a set of 5 (so most windows hold ties), with -0.0 beside +0.0, and a few
// -inf, +inf and NaN entries.
torch::Tensor hard_input(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto x = torch::randint(-2, 3, shape, gen, torch::kFloat);
  auto u = torch::rand(shape, gen);
  x = torch::where(x == 0 & u < 0.5, torch::full_like(x, -0.0), x);
  x = torch::where(u > 0.97, torch::full_like(x, std::numeric_limits<float>::quiet_NaN()), x);
  x = torch::where(u < 0.02, torch::full_like(x, -std::numeric_limits<float>::infinity()), x);
  x = torch::where(u > 0.955 & u < 0.96, torch::full_like(x, std::numeric_limits<float>::infinity()), x);
  return x;
}

// Bit patterns: NaN equals NaN, and -0.0 differs from +0.0.
void expect_same_bits(const torch::Tensor& got, const torch::Tensor& want, const char* what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(torch::equal(got.contiguous().view(torch::kInt), want.contiguous().view(torch::kInt))) << what;
}

void expect_as_libtorch(const torch::Tensor& x0, uint64_t seed) {
  auto mine = x0.clone().requires_grad_(true), ref = x0.clone().requires_grad_(true);
  auto y = max_pool2x2(mine);
  auto y_ref = torch::max_pool2d(ref, {2, 2}, {2, 2});
  expect_same_bits(y, y_ref, "values");
  // An upstream gradient with signed zeros of its own.
  auto gen = at::detail::createCPUGenerator(seed + 1);
  auto g = torch::randint(-3, 4, y.sizes(), gen, torch::kFloat);
  g = torch::where(g == 0 & torch::rand(y.sizes(), gen) < 0.5, torch::full_like(g, -0.0), g);
  auto grad = torch::autograd::grad({y}, {mine}, {g})[0];
  auto grad_ref = torch::autograd::grad({y_ref}, {ref}, {g})[0];
  expect_same_bits(grad, grad_ref, "gradient");
}

}  // namespace

TEST(Pool, ValuesAndGradientAreLibTorchsBitForBit) {
  const std::vector<std::vector<int64_t>> shapes = {{2, 3, 8, 8},   {2, 5, 7, 9},  {1, 2, 2, 2},
                                                    {3, 4, 15, 16}, {1, 1, 2, 33}, {4, 64, 32, 32}};
  const int threads = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    uint64_t seed = 10;
    for (const auto& s : shapes) {
      SCOPED_TRACE(::testing::Message() << "threads " << t << " shape [" << s[0] << ", " << s[1] << ", " << s[2]
                                        << ", " << s[3] << "]");
      expect_as_libtorch(hard_input(s, seed), seed);
      // Continuous data: no ties, the ordinary case.
      expect_as_libtorch(torch::randn(s, at::detail::createCPUGenerator(seed + 7)), seed + 2);
      seed += 3;
    }
  }
  at::set_num_threads(threads);
}

TEST(Pool, RefusesWhatItDoesNotCompute) {
  EXPECT_THROW(max_pool2x2(torch::zeros({2, 3, 8})), std::invalid_argument);
  EXPECT_THROW(max_pool2x2(torch::zeros({2, 3, 1, 8})), std::invalid_argument);
  EXPECT_THROW(max_pool2x2(torch::zeros({2, 3, 8, 8}, torch::kDouble)), std::invalid_argument);
  EXPECT_THROW(max_pool2x2(torch::zeros({2, 3, 8, 8}).transpose(2, 3)), std::invalid_argument);
}

TEST(Pool, ModelStagesPoolExactly) {
  // VGG11 at a sixteenth of the width, 32 px: five pools, sides 32 down to 2 (the first three
  // through max_pool2x2, the last two, with rows under 8, through LibTorch's).
  VggOptions o;
  o.arch = "vgg11";
  o.width = 1.0 / 16;
  o.fc_width = 32;
  o.pool = 1;
  o.input_size = 32;
  o.num_classes = 10;
  Model m = Model::builtin(o);
  auto x = torch::rand({3, 3, 32, 32}, at::detail::createCPUGenerator(5));
  torch::NoGradGuard ng;
  auto outs = m.forward_all(x);
  int pools = 0;
  for (const auto& L : m.layers()) {
    if (L.kind != LayerKind::MaxPool) continue;
    ++pools;
    expect_same_bits(outs[static_cast<size_t>(L.index)], torch::max_pool2d(outs[static_cast<size_t>(L.index) - 1], {2, 2}, {2, 2}),
                     L.alias.c_str());
  }
  EXPECT_EQ(pools, 5);
}
