// What the committed default model (models/fashion_vgg11.pt, trained on Fashion-MNIST)
// must show, on the real test set.
#include <cstdio>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/actmax.h"
#include "kernels/classifier.h"
#include "kernels/error.h"
#include "kernels/fgsm.h"
#include "kernels/inversion.h"
#include "kernels/model.h"
#include "sweeps/idx.h"

using namespace vizsweep::kernels;

namespace {

const std::string kModel = std::string(VIZSWEEP_SOURCE_DIR) + "/models/fashion_vgg11.pt";
const std::string kJudge = std::string(VIZSWEEP_SOURCE_DIR) + "/models/fashion_judge.pt";
const std::string kData = "/usr/share/datasets/fashion-mnist";

struct TestSet {
  torch::Tensor x, y;
};

// The first n test images, resized as the runner resizes them.
TestSet test_set(int64_t n, int64_t size) {
  auto im = vizsweep::sweeps::read_idx_images(kData + "/t10k-images-idx3-ubyte.gz", n);
  auto lb = vizsweep::sweeps::read_idx_labels(kData + "/t10k-labels-idx1-ubyte.gz", n);
  auto x = torch::from_blob(im.pixels.data(), {im.count, 1, im.rows, im.cols}, torch::kUInt8).to(torch::kFloat).div(255.0);
  namespace F = torch::nn::functional;
  x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size}).mode(torch::kBilinear)
                            .align_corners(false).antialias(true)).clamp(0.0, 1.0);
  auto y = torch::from_blob(lb.data(), {static_cast<int64_t>(lb.size())}, torch::kUInt8).to(torch::kLong);
  return {x.contiguous(), y.clone()};
}

Model& model() {
  static Model m = Model::load(kModel);
  return m;
}

double accuracy(const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard ng;
  int64_t correct = 0;
  for (int64_t i = 0; i < x.size(0); i += 1000)
    correct += (model().logits(x.slice(0, i, i + 1000)).argmax(1) == y.slice(0, i, i + 1000)).sum().item<int64_t>();
  return static_cast<double>(correct) / x.size(0);
}

}  // namespace

TEST(DefaultModel, ClassNamesTravelWithTheModel) {
  EXPECT_EQ(model().info().num_classes, 10);
  EXPECT_EQ(model().class_name(1), "Trouser");
  EXPECT_EQ(model().class_name(9), "Ankle boot");
  EXPECT_EQ(model().info().in_channels, 1);
  EXPECT_EQ(model().input_size(), 32);
}

TEST(DefaultModel, TestAccuracyAtLeast90PercentOnAll10000Images) {
  auto t = test_set(10000, model().input_size());
  ASSERT_EQ(t.x.size(0), 10000);
  double acc = accuracy(t.x, t.y);
  std::printf("test accuracy on 10,000 images: %.4f\n", acc);
  EXPECT_GE(acc, 0.90);
}

TEST(DefaultModel, FgsmAccuracyFallsAsEpsGrows) {
  auto t = test_set(500, model().input_size());
  double prev = accuracy(t.x, t.y);
  std::printf("eps     accuracy (FGSM, 1 step)  accuracy (10 steps)\n0       %.3f\n", prev);
  double prev10 = prev;
  for (double eps : {0.01, 0.02, 0.05, 0.1, 0.2}) {
    FgsmSettings s;
    s.eps = eps;
    double acc = accuracy(fgsm(model(), t.x, t.y, s).adversarial, t.y);
    s.steps = 10;
    double acc10 = accuracy(fgsm(model(), t.x, t.y, s).adversarial, t.y);
    std::printf("%-7g %.3f                    %.3f\n", eps, acc, acc10);
    EXPECT_LT(acc, prev) << "eps " << eps;
    EXPECT_LE(acc10, prev10 + 1e-9) << "eps " << eps;
    EXPECT_LE(acc10, acc) << "eps " << eps;
    prev = acc, prev10 = acc10;
  }
}

TEST(DefaultModel, IterativeFgsmSucceedsWhereOneStepDoesNot) {
  auto t = test_set(500, model().input_size());
  torch::Tensor correct;
  {
    torch::NoGradGuard ng;
    correct = model().logits(t.x).argmax(1) == t.y;
  }
  auto x = t.x.index({correct}), y = t.y.index({correct});
  ASSERT_GT(x.size(0), 400);
  const double eps = 0.1;  // at 0.05 ten steps reach about 93%; see the README's table
  FgsmSettings one;
  one.eps = eps;
  FgsmSettings ten = one;
  ten.steps = 10;
  auto r1 = fgsm(model(), x, y, one), r10 = fgsm(model(), x, y, ten);
  double s1 = (r1.pred[-1] != y).to(torch::kDouble).mean().item<double>();
  double s10 = (r10.pred[-1] != y).to(torch::kDouble).mean().item<double>();
  std::printf("eps %.2f on %lld correctly classified images: 1 step fools %.3f, 10 steps fool %.3f\n", eps,
              static_cast<long long>(x.size(0)), s1, s10);
  EXPECT_GE(s10, 0.95);
  EXPECT_LT(s1, 0.95);
  // The trace: the probability of the class the attack ends in rises over the steps.
  auto final_class = r10.pred[-1];
  auto ok = final_class != y;
  std::vector<double> mean_prob;
  // Re-run k steps (same step size: the same trajectory) to read the adversarial class's
  // probability after every step.
  for (int k = 0; k <= 10; ++k) {
    FgsmSettings s = ten;
    s.steps = std::max(1, k);
    s.step_size = effective_step_size(ten);
    torch::Tensor xs = k == 0 ? x : fgsm(model(), x, y, s).adversarial;
    torch::NoGradGuard ng;
    auto p = torch::softmax(model().logits(xs), 1).gather(1, final_class.view({-1, 1})).squeeze(1);
    mean_prob.push_back(p.index({ok}).mean().item<double>());
  }
  std::printf("mean probability of the adversarial class by step:");
  for (double p : mean_prob) std::printf(" %.2f", p);
  std::printf("\n");
  for (int k = 1; k <= 10; ++k) EXPECT_GE(mean_prob[k], mean_prob[k - 1] - 0.02) << "step " << k;
  EXPECT_GT(mean_prob[10], 0.8);
  EXPECT_LT(mean_prob[0], 0.2);
  // The per-step trace the kernel returns ends in the same prediction.
  EXPECT_TRUE(torch::equal(r10.pred[10], final_class));
}

TEST(DefaultModel, RegularizedClassImagesAreClassifiedAsTheirClass) {
  ActMaxRequest req;
  req.layer = "fc8";
  req.units = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  req.settings = actmax_preset("unregularized");
  req.settings.name = "decay+blur";
  req.settings.decay = 0.001;
  req.settings.blur_radius = 0.5;
  req.settings.blur_every = 4;
  auto r = activation_maximization(model(), req);
  torch::NoGradGuard ng;
  auto pred = model().logits(r.images).argmax(1);
  int hits = (pred == torch::arange(10)).sum().item<int>();
  std::printf("class images classified as their class: %d/10\n", hits);
  EXPECT_GE(hits, 9);
}

TEST(Judge, AnotherArchitectureAtLeast90PercentOnTheTestSet) {
  // models/fashion_judge.pt: a residual network (batch norm, identity shortcuts, global
  // average pooling), not a VGG; trained apart from the default model, from another seed.
  // Its record says 91.96% on all 10,000 test images; checked here on the first 2,000 (its
  // small convolutions run at about 6 ms per image on one core).
  Classifier judge = Classifier::load(kJudge);
  EXPECT_EQ(judge.info().num_classes, 10);
  EXPECT_EQ(judge.info().in_channels, 1);
  EXPECT_EQ(judge.info().arch, "resnet_small");
  EXPECT_THROW(Model::load(kJudge), vizsweep::Error) << "not VGG-style: vizsweep does not visualize it";
  auto t = test_set(2000, judge.info().input_size);
  auto a = judge.probabilities(t.x).argmax(1);
  const int64_t correct = (a == t.y).sum().item<int64_t>();
  std::printf("judge accuracy on the first 2,000 test images %.4f\n", correct / 2000.0);
  EXPECT_GE(correct, 1800);
  // It disagrees with the default model where either errs: two models, not one.
  torch::NoGradGuard ng;
  auto b = model().logits(t.x).argmax(1);
  EXPECT_GT((a != b).sum().item<int64_t>(), 40);
}

TEST(Judge, RecognizesTheClassImagesOfTheTunedRecipe) {
  // The setting the quickstart's judge prefers: olah2017 (fft, Adam 0.05, 512 steps, pad,
  // scale, rotate) with a black-ish background (Fashion-MNIST's), flips (the default model
  // was trained with them) and a 3 px jitter. Measured here over seeds 0-2: 29 of 30 class
  // images recognized, mean probability of the class 0.895 (0.890 at the worst seed); the
  // plain olah2017 preset reaches 0.43-0.66. (Since jitter joined the scale/rotate resampling:
  // 10/10 at 0.904 in the quickstart, 9/10 at 0.796 for this test's seed.) Asserted with room for other CPU kinds, whose
  // kernels send the optimization elsewhere: at least 8 of 10 and a mean of at least 0.75.
  Classifier judge = Classifier::load(kJudge);
  ActMaxRequest req;
  req.layer = "fc8";
  req.units = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  req.settings = actmax_preset("olah2017");
  req.settings.background = 0.12, req.settings.flip = true, req.settings.jitter = 0.1;
  auto r = activation_maximization(model(), req);
  auto stored = r.images.mul(255.0).round().div(255.0);
  auto p = judge.probabilities(stored);
  auto idx = torch::arange(10);
  const int64_t hits = (p.argmax(1) == idx).sum().item<int64_t>();
  const double mean = p.index({idx, idx}).mean().item<double>();
  std::printf("tuned recipe: judge recognizes %lld/10, mean probability of the class %.3f\n", static_cast<long long>(hits),
              mean);
  EXPECT_GE(hits, 8);
  EXPECT_GE(mean, 0.75);
  EXPECT_EQ(r.is_argmax.sum().item<int64_t>(), 10) << "and the model itself puts each class first";
}

TEST(DefaultModel, InversionErrorGrowsWithDepth) {
  auto t = test_set(4, model().input_size());
  InversionSettings s;
  s.iterations = 150;
  double first = invert(model(), "conv1_1", t.x, s, 0).rep_error.mean().item<double>();
  double last = invert(model(), "conv5_2", t.x, s, 0).rep_error.mean().item<double>();
  std::printf("inversion error: conv1_1 %.4f, conv5_2 %.4f\n", first, last);
  EXPECT_GT(last, first);
}

TEST(DefaultModel, RegularizationTradesActivationForNaturalness) {
  ActMaxRequest req;
  req.layer = "conv4_1";
  for (int64_t u = 0; u < 16; ++u) req.units.push_back(u);
  req.settings = actmax_preset("unregularized");
  auto plain = activation_maximization(model(), req);
  req.settings.name = "decay+blur";
  req.settings.decay = 0.001;
  req.settings.blur_radius = 1.0;
  req.settings.blur_every = 4;
  auto reg = activation_maximization(model(), req);
  double a0 = plain.final_activation.mean().item<double>(), a1 = reg.final_activation.mean().item<double>();
  double h0 = plain.hf_energy.mean().item<double>(), h1 = reg.hf_energy.mean().item<double>();
  std::printf("conv4_1, 16 units: unregularized activation %.2f hf-energy %.3f; decay+blur activation %.2f hf-energy %.3f\n", a0,
              h0, a1, h1);
  EXPECT_GT(a0, a1);
  EXPECT_LT(h1, h0);
}
