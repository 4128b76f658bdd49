// The compute-format guard (kernels/tune.h) on made-up probes: which format is chosen, and
// that one failing the guard never is, whatever its speed.
#include <cmath>
#include <map>
#include <stdexcept>

#include <gtest/gtest.h>

#include "kernels/tune.h"

using namespace vizsweep::kernels;

namespace {

struct Fake {
  double seconds;
  std::vector<double> objective, hf;
};

// tune_layer over formats whose probes return `fakes` (fp32 NCHW must be among them); counts
// the calls per format. A format with an fp32 finish that `fakes` lacks probes as the same
// format without it (a finish that changes nothing).
LayerTuning tune(const std::map<std::string, Fake>& fakes, std::map<std::string, int>* calls = nullptr, int repeats = 2) {
  std::vector<ComputeFormat> formats;
  for (const auto& [name, f] : fakes) {
    if (name.find("fp32_finish") != std::string::npos) continue;  // tune_layer's own retries
    const auto comma = name.find(',');
    formats.push_back({name.substr(0, comma), comma != std::string::npos});
  }
  return tune_layer("fc8", formats,
                    [&](const ComputeFormat& f, bool warm_up) {
                      if (calls && !warm_up) ++(*calls)[f.name()];
                      auto it = fakes.find(f.name());
                      if (it == fakes.end()) it = fakes.find(ComputeFormat{f.precision, f.channels_last}.name());
                      const Fake& x = it->second;
                      return FormatProbe{x.seconds, x.objective, x.hf};
                    },
                    repeats);
}

const Fake kRef{1.0, {10, 20, 30, 40}, {0.2, 0.2, 0.2, 0.2}};

const FormatTrial& trial(const LayerTuning& t, const std::string& name) {
  for (const auto& x : t.trials)
    if (x.format.name() == name) return x;
  throw std::runtime_error("no trial " + name);
}

}  // namespace

TEST(TuneGuard, TheFastestFormatThatPassesIsChosen) {
  auto t = tune({{"fp32", kRef},
                 {"fp32, channels_last", {0.9, {10, 20, 30, 40}, {0.2, 0.2, 0.2, 0.2}}},
                 {"bf16", {0.4, {10.1, 19.9, 30, 40.2}, {0.21, 0.2, 0.2, 0.2}}},
                 {"bf16, channels_last", {0.3, {10, 20, 30, 40}, {0.2, 0.2, 0.22, 0.2}}}});
  EXPECT_EQ(t.chosen.name(), "bf16, channels_last");
  EXPECT_NEAR(t.speedup, 1.0 / 0.3, 1e-9);
  ASSERT_EQ(t.trials.size(), 4u);
  EXPECT_EQ(t.trials[0].format.name(), "fp32");  // the reference first, then by speed
  EXPECT_EQ(t.trials[1].format.name(), "bf16, channels_last");
  EXPECT_NEAR(trial(t, "bf16").reached, 100.2 / 100.0, 1e-12);
  EXPECT_NEAR(trial(t, "bf16").min_unit, 19.9 / 20.0, 1e-12);
  EXPECT_NEAR(trial(t, "bf16, channels_last").hf_diff, 0.005, 1e-12);
}

TEST(TuneGuard, AFasterFormatThatFailsIsNeverChosen) {
  // Short of the summed objective.
  auto a = tune({{"fp32", kRef}, {"bf16", {0.2, {10, 20, 30, 38.5}, {0.2, 0.2, 0.2, 0.2}}}});
  EXPECT_EQ(a.chosen.name(), "fp32");
  EXPECT_FALSE(trial(a, "bf16").pass);
  EXPECT_NE(trial(a, "bf16").why.find("reached 0.9850"), std::string::npos) << trial(a, "bf16").why;
  // The sum is fine (another unit climbs further) but one unit is left behind: the failure
  // seen under bf16 on the AMX machine.
  auto b = tune({{"fp32", kRef}, {"bf16", {0.2, {5, 25, 30, 45}, {0.2, 0.2, 0.2, 0.2}}}});
  EXPECT_EQ(b.chosen.name(), "fp32");
  EXPECT_GE(trial(b, "bf16").reached, kMinReached);
  EXPECT_NEAR(trial(b, "bf16").min_unit, 0.5, 1e-12);
  EXPECT_NE(trial(b, "bf16").why.find("a unit reached 0.500"), std::string::npos) << trial(b, "bf16").why;
  // Same activation, other pictures: the high-frequency energy moved.
  auto c = tune({{"fp32", kRef}, {"bf16", {0.2, {10, 20, 30, 40}, {0.3, 0.3, 0.3, 0.3}}}});
  EXPECT_EQ(c.chosen.name(), "fp32");
  EXPECT_NE(trial(c, "bf16").why.find("hf_energy moved by 0.100"), std::string::npos) << trial(c, "bf16").why;
  // NaN objectives fail, they do not compare as passing.
  auto d = tune({{"fp32", kRef}, {"bf16", {0.2, {10, 20, 30, std::nan("")}, {0.2, 0.2, 0.2, 0.2}}}});
  EXPECT_EQ(d.chosen.name(), "fp32");
  EXPECT_FALSE(trial(d, "bf16").pass);
}

TEST(TuneGuard, TimingNoiseDoesNotChangeTheFormat) {
  // Passing, but only 5% faster: below kMinSpeedup, fp32 stays.
  auto t = tune({{"fp32", kRef}, {"fp32, channels_last", {0.95, {10, 20, 30, 40}, {0.2, 0.2, 0.2, 0.2}}}});
  EXPECT_EQ(t.chosen.name(), "fp32");
  EXPECT_TRUE(trial(t, "fp32, channels_last").pass);
  EXPECT_EQ(t.speedup, 1.0);
}

TEST(TuneGuard, ShortProbesAreRepeatedAndLongOnesTimedOnce) {
  std::map<std::string, int> calls;
  Fake slow = kRef;
  slow.seconds = kLongProbe + 1;
  tune({{"fp32", slow}, {"bf16", {0.01, {10, 20, 30, 40}, {0.2, 0.2, 0.2, 0.2}}}}, &calls, 3);
  EXPECT_EQ(calls["fp32"], 1);
  EXPECT_EQ(calls["bf16"], 3);
}

TEST(TuneGuard, CandidateFormatsFollowTheDevice) {
  std::vector<FormatTrial> skipped;
  const auto gpu = candidate_formats(true, &skipped);
  EXPECT_EQ(gpu.size(), 6u);  // fp32, bf16, fp16, each in both layouts
  EXPECT_TRUE(skipped.empty());
  skipped.clear();
  const auto cpu = candidate_formats(false, &skipped);
  for (const auto& f : cpu) EXPECT_NE(f.precision, "fp16");
  EXPECT_EQ(cpu[0].name(), "fp32");
  if (cpu_has_bf16_units()) {
    EXPECT_EQ(cpu.size(), 4u);
    EXPECT_TRUE(skipped.empty());
  } else {  // bf16 is left out, and why is said
    EXPECT_EQ(cpu.size(), 2u);
    ASSERT_EQ(skipped.size(), 2u);
    EXPECT_NE(skipped[0].why.find("no bf16 units"), std::string::npos);
  }
  EXPECT_NE(cpu_kind().find("family"), std::string::npos) << cpu_kind();
}

TEST(TuneGuard, AFailingReducedPrecisionIsTriedAgainWithAnFp32Finish) {
  // bf16 alone falls short (0.985); with the fp32 finish it passes, a little slower, and is
  // chosen. fp32 formats that fail are not retried: they have nothing to finish.
  std::map<std::string, int> calls;
  auto t = tune({{"fp32", kRef},
                 {"fp32, channels_last", {0.5, {10, 20, 30, 38}, {0.2, 0.2, 0.2, 0.2}}},
                 {"bf16, channels_last", {0.25, {10, 20, 30, 38.5}, {0.2, 0.2, 0.2, 0.2}}},
                 {"bf16, channels_last, fp32_finish 0.04", {0.3, {10, 20, 30, 39.9}, {0.2, 0.2, 0.2, 0.2}}}},
                &calls);
  EXPECT_FALSE(trial(t, "bf16, channels_last").pass);
  EXPECT_TRUE(trial(t, "bf16, channels_last, fp32_finish 0.04").pass);
  EXPECT_EQ(t.chosen, (ComputeFormat{"bf16", true, kFp32Finish}));
  EXPECT_NEAR(t.speedup, 1.0 / 0.3, 1e-9);
  EXPECT_EQ(calls["bf16, channels_last, fp32_finish 0.04"], 2);  // probed like the others
  EXPECT_EQ(calls.count("fp32, channels_last, fp32_finish 0.04"), 0u);
  EXPECT_EQ(t.trials.size(), 4u);
  // A finish that does not rescue the format leaves fp32.
  auto u = tune({{"fp32", kRef}, {"bf16", {0.2, {10, 20, 30, 38.5}, {0.2, 0.2, 0.2, 0.2}}}});
  EXPECT_EQ(u.chosen.name(), "fp32");
  EXPECT_FALSE(trial(u, "bf16, fp32_finish 0.04").pass);
  // A format that passes is not retried.
  auto v = tune({{"fp32", kRef}, {"bf16", {0.2, {10, 20, 30, 40}, {0.2, 0.2, 0.2, 0.2}}}});
  EXPECT_EQ(v.trials.size(), 2u);
  EXPECT_EQ(v.chosen.name(), "bf16");
}
