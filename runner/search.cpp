#include "runner/search.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <tuple>

#include "kernels/error.h"
#include "runner/engine.h"
#include "runner/schema.h"
#include "runner/sql.h"
#include "sweeps/hash.h"
#include "sweeps/techniques/actmax.h"
#include "sweeps/techniques/exemplars.h"

namespace vizsweep::runner {

Asha::Asha(int settings, int rungs, int eta, bool higher_is_better)
    : settings_(settings), rungs_(rungs), eta_(eta), higher_(higher_is_better),
      done_(static_cast<size_t>(rungs)), promoted_(static_cast<size_t>(rungs), std::vector<bool>(static_cast<size_t>(settings), false)) {}

bool Asha::better(double a, int sa, double b, int sb) const {
  // NaN (a trial without a value) ranks last; then the better value; then the lower setting.
  if (std::isnan(a) != std::isnan(b)) return std::isnan(b);
  if (!std::isnan(a) && a != b) return higher_ ? a > b : a < b;
  return sa < sb;
}

std::vector<int> Asha::ranking(int rung) const {
  std::vector<int> out;
  for (const auto& [s, m] : done_.at(static_cast<size_t>(rung))) out.push_back(s);
  const auto& d = done_.at(static_cast<size_t>(rung));
  std::sort(out.begin(), out.end(), [&](int a, int b) { return better(d.at(a), a, d.at(b), b); });
  return out;
}

std::vector<int> Asha::complete(int setting, int rung, double metric) {
  if (setting < 0 || setting >= settings_ || rung < 0 || rung >= rungs_) throw std::logic_error("Asha::complete: no such trial");
  done_[static_cast<size_t>(rung)][setting] = metric;
  std::vector<int> out;
  if (rung + 1 >= rungs_) return out;
  const auto order = ranking(rung);
  const size_t top = order.size() / static_cast<size_t>(eta_);
  for (size_t i = 0; i < top; ++i) {
    auto p = promoted_[static_cast<size_t>(rung)][static_cast<size_t>(order[i])];
    if (!p) {
      p = true;
      out.push_back(order[i]);
    }
  }
  return out;
}

void Asha::restore(int setting, int rung, double metric, bool promoted) {
  if (setting < 0 || setting >= settings_ || rung < 0 || rung >= rungs_) throw std::logic_error("Asha::restore: no such trial");
  done_[static_cast<size_t>(rung)][setting] = metric;
  promoted_[static_cast<size_t>(rung)][static_cast<size_t>(setting)] = promoted;
}

bool Asha::completed(int setting, int rung) const { return done_.at(static_cast<size_t>(rung)).count(setting) > 0; }
bool Asha::promoted(int setting, int rung) const {
  return promoted_.at(static_cast<size_t>(rung)).at(static_cast<size_t>(setting));
}
double Asha::metric(int setting, int rung) const { return done_.at(static_cast<size_t>(rung)).at(setting); }

Asha::Best Asha::best() const {
  Best b;
  for (int r = rungs_ - 1; r >= 0; --r) {
    const auto order = ranking(r);
    if (order.empty()) continue;
    b.setting = order.front(), b.rung = r, b.metric = metric(order.front(), r);
    break;
  }
  return b;
}

namespace {

// Metrics a trial can be ranked by: their column in actmax_results and direction, from the
// schema's metrics table (the one declaration of them).
struct MetricInfo {
  std::string column;
  bool higher_is_better = true;
};

std::map<std::string, MetricInfo> actmax_metrics() {
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) throw Error("index", "cannot open an in-memory database");
  std::map<std::string, MetricInfo> out;
  try {
    exec(db, schema_sql().c_str());
    Query q(db, "SELECT name, column_name, higher_is_better FROM metrics WHERE technique = 'actmax' AND aggregate = 'mean' ORDER BY name");
    while (q.row()) out[q.text(0)] = {q.text(1), q.i64(2) != 0};
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  sqlite3_close(db);
  return out;
}

// Columns the run's finishing step fills in (runner/finish.h), and a trial itself where the
// exemplars score its layer (scored_by_exemplars): a search ranks by them only there.
const std::set<std::string> kFromExemplars = {"mis", "activation_ratio"};

// Spearman's rank correlation of two rankings over the settings both hold (NaN under 3).
double spearman(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> common;
  for (int s : a)
    if (std::find(b.begin(), b.end(), s) != b.end()) common.push_back(s);
  const size_t n = common.size();
  if (n < 3) return std::numeric_limits<double>::quiet_NaN();
  auto rank_in = [&](const std::vector<int>& order, int s) {
    size_t r = 0;
    for (int x : order) {
      if (x == s) break;
      if (std::find(common.begin(), common.end(), x) != common.end()) ++r;
    }
    return static_cast<double>(r);
  };
  double d2 = 0;
  for (int s : common) {
    const double d = rank_in(a, s) - rank_in(b, s);
    d2 += d * d;
  }
  const double nn = static_cast<double>(n);
  return 1.0 - 6.0 * d2 / (nn * (nn * nn - 1.0));
}

}  // namespace

bool scored_by_exemplars(const sweeps::SweepSpec& spec, const std::string& layer) {
  const auto* ex = spec.get<sweeps::ExemplarsSection>();
  if (!ex || !ex->bottom || mis_feature_model(spec).empty()) return false;
  // `layers: all` scans every conv and fc layer (a searched layer of another kind finds no
  // lists, and its images stay unscored, as at the end).
  return ex->all_layers || std::any_of(ex->layers.begin(), ex->layers.end(), [&](const sweeps::Located& l) { return l.name == layer; });
}

void check_search(const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks, const std::string& output_layer) {
  const auto* sec = spec.get<sweeps::ActmaxSection>();
  if (!sec || !sec->search.active()) return;
  const auto& q = sec->search;
  const auto metrics = actmax_metrics();
  auto fail = [&](const std::string& why) {
    throw Error(spec.file + ":" + std::to_string(q.metric_line), "actmax.search.metric: " + why);
  };
  if (!metrics.count(q.metric)) {
    std::string have;
    for (const auto& [name, m] : metrics) have += (have.empty() ? "" : ", ") + name;
    fail("no actmax metric '" + q.metric + "' in the index's metrics table (a search can rank by " + have + ")");
  }
  if (kFromExemplars.count(q.metric))
    for (const auto& t : tasks)
      if (t.technique == "actmax" && !scored_by_exemplars(spec, t.layer))
        fail(q.metric + " needs natural exemplars of every searched layer (an exemplars section with bottom: true that "
                        "scans " + t.layer + "); rank by score, activation, robustness, ...");
  if (q.metric == "judge_prob")
    for (const auto& t : tasks)
      if (t.technique == "actmax" && (sec->judge.empty() || t.layer != output_layer))
        fail("judge_prob exists only for the class units under actmax.judge; " + t.layer + " has none");
}

std::string search_plan(const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks) {
  const auto* sec = spec.get<sweeps::ActmaxSection>();
  if (!sec || !sec->search.active()) return "";
  const auto& q = sec->search;
  // Per layer and rung: the cost of one trial (all settings' trials of a rung cost alike but
  // for their settings' own work, so the mean of the rung's).
  std::map<std::pair<std::string, int>, std::pair<double, int>> rung_cost;  // sum over trials, trials
  std::map<std::tuple<std::string, size_t, int>, double> trial_cost;
  double worst = 0, grid = 0;
  for (const auto& t : tasks) {
    if (t.technique != "actmax") continue;
    trial_cost[{t.layer, q.base_of(t.setting), q.rung_of(t.setting)}] += t.cost;
    worst += t.cost;
    if (q.rung_of(t.setting) == q.rungs() - 1) grid += t.cost;
  }
  for (const auto& [k, c] : trial_cost) {
    auto& rc = rung_cost[{std::get<0>(k), std::get<2>(k)}];
    rc.first += c, rc.second += 1;
  }
  double expected = 0;
  std::string counts;
  for (const auto& [k, rc] : rung_cost) {
    int64_t n = static_cast<int64_t>(q.settings);
    for (int r = 0; r < k.second; ++r) n /= q.eta;
    expected += static_cast<double>(n) * rc.first / rc.second;
  }
  int64_t n = static_cast<int64_t>(q.settings);
  for (int r = 0; r < q.rungs(); ++r, n /= q.eta) counts += (counts.empty() ? "" : ", ") + std::to_string(n);
  std::string waiting;  // layers whose trials the exemplars score
  for (const auto& [k, rc] : rung_cost)
    if (k.second == 0 && scored_by_exemplars(spec, k.first)) waiting += (waiting.empty() ? "" : ", ") + k.first;
  char b[640];
  std::snprintf(b, sizeof b,
                "search cost: expected %.3f TFLOP (trials per rung and layer %s: the top 1/%lld of each rung), worst case %.3f TFLOP "
                "(every trial promoted: the tables above), the full grid at %d iterations %.3f TFLOP: expected %.1fx less than the grid\n",
                expected / 1e12, counts.c_str(), static_cast<long long>(q.eta), worst / 1e12, q.budgets.back(), grid / 1e12,
                expected > 0 ? grid / expected : 0.0);
  std::string out = b;
  if (!waiting.empty())
    out += "search trials at " + waiting + " wait for the exemplar scan and are scored against it as they complete (" + q.metric +
           " as the finished sweep reports it)\n";
  return out;
}

std::string search_progress(const ResultIndex& index) {
  sqlite3* db = index.handle();
  {
    Query has(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'search_trials'");
    if (!has.row() || has.i64(0) == 0) return "";
  }
  Query q(db,
          "SELECT st.layer, st.rung, st.iterations, COUNT(*), SUM(st.promoted_at IS NOT NULL), "
          "CASE WHEN MAX(m.higher_is_better) = 0 THEN MIN(st.value) ELSE MAX(st.value) END, st.metric "
          "FROM search_trials st LEFT JOIN metrics m ON m.name = st.metric GROUP BY st.layer, st.rung "
          "ORDER BY (SELECT MIN(completed) FROM search_trials x WHERE x.layer = st.layer), st.rung");
  std::string out, layer;
  char b[256];
  while (q.row()) {
    if (q.text(0) != layer) {
      layer = q.text(0);
      out += (out.empty() ? "\nsearch (" + q.text(6) + "; trials completed, promoted, best so far):\n" : "\n") + ("  " + layer + ":");
    }
    char value[32] = "n/a";
    if (!q.is_null(5)) std::snprintf(value, sizeof value, "%.4g", q.f64(5));
    std::snprintf(b, sizeof b, "%s rung %lld (%lld it) %lld, %lld, %s", out.back() == ':' ? "" : ";", static_cast<long long>(q.i64(1) + 1),
                  static_cast<long long>(q.i64(2)), static_cast<long long>(q.i64(3)), static_cast<long long>(q.i64(4)), value);
    out += b;
  }
  return out.empty() ? out : out + "\n";
}

struct SearchRun::Impl {
  ResultIndex& index;
  const std::vector<sweeps::Task>& tasks;
  const sweeps::ActmaxSection* sec = nullptr;
  int64_t sweep_id = 0;
  MetricInfo metric;
  struct Trial {
    std::string layer;
    int base = 0, rung = 0;
    std::vector<int64_t> tasks;
    int64_t units = 0;
    size_t done = 0;
  };
  std::vector<Trial> trials;
  std::map<std::tuple<std::string, int, int>, size_t> by_key;
  std::vector<int64_t> trial_of;  // per task: its trial, -1 for tasks outside the search
  std::vector<bool> planned;
  std::map<std::string, Asha> asha;
  std::vector<std::string> layers;  // in the sweep's order
  int64_t completed = 0;
  // Layers whose trials the exemplars score, the exemplars tasks, those done, and each scored
  // layer's lists once read (unit -> context entry).
  std::set<std::string> scored;
  std::vector<int64_t> exemplar_tasks;
  std::set<int64_t> exemplars_done;
  bool scan_done = true;
  std::map<std::string, std::map<int64_t, nlohmann::json>> lists;

  Impl(ResultIndex& i, const std::vector<sweeps::Task>& t) : index(i), tasks(t) {}
  bool active() const { return sec != nullptr; }
  const sweeps::SearchSpec& search() const { return sec->search; }
  Trial* trial(const std::string& layer, int base, int rung) {
    auto it = by_key.find({layer, base, rung});
    return it == by_key.end() ? nullptr : &trials[it->second];
  }
  std::vector<int64_t> plan_trial(Trial& tr) {
    std::vector<const sweeps::Task*> add;
    for (int64_t i : tr.tasks)
      if (!planned[static_cast<size_t>(i)]) {
        planned[static_cast<size_t>(i)] = true;
        add.push_back(&tasks[static_cast<size_t>(i)]);
      }
    index.add_tasks(sweep_id, add);
    std::vector<int64_t> out;
    for (const auto* t : add) out.push_back(t - tasks.data());
    return out;
  }
  // The trial's last task is recorded: its metric, its row, and the promotions it brings.
  std::vector<int64_t> complete(Trial& tr);
  // The exemplar scan is complete: plans the rung-0 trials that waited for it, in the order a
  // run starts its own (shuffled, then the most expensive first: SearchRun::shuffle; in the
  // grid's order, nearly every trial would be promoted).
  std::vector<int64_t> scan_complete() {
    scan_done = true;
    std::vector<int64_t> out;
    for (auto& tr : trials)
      if (tr.rung == 0 && scored.count(tr.layer)) {
        const auto added = plan_trial(tr);
        out.insert(out.end(), added.begin(), added.end());
      }
    shuffle(out);
    std::stable_sort(out.begin(), out.end(), [&](int64_t a, int64_t b) { return tasks[a].cost > tasks[b].cost; });
    return out;
  }
  void shuffle(std::vector<int64_t>& todo) const {
    sweeps::SplitMix64 next(0x5eed5eed5eed5eedULL ^ search().seed);
    for (size_t i = todo.size(); i > 1; --i) std::swap(todo[i - 1], todo[next() % i]);
  }
  const std::map<int64_t, nlohmann::json>& layer_lists(const std::string& layer);
};

const std::map<int64_t, nlohmann::json>& SearchRun::Impl::layer_lists(const std::string& layer) {
  auto it = lists.find(layer);
  if (it != lists.end()) return it->second;
  auto& out = lists[layer];
  Query q(index.handle(), "SELECT unit, kind, image_id, activation, box_y0, box_y1, box_x0, box_x1 FROM exemplars WHERE layer = ? "
                          "ORDER BY unit, kind, rank");
  q.bind(1, layer);
  while (q.row()) {
    auto& u = out[q.i64(0)];
    if (u.is_null()) u = {{"top", nlohmann::json::array()}, {"bottom", nlohmann::json::array()}, {"top1", 0.0}};
    auto& list = u[q.text(1)];
    if (q.text(1) == "top" && list.empty()) u["top1"] = q.f64(3);
    list.push_back({q.i64(2), q.i64(4), q.i64(5), q.i64(6), q.i64(7)});
  }
  return out;
}

std::vector<int64_t> SearchRun::Impl::complete(Trial& tr) {
  sqlite3* db = index.handle();
  double sum = 0;
  int64_t n = 0;
  {
    // The column comes from the schema's own metrics table (check_search), not the sweep file.
    const std::string sql = "SELECT SUM(" + metric.column + "), COUNT(" + metric.column + ") FROM actmax_results WHERE task_key = ?";
    Query q(db, sql.c_str());
    for (int64_t i : tr.tasks) {
      sqlite3_reset(q.st);
      q.bind(1, tasks[static_cast<size_t>(i)].key);
      if (q.row()) sum += q.f64(0), n += q.i64(1);
    }
  }
  const double value = n > 0 ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
  const auto& q = search();
  const int setting = q.setting_of(static_cast<size_t>(tr.base), tr.rung);
  {
    Query ins(db, "INSERT INTO search_trials (layer, base_setting, rung, setting_id, iterations, units, metric, value, completed, "
                  "completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
    ins.bind(1, tr.layer).bind(2, int64_t{tr.base}).bind(3, int64_t{tr.rung}).bind(4, int64_t{setting});
    ins.bind(5, int64_t{q.budgets[static_cast<size_t>(tr.rung)]}).bind(6, tr.units).bind(7, q.metric);
    if (n > 0) ins.bind(8, value);
    else ins.bind_null(8);
    ins.bind(9, ++completed);
    ins.run();
  }
  std::vector<int64_t> out;
  const auto promoted = asha.at(tr.layer).complete(tr.base, tr.rung, value);
  if (promoted.empty()) return out;
  Query up(db, "UPDATE search_trials SET promoted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE layer = ? AND base_setting = ? AND rung = ?");
  for (int p : promoted) {
    up.bind(1, tr.layer).bind(2, int64_t{p}).bind(3, int64_t{tr.rung});
    up.run();
    Trial* next = trial(tr.layer, p, tr.rung + 1);
    if (!next) continue;
    const auto added = plan_trial(*next);
    out.insert(out.end(), added.begin(), added.end());
  }
  return out;
}

SearchRun::SearchRun(ResultIndex& index, const sweeps::SweepSpec& spec, const std::vector<sweeps::Task>& tasks, int64_t sweep_id)
    : impl_(std::make_unique<Impl>(index, tasks)) {
  auto& m = *impl_;
  m.planned.assign(tasks.size(), true);
  m.trial_of.assign(tasks.size(), -1);
  const auto* sec = spec.get<sweeps::ActmaxSection>();
  if (!sec || !sec->search.active()) return;
  m.sec = sec;
  m.sweep_id = sweep_id;
  const auto& q = sec->search;
  m.metric = actmax_metrics().at(q.metric);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& t = tasks[i];
    if (t.technique != "actmax") continue;
    const int base = static_cast<int>(q.base_of(t.setting)), rung = q.rung_of(t.setting);
    auto [it, fresh] = m.by_key.try_emplace({t.layer, base, rung}, m.trials.size());
    if (fresh) m.trials.push_back({t.layer, base, rung, {}, 0, 0});
    auto& tr = m.trials[it->second];
    tr.tasks.push_back(static_cast<int64_t>(i));
    tr.units += static_cast<int64_t>(t.items.size());
    m.trial_of[i] = static_cast<int64_t>(it->second);
    if (!m.asha.count(t.layer)) {
      m.asha.emplace(t.layer, Asha(static_cast<int>(q.settings), q.rungs(), static_cast<int>(q.eta), m.metric.higher_is_better));
      m.layers.push_back(t.layer);
    }
  }
  // What earlier runs decided.
  Query r(index.handle(), "SELECT layer, base_setting, rung, value, promoted_at IS NOT NULL, completed FROM search_trials ORDER BY completed");
  while (r.row()) {
    auto it = m.asha.find(r.text(0));
    if (it == m.asha.end()) continue;
    it->second.restore(static_cast<int>(r.i64(1)), static_cast<int>(r.i64(2)),
                       r.is_null(3) ? std::numeric_limits<double>::quiet_NaN() : r.f64(3), r.i64(4) != 0);
    m.completed = std::max(m.completed, r.i64(5));
  }
  // Trials at layers the exemplars score wait for the scan.
  for (const auto& layer : m.layers)
    if (scored_by_exemplars(spec, layer)) m.scored.insert(layer);
  std::map<std::string, TaskRow> rows;
  if (!m.scored.empty()) {
    rows = index.tasks();
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (tasks[i].technique != "exemplars") continue;
      m.exemplar_tasks.push_back(static_cast<int64_t>(i));
      const auto it = rows.find(tasks[i].key);
      if (it != rows.end() && it->second.state == TaskState::Done) m.exemplars_done.insert(static_cast<int64_t>(i));
    }
    m.scan_done = m.exemplars_done.size() == m.exemplar_tasks.size();
  }
  // A rung-0 task already in the index stays planned: an earlier version planned every first
  // rung at once, and a directory it left mid-scan resumes with those tasks (run without the
  // exemplars until the scan is done; the finishing step scores their images).
  for (auto& tr : m.trials) {
    const bool in = tr.rung == 0 ? m.scan_done || !m.scored.count(tr.layer) : m.asha.at(tr.layer).promoted(tr.base, tr.rung - 1);
    for (int64_t i : tr.tasks) m.planned[static_cast<size_t>(i)] = in || (tr.rung == 0 && rows.count(tasks[static_cast<size_t>(i)].key));
  }
}

SearchRun::~SearchRun() = default;

bool SearchRun::planned(size_t i) const { return impl_->planned.at(i); }

void SearchRun::shuffle(std::vector<int64_t>& todo) const {
  if (impl_->active()) impl_->shuffle(todo);
}

std::vector<int64_t> SearchRun::catch_up() {
  auto& m = *impl_;
  std::vector<int64_t> out;
  if (!m.active()) return out;
  const auto rows = m.index.tasks();
  // An exemplar scan completed by a run that did not plan the trials waiting for it (one
  // stopped in between cannot: both go in one transaction; a sweep given a search later can).
  if (!m.scan_done) {
    m.exemplars_done.clear();
    for (int64_t i : m.exemplar_tasks) {
      auto it = rows.find(m.tasks[static_cast<size_t>(i)].key);
      if (it != rows.end() && it->second.state == TaskState::Done) m.exemplars_done.insert(i);
    }
    if (m.exemplars_done.size() == m.exemplar_tasks.size()) out = m.scan_complete();
  }
  for (auto& tr : m.trials) {
    tr.done = 0;
    for (int64_t i : tr.tasks) {
      auto it = rows.find(m.tasks[static_cast<size_t>(i)].key);
      if (it != rows.end() && it->second.state == TaskState::Done) ++tr.done;
    }
  }
  // A trial whose tasks were all done but not recorded (the index written by a run that
  // stopped in between cannot hold one, since both go in one transaction; a results
  // directory that kept its tasks across a change of the search can).
  for (size_t t = 0; t < m.trials.size(); ++t) {
    auto& tr = m.trials[t];
    if (tr.done == tr.tasks.size() && m.planned[static_cast<size_t>(tr.tasks.front())] &&
        !m.asha.at(tr.layer).completed(tr.base, tr.rung)) {
      const auto added = m.complete(tr);
      out.insert(out.end(), added.begin(), added.end());
    }
  }
  return out;
}

std::vector<int64_t> SearchRun::on_done(int64_t task) {
  auto& m = *impl_;
  if (!m.active()) return {};
  if (!m.scan_done && m.tasks[static_cast<size_t>(task)].technique == "exemplars") {
    m.exemplars_done.insert(task);
    return m.exemplars_done.size() == m.exemplar_tasks.size() ? m.scan_complete() : std::vector<int64_t>{};
  }
  const int64_t t = m.trial_of.at(static_cast<size_t>(task));
  if (t < 0) return {};
  auto& tr = m.trials[static_cast<size_t>(t)];
  if (m.asha.at(tr.layer).completed(tr.base, tr.rung)) return {};  // recomputed after damage: decided before
  if (++tr.done < tr.tasks.size()) return {};
  return m.complete(tr);
}

nlohmann::json SearchRun::context(int64_t task) {
  auto& m = *impl_;
  if (!m.active() || !m.scan_done) return nullptr;
  const int64_t t = m.trial_of.at(static_cast<size_t>(task));
  if (t < 0) return nullptr;
  const auto& layer = m.trials[static_cast<size_t>(t)].layer;
  if (!m.scored.count(layer)) return nullptr;
  if (!m.lists.count(layer)) {
    // A resumed run may be recomputing exemplars tasks whose data was damaged: their rows are
    // gone from the view until then, so the lists would be incomplete.
    const auto rows = m.index.tasks();
    for (int64_t i : m.exemplar_tasks) {
      auto it = rows.find(m.tasks[static_cast<size_t>(i)].key);
      if (it == rows.end() || it->second.state != TaskState::Done) return nullptr;
    }
  }
  const auto& lists = m.layer_lists(layer);
  nlohmann::json units = nlohmann::json::object();
  for (int64_t u : m.tasks[static_cast<size_t>(task)].items) {
    auto it = lists.find(u);
    if (it != lists.end()) units[std::to_string(u)] = it->second;
  }
  return {{"exemplars", {{layer, std::move(units)}}}};
}

std::string SearchRun::summary() const {
  const auto& m = *impl_;
  if (!m.active()) return "";
  const auto& q = m.search();
  std::string out;
  char line[512];
  for (const auto& layer : m.layers) {
    const Asha& a = m.asha.at(layer);
    int64_t spent = 0, grid = 0, units = 0;
    for (const auto& tr : m.trials) {
      if (tr.layer != layer) continue;
      if (tr.rung == 0) units = tr.units;
      if (a.completed(tr.base, tr.rung)) spent += tr.units * q.budgets[static_cast<size_t>(tr.rung)];
    }
    grid = static_cast<int64_t>(q.settings) * units * q.budgets.back();
    const auto b = a.best();
    if (b.setting < 0) {
      std::snprintf(line, sizeof line, "[vizsweep] search %s: no trial completed yet\n", layer.c_str());
      out += line;
      continue;
    }
    std::string name = m.sec->settings[static_cast<size_t>(q.setting_of(static_cast<size_t>(b.setting), b.rung))].name;
    name = name.substr(0, name.rfind('@'));
    std::snprintf(line, sizeof line,
                  "[vizsweep] search %s: chosen %s (%s %.4f at %d iterations, rung %d of %d); %lld unit-iterations of the grid's "
                  "%lld at %d iterations (%.1f%%)\n",
                  layer.c_str(), name.c_str(), q.metric.c_str(), b.metric, q.budgets[static_cast<size_t>(b.rung)], b.rung + 1, q.rungs(),
                  static_cast<long long>(spent), static_cast<long long>(grid), q.budgets.back(),
                  grid > 0 ? 100.0 * static_cast<double>(spent) / static_cast<double>(grid) : 0.0);
    out += line;
    std::string rho;
    const auto top = a.ranking(b.rung);
    for (int r = 0; r < b.rung; ++r) {
      const double s = spearman(a.ranking(r), top);
      char buf[64];
      if (std::isnan(s)) std::snprintf(buf, sizeof buf, "%srung %d: -", rho.empty() ? "" : ", ", r + 1);
      else std::snprintf(buf, sizeof buf, "%srung %d: %+.2f", rho.empty() ? "" : ", ", r + 1, s);
      rho += buf;
    }
    if (!rho.empty()) out += "[vizsweep]   rank correlation with rung " + std::to_string(b.rung + 1) + "'s ranking (its settings): " + rho + "\n";
  }
  return out;
}

}  // namespace vizsweep::runner
