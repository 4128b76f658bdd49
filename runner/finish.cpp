#include "runner/finish.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

#include "kernels/error.h"
#include "runner/schema.h"
#include "runner/sql.h"
#include "sweeps/techniques/actmax.h"
#include "sweeps/techniques/exemplars.h"

namespace vizsweep::runner {

namespace {

struct Viz {
  std::string key;
  int64_t unit, copy;
  double activation;
  std::string shard, dataset;
};

}  // namespace

int64_t finish_mis(ResultIndex& index, const sweeps::SweepSpec& spec, Engine& engine, const std::string& dir) {
  const auto* ex = spec.get<sweeps::ExemplarsSection>();
  const auto* am = spec.get<sweeps::ActmaxSection>();
  if (!ex || !am || !ex->bottom) return 0;
  const std::string feature_model = mis_feature_model(spec);
  if (feature_model.empty()) {
    std::fprintf(stderr, "[vizsweep] machine interpretability: not scored (a built-in model and no exemplars.feature_model)\n");
    return 0;
  }
  sqlite3* db = index.handle();
  {
    Query q(db, "SELECT COUNT(*) FROM tasks WHERE technique = 'exemplars' AND state <> 'done'");
    q.row();
    if (q.i64(0) > 0) return 0;  // the lists are not complete yet
  }
  // The visualizations without a score, by layer and unit, where the unit has exemplars.
  std::map<std::pair<std::string, int64_t>, std::vector<Viz>> todo;
  {
    Query q(db,
            "SELECT r.task_key, t.layer, r.unit, r.final_activation, r.shard, r.dataset, r.copy FROM actmax_results r "
            "JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' WHERE r.mis IS NULL AND EXISTS "
            "(SELECT 1 FROM exemplar_results e WHERE e.layer = t.layer AND e.unit = r.unit AND e.kind = 'bottom')");
    while (q.row()) todo[{q.text(1), q.i64(2)}].push_back({q.text(0), q.i64(2), q.i64(6), q.f64(3), q.text(4), q.text(5)});
  }
  if (todo.empty()) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, ImageBlob> images;  // shard + dataset -> image
  auto image = [&](const std::string& shard, const std::string& dataset) -> const ImageBlob& {
    auto it = images.find(shard + "\n" + dataset);
    if (it == images.end()) it = images.emplace(shard + "\n" + dataset, read_image_blob(dir + "/" + shard, dataset)).first;
    return it->second;
  };
  std::string layer;
  // unit -> (top crops, bottom crops, top-1 activation) of the current layer
  std::map<int64_t, std::tuple<std::vector<ImageBlob>, std::vector<ImageBlob>, double>> lists;
  int64_t scored = 0;
  exec(db, "BEGIN IMMEDIATE");
  try {
    Query up(db, "UPDATE actmax_results SET mis = ?1, activation_ratio = ?2 WHERE task_key = ?3 AND unit = ?4 AND copy = ?5");
    for (const auto& [where, vizs] : todo) {
      if (where.first != layer) {
        layer = where.first;
        lists.clear();
        images.clear();
        Query q(db, "SELECT unit, kind, activation, box_y0, box_y1, box_x0, box_x1, shard, dataset FROM exemplars "
                    "WHERE layer = ? ORDER BY unit, kind, rank");
        sqlite3_bind_text(q.st, 1, layer.c_str(), -1, SQLITE_TRANSIENT);
        while (q.row()) {
          ImageBlob c = crop(image(q.text(7), q.text(8)), q.i64(3), q.i64(4), q.i64(5), q.i64(6));
          auto& l = lists[q.i64(0)];
          if (q.text(1) == "top") {
            if (std::get<0>(l).empty()) std::get<2>(l) = q.f64(2);
            std::get<0>(l).push_back(std::move(c));
          } else {
            std::get<1>(l).push_back(std::move(c));
          }
        }
      }
      const auto& l = lists.at(where.second);
      std::vector<ImageBlob> blobs;
      for (const auto& v : vizs) blobs.push_back(image(v.shard, v.dataset));
      const auto mis = engine.sweep_mis(layer, blobs, std::get<0>(l), std::get<1>(l));
      for (size_t i = 0; i < vizs.size(); ++i) {
        sqlite3_reset(up.st);
        sqlite3_bind_double(up.st, 1, mis[i]);
        const double top1 = std::get<2>(l);
        if (top1 > 0) sqlite3_bind_double(up.st, 2, vizs[i].activation / top1);
        else sqlite3_bind_null(up.st, 2);
        sqlite3_bind_text(up.st, 3, vizs[i].key.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(up.st, 4, vizs[i].unit);
        sqlite3_bind_int64(up.st, 5, vizs[i].copy);
        up.row();
        ++scored;
      }
    }
    // The score reads mis (results_schema.sql, actmax_results.score).
    for (const auto& sql : derived_updates("actmax_results", "WHERE mis IS NOT NULL")) exec(db, sql.c_str());
    exec(db, "COMMIT");
  } catch (...) {
    exec(db, "ROLLBACK");
    throw;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "[vizsweep] machine interpretability: %lld visualizations of %zu units scored against their exemplars "
                       "(feature space: %s) in %.1f s\n",
               static_cast<long long>(scored), todo.size(), feature_model.c_str(), secs);
  return scored;
}

}  // namespace vizsweep::runner
