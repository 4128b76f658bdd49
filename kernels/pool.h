#pragma once
// VGG's max pooling (2 x 2 windows, stride 2, no padding) on the CPU, forward. Plain C++ (no
// LibTorch): model.cpp wraps it as an autograd function for its float NCHW stages, with
// LibTorch's own gradient from the indices it writes; every other pooling, format or device
// stays with LibTorch.
//
// Why it exists: LibTorch's CPU max pooling walks each window with a data-dependent branch,
// so its time depends on the image: on the 32 px model's conv3_1 crop, the network's forward
// pass took 0.87-0.95 ms by image content (spectral images slower than pixel ones), against
// 0.53-0.59 ms whatever the content with this kernel. Here each output takes the larger of
// its window's values with compares and bit-mask selects.
//
// The same values and indices as LibTorch's: within a window, in row-major order, a value
// replaces the one kept when it is larger or is NaN (so the first largest wins, and a NaN wins
// over any number); an index is the chosen input's position in its plane, y * W + x. Inputs
// in a last odd row or column belong to no window.

#include <cstdint>

#include "kernels/spectral.h"  // ParallelFor

namespace vizsweep::kernels {

// in [planes][H][W] -> out [planes][H/2][W/2] and index [planes][H/2][W/2], the planes split
// among pf's threads.
void max_pool2x2(const float* in, int64_t planes, int64_t H, int64_t W, float* out, int64_t* index, const ParallelFor& pf);

}  // namespace vizsweep::kernels
