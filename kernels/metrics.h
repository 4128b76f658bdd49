// Quality metrics of optimized images, so settings can be compared by numbers.
// Every function takes images [B, C, H, W] in pixel space [0, 1] and returns [B] (float).
#pragma once

#include <torch/types.h>

namespace vizsweep::kernels {

// Fraction of spectral energy (per channel, mean removed, summed over channels) at spatial
// frequencies with radius sqrt(fx^2 + fy^2) above half the Nyquist frequency (0.25
// cycles/pixel). 0 for an image with no variation; 1 for a one-pixel checkerboard.
torch::Tensor high_frequency_energy(const torch::Tensor& images);

// Anisotropic total variation: mean |x[h+1,w] - x[h,w]| over vertical neighbour pairs plus
// mean |x[h,w+1] - x[h,w]| over horizontal pairs, averaged over channels. 0 for a constant
// image, 2 for a 0/1 checkerboard.
torch::Tensor total_variation(const torch::Tensor& images);

// Fraction of values that quantize to 0 or 255 (<= 0.5/255 or >= 1 - 0.5/255).
torch::Tensor saturated_fraction(const torch::Tensor& images);

}  // namespace vizsweep::kernels
