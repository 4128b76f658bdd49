// TorchScript models exported from Debian's torchvision by models/export_torchvision.py
// (the ctest fixture "torchvision_models" writes them to $VIZSWEEP_TEST_MODELS).
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/model.h"

using vizsweep::Error;
using namespace vizsweep::kernels;

namespace {

std::string models_dir() {
  const char* d = std::getenv("VIZSWEEP_TEST_MODELS");
  return d ? d : "";
}

torch::Tensor load_tensor(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toTensor();
}

#define REQUIRE_MODELS()                                                        \
  if (models_dir().empty()) GTEST_SKIP() << "VIZSWEEP_TEST_MODELS not set (run under ctest)"

}  // namespace

TEST(TorchScript, Vgg16LayerTableIsTorchvisions) {
  REQUIRE_MODELS();
  Model m = Model::load(models_dir() + "/vgg16.pt");
  EXPECT_EQ(m.info().arch, "vgg16");
  EXPECT_EQ(m.info().num_classes, 1000);
  EXPECT_EQ(m.info().classes.size(), 1000u);
  EXPECT_EQ(m.class_name(0), "tench");
  ASSERT_EQ(m.layers().size(), 39u);
  // Every path and alias of torchvision's vgg16, in order.
  std::vector<std::string> aliases, paths;
  for (const auto& L : m.layers()) aliases.push_back(L.alias), paths.push_back(L.path);
  std::vector<std::string> want = {"conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",   "conv2_1", "relu2_1",
                                   "conv2_2", "relu2_2", "pool2",   "conv3_1", "relu3_1", "conv3_2", "relu3_2",
                                   "conv3_3", "relu3_3", "pool3",   "conv4_1", "relu4_1", "conv4_2", "relu4_2",
                                   "conv4_3", "relu4_3", "pool4",   "conv5_1", "relu5_1", "conv5_2", "relu5_2",
                                   "conv5_3", "relu5_3", "pool5",   "avgpool", "fc6",     "relu6",   "drop6",
                                   "fc7",     "relu7",   "drop7",   "fc8"};
  EXPECT_EQ(aliases, want);
  for (int i = 0; i <= 30; ++i) EXPECT_EQ(paths[i], "features." + std::to_string(i));
  EXPECT_EQ(paths[31], "avgpool");
  for (int i = 0; i <= 6; ++i) EXPECT_EQ(paths[32 + i], "classifier." + std::to_string(i));
  std::vector<int64_t> conv_units;
  for (const auto& L : m.layers())
    if (L.kind == LayerKind::Conv) conv_units.push_back(L.units);
  EXPECT_EQ(conv_units, (std::vector<int64_t>{64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512}));
  EXPECT_EQ(m.layer("conv1_1").shape, (std::vector<int64_t>{64, 224, 224}));
  EXPECT_EQ(m.layer("conv3_3").shape, (std::vector<int64_t>{256, 56, 56}));
  EXPECT_EQ(m.layer("conv5_3").shape, (std::vector<int64_t>{512, 14, 14}));
  EXPECT_EQ(m.layer("pool5").shape, (std::vector<int64_t>{512, 7, 7}));
  EXPECT_EQ(m.layer("fc6").shape, (std::vector<int64_t>{4096}));
  EXPECT_EQ(m.layer("fc7").units, 4096);
  EXPECT_EQ(m.layer("fc8").units, 1000);
  EXPECT_EQ(m.layer("conv3_3").rf_size, 40);
  EXPECT_EQ(m.layer("conv5_3").rf_size, 196);
  EXPECT_EQ(m.layer("pool5").rf_size, 212);
  // The built-in architecture has the same table.
  Model b = Model::builtin(VggOptions{});
  ASSERT_EQ(b.layers().size(), m.layers().size());
  for (size_t i = 0; i < m.layers().size(); ++i) {
    EXPECT_EQ(b.layers()[i].path, m.layers()[i].path);
    EXPECT_EQ(b.layers()[i].alias, m.layers()[i].alias);
    EXPECT_EQ(b.layers()[i].shape, m.layers()[i].shape);
    EXPECT_EQ(b.layers()[i].rf_size, m.layers()[i].rf_size);
  }
}

TEST(TorchScript, Vgg19LayerTableIsTorchvisions) {
  REQUIRE_MODELS();
  Model m = Model::load(models_dir() + "/vgg19.pt");
  EXPECT_EQ(m.info().arch, "vgg19");
  ASSERT_EQ(m.layers().size(), 45u);  // 37 features + avgpool + 7 classifier
  int convs = 0;
  int64_t channels = 0;
  for (const auto& L : m.layers())
    if (L.kind == LayerKind::Conv) ++convs, channels += L.units;
  EXPECT_EQ(convs, 16);
  EXPECT_EQ(channels, 5504);
  EXPECT_EQ(m.layer("conv5_4").path, "features.34");
  EXPECT_EQ(m.layer("conv5_4").shape, (std::vector<int64_t>{512, 14, 14}));
  EXPECT_EQ(m.layer("conv5_4").rf_size, 252);
  EXPECT_EQ(m.layer("pool5").path, "features.36");
  EXPECT_EQ(m.layer("fc8").path, "classifier.6");
  EXPECT_EQ(m.layer("fc6").units, 4096);
}

TEST(TorchScript, LogitsEqualTorchvisionReference) {
  REQUIRE_MODELS();
  for (std::string name : {"vgg16", "small"}) {
    Model m = Model::load(models_dir() + "/" + name + ".pt");
    auto x = load_tensor(models_dir() + "/" + name + "_ref.input.pt");
    auto want = load_tensor(models_dir() + "/" + name + "_ref.output.pt");
    m.set_input_size(x.size(2));
    torch::NoGradGuard ng;
    auto got = m.logits(x);
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    double err = (got - want).abs().max().item<double>();
    EXPECT_LE(err, 1e-5) << name << ": max |C++ - torchvision| = " << err;
  }
}

TEST(TorchScript, SmallScaledModelCarriesMetadata) {
  REQUIRE_MODELS();
  Model m = Model::load(models_dir() + "/small.pt");
  EXPECT_EQ(m.info().in_channels, 1);
  EXPECT_EQ(m.info().num_classes, 10);
  EXPECT_EQ(m.info().input_size, 32);
  EXPECT_EQ(m.info().mean, (std::vector<double>{0.5}));
  EXPECT_EQ(m.layer("conv1_1").units, 4);
  EXPECT_EQ(m.layer("fc6").units, 32);
}

// A module that is not a VGG chain loads as a graph (kernels/graph.h) when its forward maps one
// image tensor to logits; anything else is refused with what its forward does instead.
TEST(TorchScript, ForwardThatIsNotAClassifierIsRejected) {
  REQUIRE_MODELS();
  const std::vector<std::pair<std::string, std::string>> cases{
      {"not_vgg.pt", "forward returns a [1, 4, 222, 222] tensor for one image, not logits [1, K]"},
      {"two_inputs.pt", "forward takes 2 inputs; one image tensor [N, C, H, W] is needed"},
      {"tuple_output.pt", "forward returns Tuple[Tensor, Tensor], not a tensor of logits [N, K]"}};
  for (const auto& [file, message] : cases) {
    try {
      Model::load(models_dir() + "/" + file);
      ADD_FAILURE() << "loaded " << file;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
  }
}

TEST(TorchScript, TruncatedModelFileIsRejected) {
  REQUIRE_MODELS();
  std::string src = models_dir() + "/small.pt", dst = ::testing::TempDir() + "/truncated.pt";
  {
    std::ifstream in(src, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(dst, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  }
  try {
    Model::load(dst);
    FAIL() << "loaded a truncated model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dst), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated or corrupt"), std::string::npos) << e.what();
  }
}
