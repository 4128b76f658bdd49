// Sweep files: parsing, validation messages, expansion. No torch: a hand-made ModelDesc.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "kernels/error.h"
#include "sweeps/hash.h"
#include "sweeps/sweep.h"
#include "sweeps/techniques/actmax.h"
#include "sweeps/techniques/fgsm.h"

using vizsweep::Error;
using namespace vizsweep::sweeps;

namespace {

ModelDesc tiny_model() {
  ModelDesc m;
  m.arch = "vgg11";
  m.in_channels = 1;
  m.num_classes = 10;
  m.input_size = 32;
  m.layers = {{"conv1_1", "features.0", "conv", 8, true, 1e5}, {"relu1_1", "features.1", "relu", 8, true, 1.1e5},
              {"pool1", "features.2", "maxpool", 8, true, 1.2e5}, {"conv2_1", "features.3", "conv", 16, true, 5e5},
              {"relu2_1", "features.4", "relu", 16, true, 5.1e5}, {"avgpool", "avgpool", "avgpool", 16, true, 5.2e5},
              {"fc6", "classifier.0", "fc", 32, false, 6e5}, {"fc8", "classifier.1", "fc", 10, false, 6.1e5}};
  return m;
}

const char* kModel = "model: {builtin: vgg11, width: 0.0625, in_channels: 1, num_classes: 10, pool: 1, input_size: 32}\n";

SweepSpec parse(const std::string& body) { return parse_sweep(std::string(kModel) + body, "t.yaml", "/tmp"); }

// The message of the error that parsing + expanding `body` raises ("" if none).
std::string error_of(const std::string& body, bool with_model_line = true) {
  try {
    auto spec = with_model_line ? parse(body) : parse_sweep(body, "t.yaml", "/tmp");
    expand(spec, tiny_model());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SweepParse, ExpandsActmaxLayersUnitsSettingsAndSeeds) {
  auto spec = parse(
      "actmax:\n"
      "  layers: [conv1_1, fc8]\n"
      "  units: [0-4, 7]\n"
      "  units_per_batch: 4\n"
      "  presets: [unregularized, yosinski3]\n"
      "  seeds: [0, 1]\n");
  auto tasks = expand(spec, tiny_model());
  // 2 layers x 2 presets x 2 seeds x ceil(6 / 4) blocks
  ASSERT_EQ(tasks.size(), 16u);
  EXPECT_EQ(tasks[0].layer, "conv1_1");
  EXPECT_EQ(tasks[0].items, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(tasks[1].items, (std::vector<int64_t>{4, 7}));
  EXPECT_EQ(spec.get<ActmaxSection>()->settings[1].name, "yosinski3");
  EXPECT_EQ(spec.get<ActmaxSection>()->settings[1].blur_radius, 1.0);
  std::set<std::string> keys;
  for (const auto& t : tasks) keys.insert(t.key);
  EXPECT_EQ(keys.size(), tasks.size());
  // Deterministic: the same file gives the same keys and seeds.
  auto again = expand(parse("actmax:\n  layers: [conv1_1, fc8]\n  units: [0-4, 7]\n  units_per_batch: 4\n"
                            "  presets: [unregularized, yosinski3]\n  seeds: [0, 1]\n"),
                      tiny_model());
  for (size_t i = 0; i < tasks.size(); ++i) {
    EXPECT_EQ(tasks[i].key, again[i].key);
    EXPECT_EQ(tasks[i].seed, again[i].seed);
  }
  EXPECT_EQ(tasks[0].key.size(), 32u);
  EXPECT_NE(tasks[0].seed, tasks[1].seed);
}

TEST(SweepParse, AllLayersAndAllUnits) {
  auto tasks = expand(parse("actmax:\n  layers: all\n  units: all\n  units_per_batch: 100\n"), tiny_model());
  // conv1_1 (8), conv2_1 (16), fc6 (32), fc8 (10): one block each, default setting
  ASSERT_EQ(tasks.size(), 4u);
  int64_t units = 0;
  for (const auto& t : tasks) units += static_cast<int64_t>(t.items.size());
  EXPECT_EQ(units, 8 + 16 + 32 + 10);
  EXPECT_EQ(tasks[2].layer, "fc6");
}

TEST(SweepParse, GridIsTheCartesianProduct) {
  auto spec = parse("actmax:\n  layers: [conv1_1]\n  grid:\n    decay: [0, 0.01, 0.1]\n    blur_radius: [0, 1]\n    blur_every: 4\n");
  ASSERT_EQ(spec.get<ActmaxSection>()->settings.size(), 6u);
  std::set<std::pair<double, double>> seen;
  for (const auto& s : spec.get<ActmaxSection>()->settings) {
    seen.insert({s.decay, s.blur_radius});
    EXPECT_EQ(s.blur_every, 4);
    EXPECT_EQ(s.iterations, 200);  // the unregularized preset's defaults fill the rest
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_EQ(spec.get<ActmaxSection>()->settings[0].name, "decay=0,blur_radius=0");
  EXPECT_EQ(spec.get<ActmaxSection>()->settings[5].name, "decay=0.1,blur_radius=1");
}

TEST(SweepParse, RandomSearchIsReproducibleAndInRange) {
  const std::string body =
      "actmax:\n  layers: [conv1_1]\n  random:\n    count: 50\n    seed: 7\n    iterations: 100\n"
      "    decay: {log_uniform: [0.00001, 0.3]}\n    blur_radius: {uniform: [0, 1]}\n    blur_every: {choice: [2, 4, 8]}\n";
  auto a = parse(body), b = parse(body);
  ASSERT_EQ(a.get<ActmaxSection>()->settings.size(), 50u);
  double lo = 1, hi = 0;
  for (size_t i = 0; i < 50; ++i) {
    const auto& s = a.get<ActmaxSection>()->settings[i];
    EXPECT_EQ(s.decay, b.get<ActmaxSection>()->settings[i].decay);
    EXPECT_GE(s.decay, 0.00001);
    EXPECT_LE(s.decay, 0.3);
    EXPECT_GE(s.blur_radius, 0.0);
    EXPECT_LE(s.blur_radius, 1.0);
    EXPECT_TRUE(s.blur_every == 2 || s.blur_every == 4 || s.blur_every == 8);
    EXPECT_EQ(s.iterations, 100);
    lo = std::min(lo, s.decay), hi = std::max(hi, s.decay);
  }
  EXPECT_LT(lo, 0.001);  // log-uniform reaches the small decades
  EXPECT_GT(hi, 0.01);
  auto c = parse("actmax:\n  layers: [conv1_1]\n  random:\n    count: 50\n    seed: 8\n    decay: {log_uniform: [0.00001, 0.3]}\n");
  EXPECT_NE(c.get<ActmaxSection>()->settings[0].decay, a.get<ActmaxSection>()->settings[0].decay);
}

TEST(SweepParse, FgsmEpsTimesSteps) {
  char dir[] = "/tmp/vizsweep_sweeptest_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  for (const char* f : {"a.png", "b.png", "c.png"}) std::ofstream(std::string(dir) + "/" + f) << "x";
  auto spec = parse_sweep(std::string(kModel) + "fgsm:\n  images: [a.png, b.png, c.png]\n  images_per_batch: 2\n"
                                                "  eps: [0.01, 0.1]\n  steps: [1, 10]\n  targeted: [false, true]\n",
                          std::string(dir) + "/s.yaml", dir);
  ASSERT_EQ(spec.get<FgsmSection>()->settings.size(), 8u);
  auto tasks = expand(spec, tiny_model());
  EXPECT_EQ(tasks.size(), 16u);  // 8 settings x 2 image blocks
  EXPECT_EQ(spec.get<FgsmSection>()->images[0].file, std::string(dir) + "/a.png");
  EXPECT_EQ(spec.get<FgsmSection>()->setting_names[7], "targeted-eps0.1-steps10");
}

// Attacks x norms x eps: with both norms an eps above 1 is an L2 budget only; restarts apply to
// the attacks that start at random; iterative FGSM keeps its name and its task key.
TEST(SweepParse, FgsmAttacksAndNorms) {
  const std::string images = "fgsm:\n  images: {dataset: fashion-mnist, count: 4}\n  steps: 10\n";
  auto spec = parse_sweep(std::string(kModel) + images + "  attack: [fgsm, pgd, apgd-dlr]\n  norm: [linf, l2]\n"
                                                "  eps: [0.03, 2]\n  restarts: 3\n  seed: 5\n",
                          "/tmp/s.yaml", "/tmp");
  const auto* f = spec.get<FgsmSection>();
  ASSERT_EQ(f->settings.size(), 9u);  // 3 attacks x (linf 0.03, l2 0.03, l2 2)
  EXPECT_EQ(f->setting_names[0], "eps0.03-steps10");
  EXPECT_EQ(f->setting_names[2], "l2-eps2-steps10");
  EXPECT_EQ(f->setting_names[5], "pgd-l2-eps2-steps10-restarts3");
  EXPECT_EQ(f->setting_names[6], "apgd-dlr-eps0.03-steps10-restarts3");
  EXPECT_EQ(f->settings[0].restarts, 1);  // fgsm starts from the image: one run
  EXPECT_EQ(f->settings[3].restarts, 3);
  EXPECT_EQ(f->settings[3].seed, 5);
  EXPECT_EQ(f->settings[5].norm, vizsweep::kernels::AttackNorm::L2);
  // The same iterative FGSM setting written without the new keys has the same task keys.
  auto plain = parse_sweep(std::string(kModel) + images + "  eps: 0.03\n", "/tmp/s.yaml", "/tmp");
  auto with = parse_sweep(std::string(kModel) + images + "  eps: 0.03\n  attack: fgsm\n  norm: linf\n", "/tmp/s.yaml", "/tmp");
  const auto a = expand(plain, tiny_model()), b = expand(with, tiny_model());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].key, b[i].key);
}

TEST(SweepParse, FormatRanges) {
  EXPECT_EQ(format_ranges({0, 1, 2, 3, 7, 9, 10}), "0-3,7,9-10");
  EXPECT_EQ(format_ranges({5}), "5");
}

// Tasks are sized to batch_memory_gb from the per-layer memory model, and their cost counts
// the receptive-field crop where the centre unit's optimization runs on it.
TEST(SweepParse, BatchMemoryAndCropSizeTheTasks) {
  ModelDesc m = tiny_model();
  const double mib = 1024.0 * 1024.0;
  for (auto& L : m.layers) {
    L.crop_flops_to_here = L.spatial ? L.flops_to_here / 16 : L.flops_to_here;
    L.bytes_per_item = 100 * mib;
    L.crop_bytes_per_item = L.spatial ? 10 * mib : 100 * mib;
  }
  auto tasks = expand(parse("batch_memory_gb: 0.5\nactmax:\n  layers: [conv1_1, fc8]\n  units: all\n  units_per_batch: 64\n"), m);
  // conv1_1: 8 units x 10 MiB fit in one task; fc8: 512 MiB / 100 MiB = 5 units per task.
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0].items.size(), 8u);
  EXPECT_EQ(tasks[1].items, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(tasks[2].items, (std::vector<int64_t>{5, 6, 7, 8, 9}));
  EXPECT_DOUBLE_EQ(tasks[1].memory, 5 * 100 * mib);
  const double iters = parse("actmax:\n  layers: [conv1_1]\n").get<ActmaxSection>()->settings[0].iterations;
  EXPECT_DOUBLE_EQ(tasks[0].cost, 3.0 * iters * 8 * (1e5 / 16));  // on the crop
  EXPECT_DOUBLE_EQ(tasks[1].cost, 3.0 * iters * 5 * 6.1e5);
  // The channel mean needs the whole image: full memory and cost.
  auto mean = expand(parse("batch_memory_gb: 0.5\nactmax:\n  layers: [conv1_1]\n  objective: channel_mean\n"), m);
  ASSERT_EQ(mean.size(), 2u);
  EXPECT_EQ(mean[0].items.size(), 5u);
  EXPECT_DOUBLE_EQ(mean[0].cost, 3.0 * iters * 5 * 1e5);
  // Without the key, 4 GiB: the sweep's own units_per_batch.
  EXPECT_EQ(expand(parse("actmax:\n  layers: [fc8]\n  units_per_batch: 64\n"), m).size(), 1u);
  // FGSM runs the whole network: 100 MiB per image.
  auto fg = expand(parse("batch_memory_gb: 0.25\nfgsm:\n  images: {dataset: fashion-mnist, count: 5}\n  eps: 0.1\n"), m);
  ASSERT_EQ(fg.size(), 3u);
  EXPECT_EQ(fg[0].items.size(), 2u);
}

// Reduced precision changes the results: it is part of every task's key (and so of the spec
// hash a resume checks); the layout does not, and fp32 keeps the keys sweeps had before.
TEST(SweepParse, PrecisionIsPartOfTheTaskKeyAndLayoutIsNot) {
  ModelDesc m = tiny_model();
  const std::string body = "actmax:\n  layers: [conv1_1]\n";
  auto fp32 = expand(parse(body), m), explicit32 = expand(parse("precision: fp32\n" + body), m);
  auto bf16 = expand(parse("precision: bf16\n" + body), m), nhwc = expand(parse("channels_last: true\n" + body), m);
  EXPECT_EQ(parse(body).precision, "fp32");
  EXPECT_FALSE(parse(body).channels_last);
  EXPECT_TRUE(parse("channels_last: true\n" + body).channels_last);
  ASSERT_EQ(fp32.size(), bf16.size());
  ASSERT_FALSE(fp32.empty());
  EXPECT_EQ(fp32[0].key, explicit32[0].key);
  EXPECT_EQ(fp32[0].key, nhwc[0].key);
  EXPECT_NE(fp32[0].key, bf16[0].key);
  EXPECT_NE(bf16[0].canonical.find("|precision=bf16"), std::string::npos) << bf16[0].canonical;
  EXPECT_EQ(fp32[0].canonical.find("precision"), std::string::npos) << fp32[0].canonical;
}

// compute: sets the format per layer over the sweep-level defaults. Only the actmax tasks of a
// layer whose precision it changes get new keys; its layout changes no key; other techniques
// on the same layer, and every other layer, keep theirs.
TEST(SweepParse, PerLayerComputeChangesOnlyThatLayersActmaxKeys) {
  ModelDesc m = tiny_model();
  const std::string body =
      "actmax:\n  layers: [conv1_1, fc8]\ninvert:\n  layers: [fc8]\n  images: {dataset: fashion-mnist, count: 2}\n";
  const auto plain_spec = parse(body);
  const auto spec = parse("compute:\n  fc8: {precision: bf16}\n  conv1_1: {channels_last: true}\n" + body);
  ASSERT_EQ(spec.compute.size(), 2u);
  EXPECT_EQ(spec.format_for("fc8").name(), "bf16");
  EXPECT_EQ(spec.format_for("classifier.1", "classifier.1").name(), "fp32");  // a path names no entry here
  EXPECT_EQ(spec.format_for("conv1_1").name(), "fp32, channels_last");
  EXPECT_EQ(spec.format_for("conv2_1").name(), "fp32");
  EXPECT_EQ(compute_summary(spec), "fp32 (fc8: bf16; conv1_1: fp32, channels_last)");
  // A layer may be named by its module path too, and a key left out keeps the default.
  const auto by_path = parse("precision: bf16\nchannels_last: true\ncompute:\n  classifier.1: {precision: fp32}\n" + body);
  EXPECT_EQ(by_path.format_for("fc8", "classifier.1").name(), "fp32, channels_last");
  EXPECT_EQ(by_path.format_for("conv1_1", "features.0").name(), "bf16, channels_last");

  const auto plain = expand(plain_spec, m), tuned = expand(spec, m);
  ASSERT_EQ(plain.size(), tuned.size());
  int changed = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    const bool bf16_actmax = tuned[i].technique == "actmax" && tuned[i].layer == "fc8";
    if (bf16_actmax) {
      ++changed;
      EXPECT_NE(plain[i].key, tuned[i].key);
      EXPECT_NE(tuned[i].canonical.find("|precision=bf16|layer=fc8"), std::string::npos) << tuned[i].canonical;
    } else {
      EXPECT_EQ(plain[i].key, tuned[i].key) << tuned[i].canonical;
    }
  }
  EXPECT_GT(changed, 0);
  EXPECT_EQ(spec_hash(plain_spec, plain) == spec_hash(spec, tuned), false);
}

// The fp32 finish is part of the key with its precision (actmax tasks only: the other
// techniques have no finish), per layer or sweep-wide; a layer in fp32 has none.
TEST(SweepParse, Fp32FinishIsInTheActmaxKeysWithItsPrecision) {
  ModelDesc m = tiny_model();
  const std::string body =
      "actmax:\n  layers: [conv1_1, fc8]\ninvert:\n  layers: [fc8]\n  images: {dataset: fashion-mnist, count: 2}\n";
  const auto bf16 = expand(parse("precision: bf16\n" + body), m);
  const auto spec = parse("precision: bf16\nfp32_finish: 0.04\ncompute:\n  conv1_1: {precision: fp32}\n" + body);
  EXPECT_EQ(spec.default_format().name(), "bf16, fp32_finish 0.04");
  EXPECT_EQ(spec.format_for("fc8").name(), "bf16, fp32_finish 0.04");
  EXPECT_EQ(spec.format_for("conv1_1").name(), "fp32");  // nothing to finish
  EXPECT_EQ(spec.format_for("conv1_1").fp32_finish, 0.0);
  const auto finished = expand(spec, m);
  ASSERT_EQ(bf16.size(), finished.size());
  int with = 0;
  for (size_t i = 0; i < finished.size(); ++i) {
    const auto& t = finished[i];
    const bool has = t.canonical.find("|precision=bf16|fp32_finish=0.04|") != std::string::npos;
    if (t.technique == "actmax" && t.layer == "fc8") {
      EXPECT_TRUE(has) << t.canonical;
      EXPECT_NE(t.key, bf16[i].key);
      ++with;
    } else if (t.technique == "invert") {
      EXPECT_EQ(t.key, bf16[i].key) << t.canonical;  // bf16, no finish
    } else {
      EXPECT_EQ(t.canonical.find("precision"), std::string::npos) << t.canonical;  // conv1_1 in fp32
    }
  }
  EXPECT_GT(with, 0);
  // Per layer, as tune's snippet writes it.
  const auto layer = parse("compute:\n  fc8: {precision: bf16, channels_last: true, fp32_finish: 0.04}\n" + body);
  EXPECT_EQ(layer.format_for("fc8"), (ComputeFormat{"bf16", true, 0.04}));
  EXPECT_EQ(compute_summary(layer), "fp32 (fc8: bf16, channels_last, fp32_finish 0.04)");
}

TEST(SweepParse, APresetWithChangedValuesIsThatPresetSoChanged) {
  // {olah2017: {flip: true, background: 0.12}}: the preset's values but the ones given, named
  // after both; its key is the key of the same values given as a grid.
  ModelDesc m = tiny_model();
  auto spec = parse("actmax:\n  layers: [conv1_1]\n  presets:\n    - olah2017\n"
                    "    - olah2017: {flip: true, background: 0.12}\n");
  const auto* a = spec.get<ActmaxSection>();
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->settings.size(), 2u);
  const auto &plain = a->settings[0], &changed = a->settings[1];
  EXPECT_EQ(plain.name, "olah2017");
  EXPECT_FALSE(plain.flip);
  EXPECT_EQ(plain.background, 0.5);
  EXPECT_EQ(changed.name, "olah2017+flip=true,background=0.12");
  EXPECT_TRUE(changed.flip);
  EXPECT_EQ(changed.background, 0.12);
  EXPECT_EQ(changed.iterations, 512);
  EXPECT_EQ(changed.param, vizsweep::kernels::ImageParam::Fft);
  EXPECT_EQ(changed.pad, plain.pad);
  auto tasks = expand(spec, m);
  auto grid = expand(parse("actmax:\n  layers: [conv1_1]\n  grid:\n    iterations: 512\n    lr_policy: adam\n"
                           "    lr: 0.05\n    init_std: 0\n    param: fft\n    decorrelate: true\n    pad: 0.054\n"
                           "    jitter: 0.036\n    scale: 0.1\n    rotate: 10\n    flip: true\n    background: 0.12\n"),
                     m);
  ASSERT_EQ(tasks.size(), 2u);
  ASSERT_EQ(grid.size(), 1u);
  EXPECT_EQ(tasks[1].key, grid[0].key) << tasks[1].canonical << "\n" << grid[0].canonical;
  EXPECT_NE(tasks[0].key, tasks[1].key);
}

TEST(SweepParse, HyperparametersAddedLaterLeaveTheKeysAtTheirDefaults) {
  // Results survive upgrades: a hyperparameter declared after schema 1.1 (adam_beta1,
  // adam_beta2, jitter) is in the key only when set to something else than its default, so
  // the keys of a sweep that does not use it are the keys an earlier version gave it.
  ModelDesc m = tiny_model();
  const std::string body = "actmax:\n  layers: [conv1_1]\n  grid:\n    lr: 2\n";
  auto plain = expand(parse(body), m);
  auto at_default = expand(parse(body + "    jitter: 0\n    adam_beta1: 0.9\n    adam_beta2: 0.999\n"), m);
  auto jitter = expand(parse(body + "    jitter: 2\n"), m);
  auto beta = expand(parse(body + "    adam_beta2: 0.99\n"), m);
  auto turned = expand(parse(body + "    scale: 0\n    rotate: 10\n"), m);
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain[0].key, at_default[0].key);
  EXPECT_EQ(plain[0].canonical, at_default[0].canonical);
  EXPECT_EQ(plain[0].canonical.find("jitter"), std::string::npos) << plain[0].canonical;
  EXPECT_NE(plain[0].key, jitter[0].key);
  EXPECT_NE(jitter[0].canonical.find(";jitter=2"), std::string::npos) << jitter[0].canonical;
  EXPECT_NE(plain[0].key, beta[0].key);
  EXPECT_NE(turned[0].canonical.find(";rotate=10"), std::string::npos) << turned[0].canonical;
  EXPECT_EQ(turned[0].canonical.find("scale"), std::string::npos) << turned[0].canonical;
  // The hyperparameters of schema 1.1 are in every key, at their defaults too.
  for (const char* name : {"iterations=", "lr_policy=", "decay=0", "init_std="})
    EXPECT_NE(plain[0].canonical.find(name), std::string::npos) << name << " in " << plain[0].canonical;
  // The settings tables still get every column.
  EXPECT_EQ(vizsweep::kernels::params_of(vizsweep::kernels::ActMaxSettings{}).size(), vizsweep::kernels::actmax_params().size());
  // At their defaults, the keys hold schema 1.1's hyperparameters only (adam_beta1, adam_beta2,
  // jitter, param, ... brightness and any later one are left out).
  size_t of_1_1 = 0;
  for (const auto& p : vizsweep::kernels::actmax_params()) of_1_1 += p.always_in_key;
  EXPECT_EQ(of_1_1, 10u);
  EXPECT_EQ(vizsweep::kernels::key_params(vizsweep::kernels::ActMaxSettings{}).size(), of_1_1);
}

TEST(SweepParse, ObjectiveExpressionsKeepTheDefaultKeysAndNormalizeTheRest) {
  // objective: centre (or no key) and channel_mean keep the keys of earlier versions; an
  // expression is in the key as its normalized text, so two spellings of one objective are one
  // task; a sum that reads one position still runs on its receptive field's crop (its cost).
  ModelDesc m = tiny_model();
  m.layers[0].height = m.layers[0].width = 32;
  m.layers[0].crop_flops_to_here = 1e4;
  const std::string head = "actmax:\n  layers: [conv1_1]\n  units: 0-1\n";
  auto plain = expand(parse(head), m);
  auto centre = expand(parse(head + "  objective: centre\n"), m);
  auto unit = expand(parse(head + "  objective: unit\n"), m);
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain[0].key, centre[0].key);
  EXPECT_EQ(plain[0].key, unit[0].key);
  EXPECT_NE(plain[0].canonical.find("|objective=centre|"), std::string::npos) << plain[0].canonical;
  auto mean = expand(parse(head + "  objective: channel_mean\n"), m);
  EXPECT_NE(mean[0].canonical.find("|objective=channel_mean|"), std::string::npos);
  auto a = expand(parse(head + "  objective: \"2*unit@(3, 4) -0.5 * unit(7)@(3,4)\"\n"), m);
  auto b = expand(parse(head + "  objective: \"2 * unit@(3,4) - 0.5*unit(7)@(3, 4)\"\n"), m);
  EXPECT_EQ(a[0].key, b[0].key);
  EXPECT_NE(a[0].canonical.find("|objective=2*unit@(3,4) - 0.5*unit(7)@(3,4)|"), std::string::npos) << a[0].canonical;
  EXPECT_LT(a[0].cost, mean[0].cost);  // one position: the crop; a channel mean: the whole image
  auto neg = expand(parse(head + "  objective: -unit\n"), m);
  EXPECT_NE(neg[0].canonical.find("|objective=-unit|"), std::string::npos) << neg[0].canonical;
  auto dir = expand(parse(head + "  objective: unit + direction(0, 1, -1, 0, 0, 0, 0, 0)\n"), m);
  EXPECT_NE(dir[0].canonical.find("|objective=unit + direction(0,1,-1,0,0,0,0,0)|"), std::string::npos) << dir[0].canonical;
  // The settings rows' objective column holds the same text.
  auto spec = parse(head + "  objective: -unit\n");
  auto rows = spec.get<ActmaxSection>()->settings_rows();
  EXPECT_EQ(std::get<std::string>(rows.rows[0].params[0].second), "-unit");
  // Errors name the field and what is wrong, against the layer too.
  EXPECT_NE(error_of(head + "  objective: unit +\n").find("actmax.objective: at 7 of 'unit +': expected a term"), std::string::npos)
      << error_of(head + "  objective: unit +\n");
  EXPECT_NE(error_of(head + "  objective: unit(8)\n").find("actmax.objective: channel 8 out of range (the layer has 8) (conv1_1)"),
            std::string::npos);
  EXPECT_NE(error_of(head + "  objective: direction(1, 2)\n").find("direction has 2 weights; the layer has 8 channels"),
            std::string::npos);
  EXPECT_NE(error_of("actmax:\n  layers: [fc8]\n  objective: unit@(0, 0)\n").find("a position @(y, x) on a layer without positions"),
            std::string::npos);
  EXPECT_NE(error_of(head + "  objective: unit@(40, 0)\n").find("actmax.objective"), std::string::npos);
}

TEST(SweepParse, TransformOrderIsInTheKeyWhenGiven) {
  const std::string head = "actmax:\n  layers: [conv1_1]\n  units: 0-1\n  grid: {jitter: 2, rotate: 5}\n";
  ModelDesc m = tiny_model();
  auto lucid = expand(parse(head), m);
  auto turned = expand(parse(head + "  transform_order: [rotate, jitter]\n"), m);
  EXPECT_EQ(lucid[0].canonical.find("transform_order"), std::string::npos);
  EXPECT_NE(turned[0].canonical.find("|transform_order=rotate,jitter"), std::string::npos) << turned[0].canonical;
  EXPECT_NE(lucid[0].key, turned[0].key);
  EXPECT_NE(error_of(head + "  transform_order: [rotate, twist]\n").find("actmax.transform_order[1]: no transform 'twist' (have "),
            std::string::npos);
  EXPECT_NE(error_of(head + "  transform_order: [rotate, rotate]\n").find("actmax.transform_order[1]: 'rotate' given twice"),
            std::string::npos);
}

TEST(SweepParse, SearchRunsEverySettingAtEveryRungOnASampleOfUnits) {
  auto spec = parse(
      "actmax:\n"
      "  layers: [conv2_1, fc8]\n"
      "  grid: {blur_radius: [0, 0.5, 1], lr: [1, 2], blur_every: 4}\n"
      "  search: {min_iterations: 10, max_iterations: 100, eta: 3, units: 4, seed: 7}\n");
  const auto* a = spec.get<ActmaxSection>();
  ASSERT_TRUE(a->search.active());
  EXPECT_EQ(a->search.method, "asha");
  EXPECT_EQ(a->search.metric, "score");
  // Rungs: 10, 30, 90 (below 100), then 100.
  EXPECT_EQ(a->search.budgets, (std::vector<int>{10, 30, 90, 100}));
  EXPECT_EQ(a->search.settings, 6u);
  ASSERT_EQ(a->settings.size(), 24u);  // 6 settings x 4 rungs, setting k at rung r is 4k + r
  EXPECT_EQ(a->settings[a->search.setting_of(2, 3)].iterations, 100);
  EXPECT_EQ(a->settings[a->search.setting_of(2, 0)].iterations, 10);
  EXPECT_EQ(a->settings[a->search.setting_of(2, 1)].name, a->settings[a->search.setting_of(2, 0)].name.substr(0, a->settings[8].name.rfind('@')) + "@30");
  EXPECT_EQ(a->settings[a->search.setting_of(2, 1)].blur_radius, a->settings[a->search.setting_of(2, 3)].blur_radius);
  const auto tasks = expand(spec, tiny_model());
  // One task per (layer, setting, rung): 4 sampled units fit a task.
  ASSERT_EQ(tasks.size(), 2u * 24u);
  std::map<std::string, std::set<std::vector<int64_t>>> samples;
  for (const auto& t : tasks) {
    samples[t.layer].insert(t.items);
    EXPECT_EQ(a->search.rung_of(t.setting), t.setting % 4);
  }
  // Every rung and setting of a layer optimizes the same sample: one unit from each quarter.
  ASSERT_EQ(samples["conv2_1"].size(), 1u);
  const auto units = *samples["conv2_1"].begin();
  ASSERT_EQ(units.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(units[i] / 4, static_cast<int64_t>(i)) << "conv2_1 has 16 units: one per stratum of 4";
  // Seeded: the same file, the same sample; another seed, another sample (over 4^4 choices).
  EXPECT_EQ(search_sample({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 4, 7, "conv2_1"), units);
  EXPECT_NE(search_sample({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 4, 8, "conv2_1"), units);
  // Every unit when the sample is the whole layer.
  EXPECT_EQ(search_sample({3, 5, 9}, 3, 1, "x"), (std::vector<int64_t>{3, 5, 9}));
  EXPECT_EQ(search_budgets(25, 400, 3), (std::vector<int>{25, 75, 225, 400}));
  EXPECT_EQ(search_budgets(10, 90, 3), (std::vector<int>{10, 30, 90}));
  EXPECT_EQ(search_budgets(50, 50, 2), (std::vector<int>{50}));
}

TEST(SweepParse, HashIsStable) {
  EXPECT_EQ(hash_hex("vizsweep"), hash_hex("vizsweep"));
  EXPECT_NE(hash_hex("vizsweep"), hash_hex("vizsweeq"));
  EXPECT_EQ(hash_hex("").size(), 32u);
}

// Every bad sweep file gives one message naming file, line and field.
struct BadCase {
  const char* body;
  const char* expect;  // substring of the message
  bool with_model = true;
};

class BadSweep : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadSweep, NamesFileLineAndField) {
  auto c = GetParam();
  std::string msg = error_of(c.body, c.with_model);
  EXPECT_NE(msg.find(c.expect), std::string::npos) << "message: " << msg;
  EXPECT_EQ(msg.rfind("t.yaml", 0), 0u) << "message should start with the file: " << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadSweep,
    ::testing::Values(
        BadCase{"actmax: [unclosed\n", "t.yaml:3: yaml: end of sequence flow not found"},
        // Found by tests/fuzz: a mapping used as a key once escaped as a yaml-cpp exception.
        BadCase{"invert:\n  layers: all\n  images: {dataset: fashion-mnist, count: 1}\n  grid:\n    ? {l_tv: [-1]}\n    : 1\n",
                "t.yaml:6: invert.grid: keys must be plain names, not lists or mappings"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  itrations: 5\n",
                "t.yaml:4: actmax.itrations: unknown key (valid: layers, units, units_per_batch, objective, presets, grid, random, seeds, judge, diversity, spectrum, transform_order, diversity_layer, search)"},
        BadCase{"colour: red\nactmax:\n  layers: [conv1_1]\n", "t.yaml:2: colour: unknown key (valid: name, model"},
        BadCase{"actmax:\n  layers: [conv1_1, conv6_1]\n",
                "t.yaml:3: actmax.layers[1]: no layer \"conv6_1\" in vgg11 (has conv1_1..conv2_1, relu1_1..relu2_1, pool1, avgpool, fc6..fc8)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  units: 0-99\n", "t.yaml:4: actmax.units: unit 99 out of range for conv1_1 (8 units: 0..7)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  units: 5-2\n", "t.yaml:4: actmax.units: expected a unit number or a range like 0-63, got '5-2'"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  units_per_batch: many\n", "t.yaml:4: actmax.units_per_batch: expected a number, got 'many'"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    decay: []\n", "t.yaml:5: actmax.grid.decay: empty list"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    iterations: 0\n", "actmax.grid: iterations: setting grid: must be >= 1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    iterations: -5\n", "must be >= 1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    iterations: 2.5\n", "actmax.grid.iterations: expected an integer, got 2.5"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    momentum: 0.9\n",
                "actmax.grid.momentum: unknown hyperparameter (valid: iterations, lr_policy, lr,"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    lr_policy: rmsprop\n",
                "actmax.grid.lr_policy: unknown policy 'rmsprop' (have constant, progress, normalized, adam)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    lr_policy: adam\n    adam_beta1: 1\n",
                "t.yaml:5: actmax.grid: adam_beta1: setting grid: must be in [0, 1), got 1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    adam_beta2: -0.1\n",
                "actmax.grid: adam_beta2: setting grid: must be in [0, 1), got -0.1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    jitter: -2\n", "actmax.grid: jitter: setting grid: must be >= 0, got -2"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    param: sepia\n",
                "t.yaml:5: actmax.grid.param: unknown parameterization 'sepia' (have pixel, fft, maco)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    param: fft\n    decay_power: -1\n",
                "actmax.grid: decay_power: setting grid: must be >= 0, got -1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    jitter: 1.5\n",
                "actmax.grid: jitter: setting grid: below 1 a fraction of the input size, else whole pixels; got 1.5"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    pad: [0.05, 0.99]\n",
                "t.yaml:5: actmax.grid.pad: setting pad=0.99: must be less than the input size (32 px), got 0.99 (32 px)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    pad: -1\n", "actmax.grid: pad: setting grid: must be >= 0, got -1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    decorrelate: true\n",
                "actmax.grid: decorrelate: setting grid: applies to param fft (the pixel parameterization has no colour basis)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  judge: no_such_judge.pt\n", "t.yaml:4: actmax.judge: no such model file"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    background: 0\n",
                "actmax.grid: background: setting grid: must be in (0, 1), got 0"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    flip: sometimes\n", "t.yaml:5: actmax.grid.flip: expected true or false"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  presets:\n    - olah2017: {flips: true}\n",
                "t.yaml:5: actmax.presets[0].flips: unknown hyperparameter"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  presets:\n    - olah2017: {background: 1.5}\n",
                "actmax.presets[0]: background: setting olah2017+background=1.5: must be in (0, 1), got 1.5"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  presets:\n    - olah2017: 3\n",
                "t.yaml:5: actmax.presets[0]: expected a mapping of hyperparameters to values"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  presets:\n    - olah2099: {flip: true}\n",
                "t.yaml:5: actmax.presets[0]: unknown preset 'olah2099'"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    rotate: -5\n", "actmax.grid: rotate: setting grid: must be in [0, 180], got -5"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    scale: 1\n", "actmax.grid: scale: setting grid: must be in [0, 1), got 1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    jitter: [2, 32]\n",
                "t.yaml:5: actmax.grid.jitter: setting jitter=32: must be less than the input size (32 px), got 32"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  presets: [yosinski9]\n",
                "t.yaml:4: actmax.presets[0]: unknown preset 'yosinski9' (have unregularized, yosinski1, yosinski2, yosinski3, yosinski4, olah2017)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    decay: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]\n"
                "    lr: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    blur_radius: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]\n"
                "    blur_every: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n    init_std: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n",
                "grid has more than 100000 settings"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    decay: 1.5\n", "decay: setting grid: must be in [0, 1), got 1.5"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  objective: corner\n",
                "t.yaml:4: actmax.objective: at 1 of 'corner': expected a term (unit, unit(k), unit@(y, x), channel_mean, "
                "channel_mean(k), direction(...), direction_mean(...))"},
        BadCase{"actmax:\n  units: 0-3\n", "t.yaml:3: actmax.layers: missing: list layers or say all"},
        BadCase{"fgsm:\n  images: [missing.png]\n  eps: 0.1\n", "t.yaml:3: fgsm.images[0]: no such image file: /tmp/missing.png"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, start: 0, count: 10}\n  eps: 1.5\n",
                "t.yaml:4: fgsm.eps: must be in [0, 1] for an L-inf attack (pixel space), got 1.5"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: -0.1\n",
                "t.yaml:4: fgsm.eps: must be >= 0 (pixel space), got -0.1"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  attack: [pgd, deepfool]\n",
                "t.yaml:5: fgsm.attack: unknown attack 'deepfool' (have fgsm, pgd, mifgsm, apgd-ce, apgd-dlr)"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  norm: l0\n",
                "t.yaml:5: fgsm.norm: unknown norm 'l0' (have linf, l2)"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  attack: pgd\n  restarts: 0\n",
                "t.yaml:6: fgsm.restarts: must be in [1, 10000], got 0"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  attack: mifgsm\n  momentum: 1.5\n",
                "fgsm.momentum: must be in [0, 1], got 1.5"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  attack: apgd-ce\n  step_size: 0.01\n",
                "fgsm.step_size: APGD sets its own step size (2 eps, halved at its checkpoints): leave it out"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  target_mode: all\n",
                "t.yaml:5: fgsm.target_mode: chooses a targeted attack's target: add targeted: true"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  targeted: true\n  target_mode: [all, most_likely]\n",
                "t.yaml:6: fgsm.target_mode: unknown target mode 'most_likely' (have offset, random, least_likely, all)"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  attack: apgd-dlr\n  targeted: true\n",
                "fgsm.targeted: apgd-dlr chooses its own targets (the top 9 other classes): leave targeted out"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, start: 9995, count: 10}\n  eps: 0.1\n",
                "fgsm.images.count: slice 9995+10 exceeds the 10000 images"},
        BadCase{"fgsm:\n  images: {dataset: cifar10}\n  eps: 0.1\n",
                "fgsm.images.dataset: unknown dataset 'cifar10' (valid: fashion-mnist, mnist; or give idx_images or folder)"},
        BadCase{"fgsm:\n  images: {dataset: fashion-mnist, count: 2}\n  eps: 0.1\n  steps: 0\n",
                "t.yaml:5: fgsm.steps: must be in [1, 100000], got 0"},
        BadCase{"name: x\n", "t.yaml:1: sweep: no technique: add an actmax, invert, fgsm, featuremaps or exemplars section"},
        BadCase{"actmax:\n  layers: [conv1_1]\n", "t.yaml:1: model: missing: give model.file (TorchScript) or model.builtin", false},
        BadCase{"model: {file: nowhere.pt}\nactmax:\n  layers: [conv1_1]\n", "t.yaml:1: model.file: no such model file: /tmp/nowhere.pt",
                false},
        BadCase{"model: {builtin: resnet50}\nactmax:\n  layers: [conv1_1]\n",
                "t.yaml:1: model.builtin: unknown architecture 'resnet50' (valid: vgg11, vgg13, vgg16, vgg19)", false},
        BadCase{"name: ../../etc\nactmax:\n  layers: [conv1_1]\n", "t.yaml:2: name: use letters, digits, '_', '.', '-'"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  presets: [unregularized, unregularized]\n", "the same task appears twice"},
        BadCase{"device: tpu\nactmax:\n  layers: [conv1_1]\n", "t.yaml:2: device: expected auto, cpu or cuda"},
        BadCase{"batch_memory_gb: 0\nactmax:\n  layers: [conv1_1]\n",
                "t.yaml:2: batch_memory_gb: must be between 0.01 and 100000 (GiB of working memory per task)"},
        BadCase{"batch_memory_gb: lots\nactmax:\n  layers: [conv1_1]\n", "t.yaml:2: batch_memory_gb: expected a number, got 'lots'"},
        BadCase{"precision: fp8\nactmax:\n  layers: [conv1_1]\n", "t.yaml:2: precision: expected fp32, bf16 or fp16"},
        BadCase{"device: cpu\nprecision: fp16\nactmax:\n  layers: [conv1_1]\n", "t.yaml:3: precision: fp16 needs device: cuda"},
        BadCase{"compute:\n  fc8: {precision: fp8}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.fc8.precision: expected fp32, bf16 or fp16, got 'fp8'"},
        BadCase{"device: cpu\ncompute:\n  fc8: {precision: fp16}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:4: compute.fc8.precision: fp16 needs device: cuda"},
        BadCase{"compute:\n  fc9: {precision: bf16}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.fc9: no layer \"fc9\" in vgg11 (has"},
        BadCase{"compute:\n  relu1_1: {precision: bf16}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.relu1_1: \"relu1_1\" is a relu layer"},
        BadCase{"compute:\n  fc8: {precision: bf16, layout: nhwc}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.fc8.layout: unknown key (valid: precision, channels_last, fp32_finish)"},
        BadCase{"compute:\n  fc8: bf16\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.fc8: expected {precision: fp32|bf16|fp16, channels_last: true|false, fp32_finish: 0..1}"},
        BadCase{"precision: bf16\nfp32_finish: 1.5\nactmax:\n  layers: [conv1_1]\n", "t.yaml:3: fp32_finish: must be in [0, 1]"},
        BadCase{"precision: bf16\nfp32_finish: -0.1\nactmax:\n  layers: [conv1_1]\n", "t.yaml:3: fp32_finish: must be in [0, 1]"},
        BadCase{"fp32_finish: 0.04\nactmax:\n  layers: [conv1_1]\n", "t.yaml:2: fp32_finish: needs a reduced precision"},
        BadCase{"compute:\n  fc8: {fp32_finish: 0.1}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.fc8.fp32_finish: needs a reduced precision (bf16 or fp16) for this layer"},
        BadCase{"compute:\n  fc8: {precision: bf16, fp32_finish: all}\nactmax:\n  layers: [fc8]\n", "t.yaml:3: compute.fc8.fp32_finish:"},
        BadCase{"compute:\n  fc8: {channels_last: maybe}\nactmax:\n  layers: [fc8]\n",
                "t.yaml:3: compute.fc8.channels_last: expected true or false, got 'maybe'"},
        BadCase{"compute: [fc8]\nactmax:\n  layers: [fc8]\n", "t.yaml:2: compute: expected a mapping of layer names"},
        BadCase{"channels_last: sometimes\nactmax:\n  layers: [conv1_1]\n",
                "t.yaml:2: channels_last: expected true or false, got 'sometimes'"},
        BadCase{"invert:\n  layers: [relu1_1]\n  images: {dataset: fashion-mnist, count: 2}\n  grid:\n    momentum: 1.5\n",
                "momentum: setting grid: must be in [0, 1)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  random:\n    seed: 3\n", "t.yaml:5: actmax.random.count: missing"},
        // yaml-cpp keeps the first of two equal keys: each would silently lose a value.
        BadCase{"name: a\nname: b\nactmax:\n  layers: [conv1_1]\n", "t.yaml:3: name: duplicate key (first given at line 2)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid:\n    decay: 0\n    blur_every: 2\n    decay: [1, 2]\n",
                "t.yaml:7: actmax.grid.decay: duplicate key (first given at line 5)"},
        BadCase{"invert:\n  layers: [relu1_1]\n  images: {dataset: fashion-mnist, count: 2, count: 3}\n",
                "t.yaml:4: invert.images.count: duplicate key (first given at line 4)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  search: {eta: 1}\n", "t.yaml:4: actmax.search.eta: must be in [2, 100], got 1"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  search: {min_iterations: 500, max_iterations: 400}\n",
                "t.yaml:4: actmax.search.min_iterations: must be at most max_iterations (400), got 500"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  search: {units: 9}\n",
                "t.yaml:4: actmax.search.units: 9 is more than conv1_1 has to sample (8)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  search: {method: bayes}\n", "t.yaml:4: actmax.search.method: expected asha, got 'bayes'"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  search: {rungs: 3}\n",
                "t.yaml:4: actmax.search.rungs: unknown key (valid: method, metric, min_iterations, max_iterations, eta, units, seed)"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  grid: {iterations: [10, 20]}\n  search: {units: 2}\n",
                "t.yaml:4: actmax.grid.iterations: the search sets each setting's iterations"},
        BadCase{"actmax:\n  layers: [conv1_1]\n  seeds: [0, 1]\n  search: {units: 2}\n",
                "t.yaml:4: actmax.seeds: a search runs one seed per setting"},
        BadCase{"name: nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\n"
                "actmax:\n  layers: [conv1_1]\n",
                "t.yaml:2: name: at most 100 characters (it names the results directory), got 101"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return "case" + std::to_string(info.index); });

TEST(SweepFile, MissingFileIsAClearError) {
  try {
    load_sweep("/nonexistent/sweep.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/sweep.yaml: cannot read sweep file");
  }
}
