// A technique, as the runner sees it: the result tables its tasks fill (results_schema.sql)
// and how a task runs into shard data and result rows. The sweep side (section, expansion) is
// sweeps/technique.h; the torch side of running is runner/run_context.h, included only by the
// files in runner/techniques/ and the engine.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/shard.h"
#include "sweeps/technique.h"

namespace vizsweep::runner {

class RunContext;

struct ResultTable {
  std::string name;       // e.g. "actmax_results"; its rows carry task_key
  bool in_shard = true;   // rows name a shard dataset (columns shard, dataset): verify reads them
};

struct RunTechnique {
  std::string name;                 // as the sweep side's
  std::vector<ResultTable> tables;  // what its rows fill; invalidate empties them
  // Runs a task of the section: fills `data` for the shard and returns the rows, an object
  // {table: [{column: value}, ...]} (dataset paths /tasks/<key>/<name>; the index adds
  // task_key and shard). Throws vizsweep::Error or NumericalError.
  std::function<nlohmann::json(RunContext&, const sweeps::Section&, const sweeps::Task&, TaskData&)> run;
  // Optional: checks and loads what the section needs beyond the model (a judge model), once
  // per engine before anything is written; throws vizsweep::Error naming the field.
  std::function<void(RunContext&, const sweeps::Section&)> prepare = nullptr;
};

// Defines run_technique_NAME(), which registers a file of runner/techniques/ (CMake lists the
// folder): VIZSWEEP_RUN_TECHNIQUE(actmax, run, {{"actmax_results", true}}).
#define VIZSWEEP_RUN_TECHNIQUE(NAME, RUN, ...) VIZSWEEP_RUN_TECHNIQUE_PREPARED(NAME, RUN, nullptr, __VA_ARGS__)
// The same with a `prepare` function.
#define VIZSWEEP_RUN_TECHNIQUE_PREPARED(NAME, RUN, PREPARE, ...)    \
  const RunTechnique& run_technique_##NAME() {                      \
    static const RunTechnique t{#NAME, __VA_ARGS__, RUN, PREPARE};  \
    return t;                                                       \
  }

// Every technique's runner side, in the sweep side's order; a technique missing on either
// side is an internal error (std::logic_error naming it).
const std::vector<const RunTechnique*>& run_techniques();
const RunTechnique& run_technique(const std::string& name);

}  // namespace vizsweep::runner
