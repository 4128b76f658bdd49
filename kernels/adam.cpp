// Compiled with vizrender's flags (-O3 -ffp-contract=off): no fused multiply-adds, so every
// element gets the same value whichever vector lane or clone computes it.
#include "kernels/adam.h"

#include <algorithm>
#include <cmath>

#include "kernels/clones.h"

namespace vizsweep::kernels {

namespace {

VIZ_CLONES void adam_range(float* __restrict v, const float* __restrict g, float* __restrict m, float* __restrict s, int64_t n,
                           float b1, float c1, float b2, float c2, float h1, float h2, float lr) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = b1 * m[i] + c1 * gi;
    const float si = b2 * s[i] + c2 * (gi * gi);
    m[i] = mi, s[i] = si;
    v[i] = v[i] + lr * ((mi * h1) / (std::sqrt(si * h2) + 1e-8f));
  }
}

}  // namespace

void adam_update(float* v, const float* g, float* m, float* s, int64_t n, const AdamStep& st, const ParallelFor& pf) {
  const double t = static_cast<double>(st.t);
  // The bias corrections as factors: 1 / (1 - b^t), computed in double, then rounded once.
  const float b1 = static_cast<float>(st.beta1), b2 = static_cast<float>(st.beta2);
  const float c1 = static_cast<float>(1.0 - st.beta1), c2 = static_cast<float>(1.0 - st.beta2);
  const float h1 = static_cast<float>(1.0 / (1.0 - std::pow(st.beta1, t)));
  const float h2 = static_cast<float>(1.0 / (1.0 - std::pow(st.beta2, t)));
  const float lr = static_cast<float>(st.lr);
  auto range = [&](int64_t i0, int64_t i1) { adam_range(v + i0, g + i0, m + i0, s + i0, i1 - i0, b1, c1, b2, c2, h1, h2, lr); };
  if (n < kSerialAdam) return range(0, n);
  // Chunks of 4,096 elements, a whole number of vectors, among pf's threads.
  constexpr int64_t kGrain = 4096;
  pf((n + kGrain - 1) / kGrain, [&](int64_t b0, int64_t b1) { range(b0 * kGrain, std::min(n, b1 * kGrain)); });
}

}  // namespace vizsweep::kernels
