// Input images: PNG or JPEG (8-bit gray, gray+alpha, RGB or RGBA), decoded with stb_image,
// converted to the model's channel count and resized to its input size; and PNG output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace vizsweep::kernels {

// Decodes encoded bytes into [channels, size, size] float in [0, 1]: gray is repeated
// to 3 channels, RGB becomes luminance (ITU-R 601) for 1 channel, alpha is dropped; the
// image is resized (bilinear, antialiased) to size x size when it differs. `source` names
// the image in errors. Throws vizsweep::Error for data that is not a decodable image.
torch::Tensor decode_image(const std::vector<uint8_t>& bytes, int64_t channels, int64_t size,
                           const std::string& source = "image");

// Converts an image [c, h, w] float in [0, 1] (c = 1 or 3) as decode_image does: channel
// conversion, then antialiased bilinear resize to size x size when it differs.
torch::Tensor conform_image(const torch::Tensor& image, int64_t channels, int64_t size);
// A batch [N, C, H, W] in [0, 1] resized as conform_image resizes one image (bilinear,
// antialiased, clamped to [0, 1]) to size x size; returned as is when it is that size.
torch::Tensor resize_batch(const torch::Tensor& images, int64_t size);

// Reads and decodes a file; throws vizsweep::Error naming the path if it is missing,
// unreadable or not an image.
torch::Tensor read_image(const std::string& path, int64_t channels, int64_t size);

// Checks an image file without decoding its pixels: a PNG or JPEG stb can read, at least
// 8 x 8 and at most 2^26 pixels (a 64-megapixel guard against decompression bombs).
// Throws vizsweep::Error naming `field` and the path.
void check_image_file(const std::string& path, const std::string& field);

// Encodes [C, H, W] (C = 1 or 3) or [H, W] in [0, 1] as an 8-bit PNG (values clamped).
std::vector<uint8_t> encode_png(const torch::Tensor& image);

// image [C, H, W] in [0, 1] -> [H, W, C] uint8 (rounded, clamped), contiguous, on the CPU.
torch::Tensor to_uint8_hwc(const torch::Tensor& image);

}  // namespace vizsweep::kernels
