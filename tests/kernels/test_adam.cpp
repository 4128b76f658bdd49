// adam.h's one-pass update against Adam written as LibTorch operations (actmax.cpp's path off
// the CPU), and the same bits whichever way its elements are split among threads.
#include <gtest/gtest.h>

#include <torch/torch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <functional>

#include "kernels/adam.h"
#include "kernels/model.h"

using namespace vizsweep::kernels;

namespace {

struct State {
  torch::Tensor v, m, s;
  torch::Tensor m_scale;  // the reference only: m's recurrence on |g|, the size of m's terms
};

// 40 steps of Adam from v0 with gradients drawn from seed, adam.h's way.
State run_own(const torch::Tensor& v0, const std::vector<torch::Tensor>& grads, const AdamStep& base, const ParallelFor& pf) {
  State st{v0.clone(), torch::zeros_like(v0), torch::zeros_like(v0)};
  for (size_t i = 0; i < grads.size(); ++i) {
    AdamStep step = base;
    step.t = static_cast<int64_t>(i) + 1;
    adam_update(st.v.data_ptr<float>(), grads[i].data_ptr<float>(), st.m.data_ptr<float>(), st.s.data_ptr<float>(), st.v.numel(),
                step, pf);
  }
  return st;
}

// The same in double precision, LibTorch's operations: the reference the float pass is
// measured against.
State run_reference(const torch::Tensor& v0, const std::vector<torch::Tensor>& grads, const AdamStep& base) {
  State st{v0.to(torch::kDouble), torch::zeros_like(v0, torch::kDouble), torch::zeros_like(v0, torch::kDouble),
           torch::zeros_like(v0, torch::kDouble)};
  for (size_t i = 0; i < grads.size(); ++i) {
    const double t = static_cast<double>(i) + 1;
    const auto g = grads[i].to(torch::kDouble);
    st.m = st.m * base.beta1 + g * (1.0 - base.beta1);
    st.m_scale = st.m_scale * base.beta1 + g.abs() * (1.0 - base.beta1);
    st.s = st.s * base.beta2 + g * g * (1.0 - base.beta2);
    const auto mh = st.m / (1.0 - std::pow(base.beta1, t)), sh = st.s / (1.0 - std::pow(base.beta2, t));
    st.v = st.v + base.lr * mh / (sh.sqrt() + 1e-8);
  }
  return st;
}

std::vector<torch::Tensor> gradients(int64_t n, int steps, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> out;
  // Gradients over six orders of magnitude, some exactly zero (a pixel outside every crop).
  for (int i = 0; i < steps; ++i) {
    auto g = torch::randn({n}, gen) * torch::pow(10.0, torch::rand({n}, gen) * 6.0 - 4.0);
    out.push_back(torch::where(torch::rand({n}, gen) < 0.05, torch::zeros_like(g), g));
  }
  return out;
}

}  // namespace

TEST(Adam, MatchesTheDoublePrecisionUpdate) {
  // Float against double. Each step rounds v to float (half a unit in the last place, at
  // most 6e-8 of the largest |v|) and computes the step itself to a few roundings of lr;
  // 40 steps bound the difference by 40 x 6e-8 x (max |v| + 4 lr). A wrong coefficient (b1
  // for 1 - b1, a missing bias correction) moves v by about lr, hundreds of times more. The
  // running means are compared relative to the size of their terms.
  for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{4096 + 7}, kSerialAdam + 333}) {
    const auto grads = gradients(n, 40, 11 + n);
    const auto v0 = torch::randn({n}, at::detail::createCPUGenerator(5));
    for (const AdamStep& base : {AdamStep{0.05, 0.9, 0.999, 1}, AdamStep{2.0, 0.5, 0.9, 1}}) {
      const State own = run_own(v0, grads, base, intra_op_parallel());
      const State ref = run_reference(v0, grads, base);
      const double tol_v = 40 * 6e-8 * (ref.v.abs().max().item<double>() + 4 * base.lr);
      EXPECT_LT((own.v.to(torch::kDouble) - ref.v).abs().max().item<double>(), tol_v) << "n " << n << " lr " << base.lr;
      // m's terms have both signs, so it is compared relative to their size (m_scale); s's
      // are all positive.
      EXPECT_LT(((own.m.to(torch::kDouble) - ref.m).abs() / (ref.m_scale + 1e-30)).max().item<double>(), 1e-5) << "n " << n;
      EXPECT_LT(((own.s.to(torch::kDouble) - ref.s).abs() / (ref.s.abs() + 1e-30)).max().item<double>(), 1e-5) << "n " << n;
      // The first step, bias-corrected, is lr in the gradient's sign (|g| >= 1e-4 >> 1e-8).
      const State first = run_own(v0, {grads[0]}, base, intra_op_parallel());
      const auto big = grads[0].abs() > 1e-4;
      const auto step = (first.v - v0).masked_select(big), want = (grads[0].sign() * base.lr).masked_select(big);
      if (step.numel() > 0)
        EXPECT_LT((step - want).abs().max().item<double>(), 1e-3 * base.lr + 1e-6 * v0.abs().max().item<double>())
            << "n " << n;
    }
  }
}

TEST(Adam, TheSameBitsOnOneThreadAndOnSeveral) {
  // Above kSerialAdam elements the update is split in chunks among the threads; each element
  // is computed by the same operations either way.
  const int64_t n = 3 * kSerialAdam + 77;
  const auto grads = gradients(n, 5, 3);
  const auto v0 = torch::randn({n}, at::detail::createCPUGenerator(9));
  const AdamStep base{0.05, 0.9, 0.999, 1};
  const ParallelFor serial = [](int64_t k, const std::function<void(int64_t, int64_t)>& fn) { fn(0, k); };
  const State one = run_own(v0, grads, base, serial);
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  const State two = run_own(v0, grads, base, intra_op_parallel());
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.v, two.v));
  EXPECT_TRUE(torch::equal(one.m, two.m));
  EXPECT_TRUE(torch::equal(one.s, two.s));
}
