// What the committed default model (models/fashion_vgg11.pt, trained on Fashion-MNIST)
// must show, on the real test set.
#include <cstdio>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/actmax.h"
#include "kernels/classifier.h"
#include "kernels/error.h"
#include "kernels/exemplars.h"
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
  const double eps = 0.1;  // at 0.05 ten steps reach about 93%; see docs/models.md's table
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
  // Not VGG-style: vizsweep loads it as a graph, whose logits are the classifier's.
  const Model as_graph = Model::load(kJudge);
  EXPECT_TRUE(as_graph.is_graph());
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
  // 10/10 at 0.904 in the quickstart, 9/10 at 0.796 for this test's seed; with the resampling's
  // gradient summed over shared taps, 10/10 at 0.865 here.) Asserted with room for other CPU kinds, whose
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

TEST(Judge, FeaturesAtATapAreItsOutputAveragedOverPositions) {
  // The feature spaces of machine interpretability (exemplars.feature_layer): "logits", or a
  // tap of the feature model's graph averaged over positions. Checked against the TorchScript
  // module's own submodules called in turn (the judge is a Sequential: stem convolution, batch
  // norm, ReLU, residual blocks 3..8, pooling, flatten, linear).
  Classifier judge = Classifier::load(kJudge);
  auto t = test_set(8, judge.info().input_size);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(judge.features(t.x, "logits", "f"), judge.logits(t.x)));
  auto m = torch::jit::load(kJudge);
  m.eval();
  torch::Tensor x = (t.x - 0.5) / 0.5;  // the judge's normalization (mean 0.5, std 0.5)
  std::map<std::string, torch::Tensor> after;
  for (const char* name : {"0", "1", "2", "3", "4", "5"}) {
    x = m.attr(name).toModule().forward({x}).toTensor();
    after[name] = x.mean({2, 3});
  }
  // Same operations on the same floats, in the same order: equal up to the graph runner's
  // out-of-place rewrite of the in-place ReLUs (the same kernels; a last-bit difference allowed).
  for (const char* tap : {"2", "5"}) {
    auto f = judge.features(t.x, tap, "f");
    ASSERT_EQ(f.sizes(), after[tap].sizes()) << tap;
    EXPECT_TRUE(torch::allclose(f, after[tap], 1e-5, 1e-6)) << tap;
  }
  // A block's alias is the block.
  EXPECT_TRUE(torch::equal(judge.features(t.x, "3.relu:2", "f"), judge.features(t.x, "3", "f")));
  try {
    judge.features(t.x, "no.such.tap", "exemplars.feature_layer");
    ADD_FAILURE() << "an unknown tap was accepted";
  } catch (const vizsweep::Error& e) {
    EXPECT_NE(std::string(e.what()).find("exemplars.feature_layer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no tap 'no.such.tap'"), std::string::npos) << e.what();
  }
}

TEST(ResNetDefault, TheJudgeRecognizesItsClassImages) {
  // The second default model, a graph (models/fashion_resnet.pt), under the example sweep's
  // tuned setting: olah2017 with Fashion-MNIST's dark background, flips, a 3 px jitter and
  // scaling by up to 20%. Two judges score the stored images: models/fashion_judge.pt (trained
  // apart, from another seed, in another module layout, but of the same residual family) and
  // the VGG default (another family). Measured in a sweep over seeds 0-2 (Zen 5): the first
  // judge recognized 9, 10 and 10 of 10 at mean probabilities 0.90, 0.92 and 0.97; the VGG
  // judge 6-8 of 10 at 0.52-0.76, missing Sneaker and Ankle boot most often: what a residual
  // network's class images show carries less well to a VGG than the reverse (the VGG
  // default's class images: 10/10 for the residual judge). Asserted over two seeds: the issue's
  // bar (18 of 20, mean probability >= 0.85) for the first judge, and the VGG judge far
  // above chance (half, against a tenth). Other CPU kinds send the optimization elsewhere (their
  // kernels round differently); two seeds keep one unlucky run from deciding.
  Model resnet = Model::load(std::string(VIZSWEEP_SOURCE_DIR) + "/models/fashion_resnet.pt");
  ASSERT_TRUE(resnet.is_graph());
  Classifier judge = Classifier::load(kJudge), vgg = Classifier::load(kModel);
  ActMaxRequest req;
  req.layer = "fc";
  req.units = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  req.settings = actmax_preset("olah2017");
  req.settings.background = 0.12, req.settings.flip = true, req.settings.jitter = 0.1, req.settings.scale = 0.2;
  // Two seeds, so one unlucky optimization does not decide (the bar: 18 of 20, mean >= 0.85).
  auto idx = torch::arange(10);
  int64_t hits[2] = {0, 0};
  double mean[2] = {0, 0};
  for (uint64_t seed : {0, 1}) {
    req.seed = seed;
    auto r = activation_maximization(resnet, req);
    EXPECT_EQ(r.is_argmax.sum().item<int64_t>(), 10) << "the model puts each class first";
    auto stored = r.images.mul(255.0).round().div(255.0);
    for (int j = 0; j < 2; ++j) {
      auto p = (j == 0 ? judge : vgg).probabilities(stored);
      hits[j] += (p.argmax(1) == idx).sum().item<int64_t>();
      mean[j] += p.index({idx, idx}).mean().item<double>() / 2;
    }
  }
  std::printf("ResNet default's class images, seeds 0 and 1: the residual judge recognizes %lld/20 (mean probability "
              "%.3f), the VGG judge %lld/20 (%.3f)\n",
              static_cast<long long>(hits[0]), mean[0], static_cast<long long>(hits[1]), mean[1]);
  EXPECT_GE(hits[0], 18);
  EXPECT_GE(mean[0], 0.85);
  EXPECT_GE(hits[1], 10);
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

namespace {

// Every unit's responses to x in batches of `batch` ([N, U] values and flat positions), by a
// plain forward pass per batch: the reference the scan must equal.
void responses(const LayerInfo& L, const torch::Tensor& x, int64_t batch, bool centre, torch::Tensor& v, torch::Tensor& p) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> vs, ps;
  for (int64_t i = 0; i < x.size(0); i += batch) {
    auto a = model().forward(x.slice(0, i, i + batch), L.index);
    if (a.dim() == 2) {
      vs.push_back(a), ps.push_back(torch::zeros_like(a, torch::kLong));
      continue;
    }
    auto flat = a.flatten(2);
    if (centre) {
      const int64_t c = (a.size(2) / 2) * a.size(3) + a.size(3) / 2;
      vs.push_back(flat.select(2, c)), ps.push_back(torch::full_like(vs.back(), c, torch::kLong));
    } else {
      auto [mv, mp] = flat.max(2);
      vs.push_back(mv), ps.push_back(mp);
    }
  }
  v = torch::cat(vs), p = torch::cat(ps);
}

std::vector<ExemplarScan::LayerExemplars> scan(const torch::Tensor& x, int64_t first_id, const std::vector<std::string>& layers,
                                               int64_t k, ExemplarPosition pos, int64_t batch = 100) {
  std::vector<ExemplarLayerRequest> req;
  for (const auto& l : layers) req.push_back({l, {}});
  ExemplarScan s(model(), req, k, true, pos);
  for (int64_t i = 0; i < x.size(0); i += batch) {
    std::vector<int64_t> ids;
    for (int64_t j = i; j < std::min(x.size(0), i + batch); ++j) ids.push_back(first_id + j);
    s.add(x.slice(0, i, i + batch), ids);
  }
  return s.result();
}

}  // namespace

TEST(Exemplars, EveryUnitsListIsTheSortOfAllItsResponses) {
  // 2,000 test images, four layers, every unit: the scan's top-9 and bottom-9 equal a full
  // sort of each unit's responses by (value, then image id), ids, values and positions alike.
  auto ts = test_set(2000, model().input_size());
  const std::vector<std::string> layers = {"conv1_1", "conv3_1", "conv5_1", "fc8"};
  for (auto pos : {ExemplarPosition::Max, ExemplarPosition::Centre}) {
    auto res = scan(ts.x, 0, layers, 9, pos);
    ASSERT_EQ(res.size(), layers.size());
    int64_t ties = 0;
    for (const auto& le : res) {
      torch::Tensor v, p;
      responses(le.layer, ts.x, 100, pos == ExemplarPosition::Centre, v, p);
      ASSERT_EQ(static_cast<int64_t>(le.units.size()), le.layer.units);
      auto va = v.accessor<float, 2>();
      auto pa = p.accessor<int64_t, 2>();
      for (const auto& ue : le.units) {
        std::vector<int64_t> order(static_cast<size_t>(v.size(0)));
        for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
        const int64_t u = ue.unit;
        auto by = [&](bool top) {
          auto o = order;
          std::sort(o.begin(), o.end(), [&](int64_t a, int64_t b) {
            if (va[a][u] != va[b][u]) return top ? va[a][u] > va[b][u] : va[a][u] < va[b][u];
            return a < b;
          });
          return o;
        };
        for (bool top : {true, false}) {
          const auto want = by(top);
          const auto& got = top ? ue.top : ue.bottom;
          ASSERT_EQ(got.size(), 9u);
          for (size_t r = 0; r < 9; ++r) {
            ASSERT_EQ(got[r].image, want[r]) << le.layer.alias << " unit " << u << (top ? " top " : " bottom ") << r;
            ASSERT_EQ(got[r].activation, va[want[r]][u]);
            const int64_t W = le.layer.spatial() ? le.layer.shape[2] : 1;
            ASSERT_EQ(got[r].y * W + got[r].x, pa[want[r]][u]);
          }
          ties += va[want[8]][u] == va[want[9]][u];
        }
      }
    }
    // Ties at the cut exist (ReLU'd-away units answer 0 to many images): the id rule decides.
    std::printf("%s: %lld lists with a tie at the cut\n", exemplar_position_name(pos), static_cast<long long>(ties));
  }
}

TEST(Exemplars, ShardsMergedInTheTotalOrderGiveTheSingleScan) {
  auto ts = test_set(2000, model().input_size());
  const std::vector<std::string> layers = {"conv2_1", "conv4_1", "fc8"};
  auto whole = scan(ts.x, 0, layers, 9, ExemplarPosition::Max);
  // Three shards of unequal size, on batch boundaries, scanned apart.
  std::vector<std::vector<ExemplarScan::LayerExemplars>> shards;
  const std::vector<int64_t> cuts = {0, 300, 1400, 2000};
  for (size_t c = 0; c + 1 < cuts.size(); ++c) shards.push_back(scan(ts.x.slice(0, cuts[c], cuts[c + 1]), cuts[c], layers, 9, ExemplarPosition::Max));
  for (size_t l = 0; l < layers.size(); ++l)
    for (size_t u = 0; u < whole[l].units.size(); ++u)
      for (bool top : {true, false}) {
        std::vector<Exemplar> all;
        for (const auto& sh : shards) {
          const auto& list = top ? sh[l].units[u].top : sh[l].units[u].bottom;
          all.insert(all.end(), list.begin(), list.end());
        }
        std::sort(all.begin(), all.end(), [&](const Exemplar& a, const Exemplar& b) {
          if (a.activation != b.activation) return top ? a.activation > b.activation : a.activation < b.activation;
          return a.image < b.image;
        });
        const auto& want = top ? whole[l].units[u].top : whole[l].units[u].bottom;
        for (size_t r = 0; r < want.size(); ++r) {
          ASSERT_EQ(all[r].image, want[r].image) << layers[l] << " unit " << u << " rank " << r;
          ASSERT_EQ(all[r].activation, want[r].activation);
          ASSERT_EQ(all[r].box.y0, want[r].box.y0);
        }
      }
}

TEST(Exemplars, ClassUnitsTopImagesAreThatClassAndBoxesAreReceptiveFields) {
  auto ts = test_set(10000, model().input_size());
  auto res = scan(ts.x, 0, {"conv1_1", "conv3_1", "fc8"}, 9, ExemplarPosition::Max, 500);
  // fc8: each class unit's nine strongest test images, by their dataset labels.
  int64_t right = 0;
  for (const auto& ue : res[2].units)
    for (const auto& e : ue.top) right += ts.y[e.image].item<int64_t>() == ue.unit;
  std::printf("fc8: %lld of 90 top exemplars carry the unit's class label\n", static_cast<long long>(right));
  EXPECT_GE(right, 85);
  // Boxes: conv1_1 (3x3 kernel, padding 1) sees the 3x3 around its position, clipped at the
  // border; conv3_1 a larger window; fc8 the whole image.
  const int64_t S = model().input_size();
  for (const auto& ue : res[0].units)
    for (const auto& e : ue.top) {
      EXPECT_EQ(e.box.y0, std::max<int64_t>(0, e.y - 1));
      EXPECT_EQ(e.box.y1, std::min<int64_t>(S, e.y + 2));
      EXPECT_EQ(e.box.x0, std::max<int64_t>(0, e.x - 1));
      EXPECT_EQ(e.box.x1, std::min<int64_t>(S, e.x + 2));
    }
  for (const auto& ue : res[1].units)
    for (const auto& e : ue.top) {
      EXPECT_GT(e.box.y1 - e.box.y0, 3);
      EXPECT_LE(e.box.y1 - e.box.y0, model().layer("conv3_1").rf_size);
    }
  for (const auto& ue : res[2].units)
    for (const auto& e : ue.top) EXPECT_TRUE(e.box.y0 == 0 && e.box.x0 == 0 && e.box.y1 == S && e.box.x1 == S);
}

TEST(Exemplars, BadRequestsAreClearErrors) {
  auto bad = [](const std::function<void()>& f, const std::string& where) {
    try {
      f();
      ADD_FAILURE() << "no error for " << where;
    } catch (const vizsweep::Error& e) {
      EXPECT_EQ(e.where(), where) << e.what();
    }
  };
  bad([] { ExemplarScan(model(), {{"conv1_1", {}}}, 0, false, ExemplarPosition::Max); }, "k");
  bad([] { ExemplarScan(model(), {{"conv9_9", {}}}, 9, false, ExemplarPosition::Max); }, "layer");
  bad([] { parse_exemplar_position("middle"); }, "position");
  bad([] {
    ExemplarScan s(model(), {{"fc8", {}}}, 2, false, ExemplarPosition::Max);
    auto x = torch::rand({2, 1, 32, 32});
    s.add(x, {5, 6});
    s.add(x, {6, 7});  // ids must keep increasing
  }, "images");
}
