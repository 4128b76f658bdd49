#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/image.h"

using vizsweep::Error;
using namespace vizsweep::kernels;

namespace {
std::string write_file(const std::string& name, const std::vector<uint8_t>& bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}
}  // namespace

TEST(Image, PngRoundTripIsExact) {
  auto x = torch::randint(0, 256, {3, 8, 8}).to(torch::kFloat) / 255.0;
  auto path = write_file("rt.png", encode_png(x));
  auto y = read_image(path, 3, 8);
  EXPECT_TRUE(torch::allclose(x, y, 0, 1e-6));
}

TEST(Image, GrayAndRgbConvertToTheModelsChannels) {
  auto gray = torch::randint(0, 256, {1, 6, 6}).to(torch::kFloat) / 255.0;
  auto rgb = read_image(write_file("g.png", encode_png(gray)), 3, 6);
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 6, 6}));
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(torch::allclose(rgb[c], gray[0], 0, 1e-6));
  auto colour = torch::zeros({3, 4, 4});
  colour[0].fill_(1.0);  // pure red -> luminance 0.299
  auto lum = read_image(write_file("red.png", encode_png(colour)), 1, 4);
  EXPECT_NEAR(lum.mean().item<double>(), 0.299, 1e-6);
}

TEST(Image, JpegDecodesAndResizes) {
  std::vector<uint8_t> px(16 * 16 * 3);
  for (size_t i = 0; i < px.size(); i += 3) px[i] = 200, px[i + 1] = 100, px[i + 2] = 50;
  std::vector<uint8_t> jpg;
  stbi_write_jpg_to_func(
      [](void* ctx, void* data, int len) {
        auto* v = static_cast<std::vector<uint8_t>*>(ctx);
        v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + len);
      },
      &jpg, 16, 16, 3, px.data(), 95);
  auto x = read_image(write_file("c.jpg", jpg), 3, 8);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 8, 8}));
  EXPECT_NEAR(x[0].mean().item<double>(), 200 / 255.0, 3 / 255.0);
  EXPECT_NEAR(x[1].mean().item<double>(), 100 / 255.0, 3 / 255.0);
  EXPECT_NEAR(x[2].mean().item<double>(), 50 / 255.0, 3 / 255.0);
}

TEST(Image, UnreadableImagesAreClearErrors) {
  try {
    read_image("/nonexistent/cat.png", 3, 8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "/nonexistent/cat.png");
  }
  auto path = write_file("junk.png", {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  try {
    read_image(path, 3, 8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), path);
    EXPECT_NE(std::string(e.what()).find("not a readable PNG or JPEG image"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_image(write_file("empty.png", {}), 3, 8), Error);
}
