#include "kernels/image.h"

#include <cstdio>
#include <fstream>
#include <iterator>

#ifdef VIZSWEEP_STB_IMPLEMENTATION
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <torch/torch.h>

#include "kernels/error.h"

namespace vizsweep::kernels {

torch::Tensor decode_image(const std::vector<uint8_t>& bytes, int64_t channels, int64_t size,
                           const std::string& source) {
  if (channels != 1 && channels != 3) throw Error(source, "models with " + std::to_string(channels) + " input channels take no images (need 1 or 3)");
  if (bytes.empty()) throw Error(source, "empty file, not an image");
  int w = 0, h = 0, n = 0;
  unsigned char* px = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, 0);
  if (!px) throw Error(source, std::string("not a readable PNG or JPEG image (") + stbi_failure_reason() + ")");
  auto hwc = torch::from_blob(px, {h, w, n}, torch::kUInt8).clone();
  stbi_image_free(px);
  auto x = hwc.permute({2, 0, 1}).to(torch::kFloat).div_(255.0);  // [n, h, w]
  if (n == 2 || n == 4) x = x.slice(0, 0, n - 1);                  // drop alpha
  return conform_image(x, channels, size);
}

torch::Tensor conform_image(const torch::Tensor& image, int64_t channels, int64_t size) {
  torch::Tensor x = image;
  const int64_t h = x.size(1), w = x.size(2);
  if (x.size(0) == 1 && channels == 3) x = x.expand({3, h, w});
  if (x.size(0) == 3 && channels == 1)
    x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0);
  x = x.contiguous();
  if (h != size || w != size) {
    namespace F = torch::nn::functional;
    x = F::interpolate(x.unsqueeze(0), F::InterpolateFuncOptions()
                                           .size(std::vector<int64_t>{size, size})
                                           .mode(torch::kBilinear)
                                           .align_corners(false)
                                           .antialias(true))
            .squeeze(0)
            .clamp(0.0, 1.0);
  }
  return x;
}

torch::Tensor read_image(const std::string& path, int64_t channels, int64_t size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path, "cannot open image file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return decode_image(bytes, channels, size, path);
}

void check_image_file(const std::string& path, const std::string& field) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(field, path + ": cannot open image file");
  int w = 0, h = 0, n = 0;
  int ok = stbi_info_from_file(f, &w, &h, &n);
  std::fclose(f);
  if (!ok) throw Error(field, path + ": not a readable PNG or JPEG image (" + stbi_failure_reason() + ")");
  if (w < 8 || h < 8)
    throw Error(field, path + ": image is " + std::to_string(w) + "x" + std::to_string(h) + " pixels; need at least 8x8");
  if (static_cast<int64_t>(w) * h > (int64_t{1} << 26))
    throw Error(field, path + ": image is " + std::to_string(w) + "x" + std::to_string(h) + " pixels; at most 64 megapixels");
}

torch::Tensor to_uint8_hwc(const torch::Tensor& image) {
  auto x = image.detach().to(torch::kCPU, torch::kFloat);
  if (x.dim() == 2) x = x.unsqueeze(0);
  return x.clamp(0.0, 1.0).mul(255.0).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
}

std::vector<uint8_t> encode_png(const torch::Tensor& image) {
  auto hwc = to_uint8_hwc(image);
  const int h = static_cast<int>(hwc.size(0)), w = static_cast<int>(hwc.size(1)), c = static_cast<int>(hwc.size(2));
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int len) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + len);
  };
  if (!stbi_write_png_to_func(sink, &out, w, h, c, hwc.data_ptr<uint8_t>(), w * c))
    throw Error("png", "encoding failed");
  return out;
}

torch::Tensor resize_batch(const torch::Tensor& images, int64_t size) {
  if (images.size(2) == size && images.size(3) == size) return images;
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{size, size})
                                    .mode(torch::kBilinear)
                                    .align_corners(false)
                                    .antialias(true))
      .clamp(0.0, 1.0);
}

}  // namespace vizsweep::kernels
