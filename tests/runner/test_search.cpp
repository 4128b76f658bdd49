// actmax.search: the promotion rule (Asha) against hand-worked cases, and a search run by the
// coordinator over the in-process channel with a stand-in for the engine whose metric each
// setting is known: the trials and promotions recorded in the index, the tasks planned as the
// search promotes, a drained search resumed, and the choice.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "runner/coordinator.h"
#include "runner/index.h"
#include "runner/results_dir.h"
#include "runner/search.h"
#include "runner/shard.h"
#include "runner/worker.h"
#include "sweeps/sweep.h"
#include "sweeps/techniques/actmax.h"
#include "tests/runner/tiny_model.h"

namespace fs = std::filesystem;
using namespace vizsweep;
using namespace vizsweep::runner;
using vizsweep::testing::tiny_model;

TEST(Asha, PromotesTheTopThirdOfEachRungAsResultsArrive) {
  // Nine settings, eta 3, three rungs; rung-0 results arrive in setting order. With n trials
  // done, the top floor(n / 3) go on: after 3, setting 1 (0.9); after 6, 5 (0.8); after 9,
  // 3 (0.7). Worked by hand from Li et al. 2020, Algorithm 2.
  Asha a(9, 3, 3, true);
  const double m[9] = {0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4};
  std::map<int, std::vector<int>> promoted;
  for (int s = 0; s < 9; ++s) {
    auto p = a.complete(s, 0, m[s]);
    if (!p.empty()) promoted[s] = p;
  }
  EXPECT_EQ(promoted, (std::map<int, std::vector<int>>{{2, {1}}, {5, {5}}, {8, {3}}}));
  // Rung 1: three trials; the best of them goes to the top rung once all three are in.
  EXPECT_TRUE(a.complete(5, 1, 0.85).empty());
  EXPECT_TRUE(a.complete(1, 1, 0.80).empty());
  EXPECT_EQ(a.complete(3, 1, 0.95), std::vector<int>{3});
  // The top rung promotes nothing; the choice is the best at the highest rung reached.
  EXPECT_TRUE(a.complete(3, 2, 0.97).empty());
  const auto b = a.best();
  EXPECT_EQ(b.setting, 3);
  EXPECT_EQ(b.rung, 2);
  EXPECT_DOUBLE_EQ(b.metric, 0.97);
  EXPECT_EQ(a.ranking(1), (std::vector<int>{3, 5, 1}));
}

TEST(Asha, LowerIsBetterTiesAndTrialsWithoutAValue) {
  Asha a(4, 2, 2, /*higher_is_better=*/false);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(a.complete(0, 0, nan).empty());    // n = 1: none
  EXPECT_EQ(a.complete(1, 0, 0.5), std::vector<int>{1});  // n = 2: the one with a value
  EXPECT_TRUE(a.complete(2, 0, 0.5).empty());     // tie with 1: the lower setting ranks first
  EXPECT_EQ(a.complete(3, 0, 0.1), std::vector<int>{3});  // n = 4: top 2 = {3, 1}
  EXPECT_EQ(a.ranking(0), (std::vector<int>{3, 1, 2, 0}));
}

TEST(Asha, ResultsArrivingInIncreasingOrderPromoteAlmostEveryTrial) {
  // Asynchronous promotion's worst case (what `plan` calls it): each new result is the best so
  // far, so once n >= eta every arrival is in the top floor(n / eta) and goes on.
  Asha a(12, 2, 3, true);
  int promoted = 0;
  for (int s = 0; s < 12; ++s) promoted += static_cast<int>(a.complete(s, 0, s).size());
  EXPECT_EQ(promoted, 10);  // settings 2..11; synchronous successive halving would take 4
}

TEST(Asha, ARestoredStateDecidesAsTheUninterruptedOne) {
  // Any prefix of the completions restored into a fresh state, then the rest: the same
  // promotions as one state that saw everything.
  const std::vector<std::tuple<int, int, double>> order = {{0, 0, .3}, {1, 0, .8}, {2, 0, .5}, {3, 0, .9}, {1, 1, .7}, {4, 0, .2},
                                                           {5, 0, .6}, {3, 1, .4}, {6, 0, .95}, {7, 0, .1}, {6, 1, .99}, {8, 0, .55}};
  Asha whole(9, 3, 2, true);
  std::vector<std::vector<int>> want;
  for (const auto& [s, r, m] : order) want.push_back(whole.complete(s, r, m));
  for (size_t cut = 0; cut <= order.size(); ++cut) {
    Asha before(9, 3, 2, true);
    for (size_t i = 0; i < cut; ++i) before.complete(std::get<0>(order[i]), std::get<1>(order[i]), std::get<2>(order[i]));
    Asha after(9, 3, 2, true);
    for (size_t i = 0; i < cut; ++i) {
      const auto& [s, r, m] = order[i];
      after.restore(s, r, m, before.promoted(s, r));
    }
    for (size_t i = cut; i < order.size(); ++i)
      EXPECT_EQ(after.complete(std::get<0>(order[i]), std::get<1>(order[i]), std::get<2>(order[i])), want[i]) << "cut " << cut;
    EXPECT_EQ(after.best().setting, whole.best().setting);
  }
}

namespace {

// Six settings (lr 1..3 x blur_radius 0, 1), rungs of 2, 4 and 8 iterations, eta 2, 2 units
// of conv1_1. The stand-in engine's robustness is known per setting and rung, so the score
// (robustness x (1 - hf_energy) without a judge or exemplars) ranks the settings:
// 0.1 + 0.1 x setting + 0.01 x rung, reversed for even settings above 2.
double robustness(int base, int rung) { return (base > 2 && base % 2 == 0 ? 0.05 : 0.1 + 0.1 * base) + 0.01 * rung; }

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    quiet_hdf5();
    dir = vizsweep::testing::fresh_results_dir("vizsweep_search_");
    spec = sweeps::parse_sweep("model: {builtin: vgg11}\nactmax:\n  layers: [conv1_1]\n  grid: {lr: [1, 2, 3], blur_radius: [0, 1], blur_every: 4}\n"
                               "  search: {min_iterations: 2, max_iterations: 8, eta: 2, units: 2, seed: 1}\n",
                               "t.yaml", dir.string());
    tasks = sweeps::expand(spec, tiny_model());
    search = &spec.get<sweeps::ActmaxSection>()->search;
    ASSERT_EQ(tasks.size(), 18u);  // 6 settings x 3 rungs, one task each
  }
  void TearDown() override {
    index.reset();
    fs::remove_all(dir);
  }
  void open_index() {
    index = std::make_unique<ResultIndex>(ResultsDir(dir.string()).index(), false);
    SweepRecord rec{"t", spec.text, sweeps::spec_hash(spec, tasks), "builtin", "", "test", "test"};
    prepared = prepare_run(*index, spec, tasks, rec, {}, dir.string());
  }
  json rows(const sweeps::Task& t, TaskData& d) {
    json out = json::object();
    d.attributes = {{"technique", t.technique}, {"layer", t.layer}};
    if (t.technique != "actmax") return out;  // an exemplar scan's task: no rows needed here
    auto& r = out["actmax_results"] = json::array();
    const int base = static_cast<int>(search->base_of(t.setting)), rung = search->rung_of(t.setting);
    for (int64_t u : t.items) {
      d.images.push_back({"unit_" + std::to_string(u), 4, 4, 1, std::vector<uint8_t>(16, 9)});
      r.push_back({{"unit", u}, {"final_activation", 1.0}, {"hf_energy", 0.25}, {"total_variation", 0.1}, {"saturation", 0.0},
                   {"robustness", robustness(base, rung)}, {"is_argmax", 0},
                   {"dataset", ResultsDir::dataset(t.key, "unit_" + std::to_string(u))}});
    }
    return out;
  }
  // One run of rank 0 alone with the search deciding; `drain` as in the coordinator's tests.
  std::unique_ptr<Coordinator> run(std::function<bool()> drain, const std::string& shard) {
    open_index();
    LocalChannel local;
    const TaskRunner runner = [&](const sweeps::Task& t, TaskData& d, const json&) {
      ++computed;
      return rows(t, d);
    };
    std::thread worker([&] { worker_loop(runner, tasks, local, dir.string(), shard, 0, false); });
    auto c = std::make_unique<Coordinator>(Coordinator{*index, tasks, 1, 1, 3600.0, 60.0, &local});
    c->drain_requested = std::move(drain);
    c->queue.assign(prepared.todo.begin(), prepared.todo.end());
    c->attempts = prepared.attempts;
    c->total = prepared.planned;
    c->done = prepared.already;
    c->on_done = [s = prepared.search](int64_t i) { return s->on_done(i); };
    c->loop();
    worker.join();
    return c;
  }
  // search_trials as (base, rung) -> (value, promoted), and the completion order.
  std::map<std::pair<int, int>, std::pair<double, bool>> trials(std::vector<std::pair<int, int>>* order = nullptr) {
    std::map<std::pair<int, int>, std::pair<double, bool>> out;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(index->handle(),
                       "SELECT base_setting, rung, value, promoted_at IS NOT NULL FROM search_trials ORDER BY completed", -1, &st,
                       nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const std::pair<int, int> k{sqlite3_column_int(st, 0), sqlite3_column_int(st, 1)};
      out[k] = {sqlite3_column_double(st, 2), sqlite3_column_int(st, 3) != 0};
      if (order) order->push_back(k);
    }
    sqlite3_finalize(st);
    return out;
  }

  fs::path dir;
  sweeps::SweepSpec spec;
  const sweeps::SearchSpec* search = nullptr;
  std::vector<sweeps::Task> tasks;
  std::unique_ptr<ResultIndex> index;
  PreparedRun prepared;
  std::atomic<int> computed{0};
};

}  // namespace

TEST_F(SearchTest, TheCoordinatorPromotesAsTrialsCompleteAndRecordsEveryDecision) {
  auto c = run(nullptr, ResultsDir::shard(0, "one"));
  std::vector<std::pair<int, int>> order;
  const auto t = trials(&order);
  // Replay of the rule over the recorded completion order (the rule written out here, not
  // Asha's): when a trial completes at rung r, the top floor(n_r / 2) of rung r go on.
  std::map<int, std::map<int, double>> done;
  std::set<std::pair<int, int>> promoted;
  for (const auto& k : order) {
    done[k.second][k.first] = t.at(k).first;
    if (k.second + 1 >= 3) continue;
    std::vector<std::pair<double, int>> rank;
    for (const auto& [s, v] : done[k.second]) rank.push_back({-v, s});
    std::sort(rank.begin(), rank.end());
    for (size_t i = 0; i < rank.size() / 2; ++i) promoted.insert({rank[i].second, k.second});
  }
  for (const auto& [k, v] : t) {
    EXPECT_NEAR(v.first, 0.75 * robustness(k.first, k.second), 1e-12) << "score = robustness x (1 - hf_energy)";
    EXPECT_EQ(v.second, promoted.count(k) > 0) << "setting " << k.first << " rung " << k.second;
  }
  // Every setting ran rung 0; a later rung only for a setting promoted from the one before,
  // and the tasks of the others were never planned, let alone computed.
  int planned = 0;
  for (int b = 0; b < 6; ++b) {
    EXPECT_TRUE(t.count({b, 0}));
    for (int r = 1; r < 3; ++r) {
      EXPECT_EQ(t.count({b, r}) > 0, promoted.count({b, r - 1}) > 0);
      planned += t.count({b, r}) > 0;
    }
  }
  EXPECT_EQ(computed.load(), 6 + planned);
  EXPECT_EQ(static_cast<int>(index->tasks().size()), 6 + planned);
  EXPECT_EQ(c->done, 6 + planned);
  EXPECT_EQ(c->total, 6 + planned);
  // The choice: setting 5 is the best at every rung, so whatever order the results came in
  // it is among the top half of each rung once that rung's trials are in, and reaches the top.
  const std::string summary = prepared.search->summary();
  EXPECT_NE(summary.find("search conv1_1: chosen lr=3,blur_radius=1 (score 0.4650 at 8 iterations, rung 3 of 3)"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("rank correlation with rung 3's ranking"), std::string::npos) << summary;
  // Rerun: nothing to do, nothing decided again.
  index.reset();
  computed = 0;
  auto again = run(nullptr, ResultsDir::shard(0, "two"));
  EXPECT_EQ(computed.load(), 0);
  EXPECT_TRUE(prepared.todo.empty());
  EXPECT_EQ(trials(), t);
}

TEST_F(SearchTest, ADrainedSearchResumesWithItsDecisionsAndChoosesTheSame) {
  // The uninterrupted search, for reference.
  run(nullptr, ResultsDir::shard(0, "ref"));
  const auto reference = trials();
  auto chosen = [](const std::string& summary) { return summary.substr(0, summary.find(')')); };
  const std::string want = chosen(prepared.search->summary());
  index.reset();
  fs::remove_all(dir);
  fs::create_directories(ResultsDir(dir.string()).shards());
  // Drained after 2, 5 and 7 tasks: each run goes on from what the last recorded, and no
  // recorded trial, value, completion order or promotion changes afterwards.
  computed = 0;
  std::map<std::pair<int, int>, std::pair<double, bool>> seen;
  std::vector<std::pair<int, int>> seen_order;
  for (int stop_after : {2, 5, 7, -1}) {
    index.reset();
    std::function<bool()> drain;
    if (stop_after > 0) drain = [&, stop_after] { return computed.load() >= stop_after; };
    run(drain, ResultsDir::shard(0, "part" + std::to_string(stop_after)));
    std::vector<std::pair<int, int>> order;
    const auto now = trials(&order);
    ASSERT_GE(order.size(), seen_order.size());
    EXPECT_TRUE(std::equal(seen_order.begin(), seen_order.end(), order.begin())) << "after " << stop_after;
    for (const auto& [k, v] : seen) {
      EXPECT_EQ(now.at(k).first, v.first);
      if (v.second) EXPECT_TRUE(now.at(k).second) << "a promotion stays";
    }
    seen = now, seen_order = order;
  }
  // The same values as the uninterrupted search for the trials both ran (which of the
  // mid-ranked settings went on early can differ with the order results came in), and the
  // same choice.
  for (const auto& [k, v] : seen)
    if (reference.count(k)) EXPECT_EQ(v.first, reference.at(k).first);
  for (int b = 0; b < 6; ++b) EXPECT_TRUE(seen.count({b, 0}));
  EXPECT_EQ(chosen(prepared.search->summary()), want);
  EXPECT_EQ(computed.load(), static_cast<int>(index->tasks().size())) << "nothing computed twice";
}

TEST_F(SearchTest, FirstRungTasksAnEarlierVersionPlannedBeforeTheScanEndedRunOnce) {
  // With exemplars that score conv1_1, this version plans the first rung once the scan is
  // done. An earlier one planned it at once: a directory it left mid-scan holds the first
  // rung's tasks already. Resumed, each task runs once and each trial is recorded once.
  spec = sweeps::parse_sweep("model: {builtin: vgg11}\nactmax:\n  layers: [conv1_1]\n  grid: {lr: [1, 2, 3], blur_radius: [0, 1], blur_every: 4}\n"
                             "  search: {min_iterations: 2, max_iterations: 8, eta: 2, units: 2, seed: 1}\n"
                             "exemplars:\n  layers: [conv1_1]\n  images: {dataset: fashion-mnist, split: test, count: 200}\n"
                             "  images_per_task: 100\n  bottom: true\n  feature_model: " VIZSWEEP_MODELS "/fashion_judge.pt\n",
                             "t.yaml", dir.string());
  tasks = sweeps::expand(spec, tiny_model());
  search = &spec.get<sweeps::ActmaxSection>()->search;
  ASSERT_TRUE(scored_by_exemplars(spec, "conv1_1"));
  std::vector<sweeps::Task> earlier;  // the scan and the first rung
  for (const auto& t : tasks)
    if (t.technique == "exemplars" || search->rung_of(t.setting) == 0) earlier.push_back(t);
  ASSERT_EQ(earlier.size(), 2u + 6u);
  {
    ResultIndex old(ResultsDir(dir.string()).index(), false);
    SweepRecord rec{"t", spec.text, sweeps::spec_hash(spec, tasks), "builtin", "", "test", "test"};
    old.add_plan(old.register_sweep(rec), spec, earlier, {});
  }
  run(nullptr, ResultsDir::shard(0, "resumed"));
  const auto t = trials();
  for (int b = 0; b < 6; ++b) EXPECT_TRUE(t.count({b, 0})) << "setting " << b;
  const auto rows = index->tasks();
  EXPECT_EQ(computed.load(), static_cast<int>(rows.size())) << "each task computed once";
  for (const auto& [key, row] : rows) EXPECT_EQ(row.state, TaskState::Done) << key;
  EXPECT_EQ(static_cast<int>(t.size()), static_cast<int>(rows.size()) - 2) << "one trial per actmax task (one task each)";
}
