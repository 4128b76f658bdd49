// The projection from a tune file (runner/projection.h): per-task seconds, the makespan of
// the coordinator's most-expensive-first dispatch, and the file's checks.
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "kernels/error.h"
#include "runner/projection.h"

namespace fs = std::filesystem;
using namespace vizsweep::runner;

namespace {

nlohmann::json tune_json() {
  return {{"format", "vizsweep-tune 1"},
          {"machine", "cpu: test"},
          {"threads", 1},
          {"ranks", 2},
          {"startup_s", 1.5},
          {"finish_s", 2.0},
          {"groups",
           {{{"technique", "actmax"}, {"layer", "conv1_1"}, {"setting", 0}, {"cost", 100.0}, {"seconds", 2.0}, {"precision", "fp32"}},
            {{"technique", "actmax"}, {"layer", "conv1_1"}, {"setting", 1}, {"cost", 100.0}, {"seconds", 6.0}, {"precision", "fp32"}},
            {{"technique", "actmax"}, {"layer", "fc8"}, {"setting", 0}, {"cost", 50.0}, {"seconds", 10.0}, {"precision", "bf16"},
             {"channels_last", true}},
            {{"technique", "fgsm"}, {"layer", "*"}, {"setting", 0}, {"cost", 10.0}, {"seconds", 1.0}}}}};
}

}  // namespace

TEST(Projection, TaskSecondsScaleTheirGroupsByCost) {
  Projection p(tune_json());
  EXPECT_DOUBLE_EQ(*p.seconds({"actmax", "conv1_1", 0, 100}), 2.0);
  EXPECT_DOUBLE_EQ(*p.seconds({"actmax", "conv1_1", 1, 50}), 3.0);  // a smaller last task
  EXPECT_DOUBLE_EQ(*p.seconds({"actmax", "fc8", 0, 100}), 20.0);
  // A setting not measured takes its layer's rate (8 s per 200), then its technique's.
  EXPECT_DOUBLE_EQ(*p.seconds({"actmax", "conv1_1", 7, 100}), 4.0);
  EXPECT_DOUBLE_EQ(*p.seconds({"actmax", "conv9_9", 0, 250}), 18.0 / 250 * 250);
  EXPECT_FALSE(p.seconds({"invert", "fc8", 0, 10}).has_value());
  EXPECT_EQ(p.measured_format("fc8")->name(), "bf16, channels_last");
  EXPECT_EQ(p.measured_format("conv1_1")->name(), "fp32");
  auto j = tune_json();
  j["groups"][2]["fp32_finish"] = 0.04;  // fc8 measured with an fp32 finish
  EXPECT_EQ(*Projection(j).measured_format("fc8"), (vizsweep::sweeps::ComputeFormat{"bf16", true, 0.04}));
  EXPECT_FALSE(p.measured_format("conv2_1").has_value());
}

TEST(Projection, MakespanDispatchesTheMostExpensiveFirst) {
  EXPECT_DOUBLE_EQ(Projection::makespan({}, 4), 0.0);
  EXPECT_DOUBLE_EQ(Projection::makespan({3, 1, 2}, 1), 6.0);
  // Largest first onto whichever rank is free: {5} {4, 1} {3, 2} -> 5.
  EXPECT_DOUBLE_EQ(Projection::makespan({1, 2, 3, 4, 5}, 3), 5.0);
  // One long task bounds the wall time whatever the ranks.
  EXPECT_DOUBLE_EQ(Projection::makespan({10, 1, 1, 1}, 8), 10.0);
  EXPECT_DOUBLE_EQ(Projection::makespan({2, 2, 2, 2}, 2), 4.0);
}

TEST(Projection, ARunIsStartupTasksAndFinish) {
  Projection p(tune_json());
  const auto r = project(p,
                         {{"actmax", "conv1_1", 0, 100}, {"actmax", "conv1_1", 1, 100}, {"actmax", "fc8", 0, 50}, {"fgsm", "*", 0, 10},
                          {"exemplars", "*", -1, 1000}},
                         2);
  ASSERT_EQ(r.layers.size(), 4u);
  EXPECT_EQ(r.layers[0].layer, "conv1_1");
  EXPECT_EQ(r.layers[0].tasks, 2);
  EXPECT_DOUBLE_EQ(r.layers[0].seconds, 8.0);
  EXPECT_DOUBLE_EQ(r.task_seconds, 19.0);
  EXPECT_EQ(r.unmeasured, 1);                // exemplars: nothing of its kind measured
  EXPECT_DOUBLE_EQ(r.makespan, 10.0);        // {10} {6, 2, 1}
  EXPECT_DOUBLE_EQ(r.wall, 1.5 + 10.0 + 2.0);
}

TEST(Projection, TuneFilesAreCheckedAndFoundPerMachine) {
  const fs::path dir = fs::temp_directory_path() / ("vizsweep_projection_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  EXPECT_FALSE(Projection::find(dir.string(), "").has_value());
  const std::string path = tune_path(dir.string(), "cpu: AMD EPYC (family 26, model 2); avx512_bf16, no AMX");
  EXPECT_EQ(fs::path(path).parent_path(), dir / "tune");
  EXPECT_EQ(fs::path(path).filename(), "cpu-amd-epyc-family-26-model-2-avx512-bf16-no-amx.json");
  fs::create_directories(dir / "tune");
  std::ofstream(path) << tune_json().dump();
  std::ofstream((dir / "tune" / "broken.json").string()) << "{not json";
  EXPECT_EQ(*Projection::find(dir.string(), "cpu: test"), path);
  EXPECT_FALSE(Projection::find(dir.string(), "cuda: H100").has_value());
  EXPECT_THROW(Projection::load((dir / "tune" / "broken.json").string()), vizsweep::Error);
  std::ofstream((dir / "other.json").string()) << R"({"format": "something else", "groups": []})";
  try {
    Projection::load((dir / "other.json").string());
    ADD_FAILURE() << "a JSON file that is not a tune file was accepted";
  } catch (const vizsweep::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a tune file"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Projection, TimesReadAsPeopleAndSlurmWriteThem) {
  EXPECT_EQ(human_seconds(12.4), "12 s");
  EXPECT_EQ(human_seconds(1.26), "1.3 s");
  EXPECT_EQ(human_seconds(250), "4 min 10 s");
  EXPECT_EQ(human_seconds(7500), "2 h 05 min");
  EXPECT_EQ(slurm_time(10), "00:01:00");
  EXPECT_EQ(slurm_time(3601), "01:01:00");
  EXPECT_EQ(slurm_time(86400 + 7200), "1-02:00:00");
}
