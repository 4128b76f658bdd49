#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/error.h"
#include "kernels/model.h"

using vizsweep::Error;
using namespace vizsweep::kernels;

namespace {

VggOptions small_vgg(const std::string& arch = "vgg11") {
  VggOptions o;
  o.arch = arch;
  o.width = 1.0 / 16;
  o.fc_width = 32;
  o.pool = 1;
  o.num_classes = 10;
  o.input_size = 32;
  o.seed = 3;
  return o;
}

}  // namespace

TEST(LayerTable, BuiltinVgg16MatchesTorchvision) {
  VggOptions o;  // torchvision's VGG16 at 224 px
  Model m = Model::builtin(o);
  int convs = 0;
  int64_t channels = 0;
  for (const auto& L : m.layers())
    if (L.kind == LayerKind::Conv) ++convs, channels += L.units;
  EXPECT_EQ(convs, 13);
  EXPECT_EQ(channels, 4224);
  EXPECT_EQ(m.layer("fc6").units, 4096);
  EXPECT_EQ(m.layer("fc7").units, 4096);
  EXPECT_EQ(m.layer("fc8").units, 1000);
  EXPECT_EQ(m.layer("fc8").path, "classifier.6");
  EXPECT_EQ(m.layer("conv5_3").path, "features.28");
  EXPECT_EQ(m.layer("pool5").path, "features.30");
  EXPECT_EQ(m.layer("conv3_3").rf_size, 40);
  EXPECT_EQ(m.layer("conv5_3").rf_size, 196);
  EXPECT_EQ(m.layer("conv5_3").rf_stride, 16);
  EXPECT_EQ(m.layer("conv1_1").rf_size, 3);
  EXPECT_EQ(m.layer("conv5_3").shape, (std::vector<int64_t>{512, 14, 14}));
  EXPECT_EQ(m.layer("pool5").shape, (std::vector<int64_t>{512, 7, 7}));
  EXPECT_EQ(m.layer("avgpool").shape, (std::vector<int64_t>{512, 7, 7}));
  EXPECT_EQ(&m.layer("features.28"), &m.layer("conv5_3"));
  EXPECT_EQ(m.layers().size(), 39u);  // 31 features + avgpool + 7 classifier
  // conv1_1: 3x3x3 -> 64 at 224x224; VGG16's published forward cost is about 15.5 GMAC.
  EXPECT_DOUBLE_EQ(m.layer("conv1_1").flops, 2.0 * 9 * 3 * 64 * 224 * 224);
  EXPECT_DOUBLE_EQ(m.layer("fc8").flops, 2.0 * 4096 * 1000);
  EXPECT_NEAR(m.layer("fc8").flops_to_here / 2e9, 15.5, 0.1);
}

TEST(LayerTable, UnknownLayerListsValidNames) {
  Model m = Model::builtin(VggOptions{});
  try {
    m.layer("conv6_1");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("no layer \"conv6_1\" in vgg16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("conv1_1..conv5_3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fc6..fc8"), std::string::npos) << msg;
    EXPECT_EQ(e.where(), "layer");
  }
}

TEST(LayerTable, UnitOutOfRange) {
  Model m = Model::builtin(small_vgg());
  const auto& L = m.layer("conv1_1");
  EXPECT_NO_THROW(m.check_unit(L, L.units - 1));
  EXPECT_THROW(m.check_unit(L, L.units), Error);
  EXPECT_THROW(m.check_unit(L, -1), Error);
  try {
    m.check_unit(L, 99);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unit 99 out of range for conv1_1 (4 units: 0..3)"), std::string::npos)
        << e.what();
  }
}

TEST(Model, WrongInputSizeIsAnError) {
  Model m = Model::builtin(small_vgg());
  EXPECT_THROW(m.logits(torch::rand({1, 3, 31, 31})), Error);
  EXPECT_THROW(m.logits(torch::rand({1, 1, 32, 32})), Error);
  EXPECT_THROW(m.logits(torch::rand({3, 32, 32})), Error);
  EXPECT_EQ(m.logits(torch::rand({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_THROW(m.set_input_size(16), Error);  // five pools: 16 px leaves nothing at pool5
}

TEST(Model, TruncatedForwardEqualsFullForwardLayer) {
  Model m = Model::builtin(small_vgg("vgg16"));
  torch::NoGradGuard ng;
  auto x = torch::rand({2, 3, 32, 32}, torch::TensorOptions().dtype(torch::kFloat));
  auto all = m.forward_all(x);
  ASSERT_EQ(all.size(), m.layers().size());
  for (const auto& L : m.layers()) {
    auto t = m.forward(x, L.index);
    ASSERT_EQ(t.sizes()[0], 2);
    std::vector<int64_t> shape(t.sizes().begin() + 1, t.sizes().end());
    EXPECT_EQ(shape, L.shape) << L.alias;
    EXPECT_TRUE(torch::equal(t, all[L.index])) << L.alias;
  }
}

TEST(Model, SameSeedSameWeights) {
  Model a = Model::builtin(small_vgg());
  Model b = Model::builtin(small_vgg());
  auto o = small_vgg();
  o.seed = 4;
  Model c = Model::builtin(o);
  auto x = torch::rand({1, 3, 32, 32});
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(a.logits(x), b.logits(x)));
  EXPECT_FALSE(torch::equal(a.logits(x), c.logits(x)));
}

TEST(Model, MissingAndCorruptFilesAreClearErrors) {
  try {
    Model::load("/nonexistent/model.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.pt: no such model file"), std::string::npos) << e.what();
  }
  std::string bad = ::testing::TempDir() + "/corrupt_model.pt";
  {
    std::FILE* f = std::fopen(bad.c_str(), "wb");
    std::fputs("this is not a zip archive", f);
    std::fclose(f);
  }
  try {
    Model::load(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a readable TorchScript file"), std::string::npos) << e.what();
  }
}

TEST(Threads, SetExplicitly) {
  EXPECT_EQ(set_threads(1), 1);
  EXPECT_GE(set_threads(0), 1);
}
