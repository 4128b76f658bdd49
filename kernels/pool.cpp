#include "kernels/pool.h"

#include <cstring>

#include "kernels/clones.h"  // VIZ_INLINE

namespace vizsweep::kernels {

namespace {

VIZ_INLINE uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
VIZ_INLINE float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// Planes, one after another. Built for the baseline instruction set only: a plane's rows are
// short (4 to 16 outputs under a crop), and the wider versions' vector loops then leave their
// scalar tails doing the work, slower than the baseline's 4-lane loop.
void pool_planes(const float* __restrict in, int64_t planes, int64_t H, int64_t W, float* __restrict out,
                 int64_t* __restrict index) {
  const int64_t h = H / 2, w = W / 2;
  for (int64_t p = 0; p < planes; ++p, in += H * W, out += h * w, index += h * w) {
    for (int64_t y = 0; y < h; ++y) {
      const float* __restrict r0 = in + 2 * y * W;
      const float* __restrict r1 = r0 + W;
      float* __restrict o = out + y * w;
      int64_t* __restrict k = index + y * w;
      const int64_t top = 2 * y * W;
      for (int64_t x = 0; x < w; ++x) {
        const float a = r0[2 * x], b = r0[2 * x + 1], c = r1[2 * x], d = r1[2 * x + 1];
        // The pairs (a, b) and (c, d), then their winners: the same choice as LibTorch's scan
        // a, b, c, d (the last NaN if any, else the first largest). Selects by bit masks, so
        // there is no branch to mispredict.
        const uint32_t tb = -static_cast<uint32_t>((b > a) | (b != b));
        const uint32_t td = -static_cast<uint32_t>((d > c) | (d != d));
        const float m0 = from_bits((bits(a) & ~tb) | (bits(b) & tb));
        const float m1 = from_bits((bits(c) & ~td) | (bits(d) & td));
        const uint32_t t = -static_cast<uint32_t>((m1 > m0) | (m1 != m1));
        o[x] = from_bits((bits(m0) & ~t) | (bits(m1) & t));
        // Column offset in the window (0 or 1) and whether the lower row won.
        const uint32_t dx = ((tb & ~t) | (td & t)) & 1u, dy = t & 1u;
        k[x] = top + 2 * x + dx + dy * W;
      }
    }
  }
}

}  // namespace

void max_pool2x2(const float* in, int64_t planes, int64_t H, int64_t W, float* out, int64_t* index, const ParallelFor& pf) {
  const int64_t hw = (H / 2) * (W / 2);
  pf(planes, [&](int64_t p0, int64_t p1) {
    pool_planes(in + p0 * H * W, p1 - p0, H, W, out + p0 * hw, index + p0 * hw);
  });
}

}  // namespace vizsweep::kernels
