#pragma once
// Adam's update (Kingma and Ba 2015) of a float array on the CPU, as one pass over the
// variable, its gradient and the two running means. Plain C++ (no LibTorch): actmax.cpp
// calls it for CPU float variables, and LibTorch's operations elsewhere.
//
// Why it exists: written as LibTorch operations the update is ten passes over image-sized
// tensors (about 66 us for 32 images of 32 px on these 2-core machines), and a tensor just
// over ATen's grain of 32,768 elements (the 32 px model's spectrum of 32 images: 34,816)
// splits every one of those passes between two threads, adding about 18 us of hand-offs.
// Here it is one pass, on the calling thread below kSerialAdam elements, split among the
// threads above; every element's value is the same either way.
//
// With t the step's number from 1:
//   m = b1 m + (1 - b1) g,  s = b2 s + (1 - b2) g^2,
//   v += lr (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + 1e-8),
// each product and sum rounded to float on its own (no fused multiply-adds).

#include <cstdint>

#include "kernels/spectral.h"  // ParallelFor

namespace vizsweep::kernels {

// Below this many elements the update runs on the calling thread.
constexpr int64_t kSerialAdam = 1 << 17;

struct AdamStep {
  double lr = 0.05, beta1 = 0.9, beta2 = 0.999;
  int64_t t = 1;  // the step's number, from 1
};

// v, g, m, s: n floats each; v, m and s are updated in place.
void adam_update(float* v, const float* g, float* m, float* s, int64_t n, const AdamStep& step, const ParallelFor& pf);

}  // namespace vizsweep::kernels
