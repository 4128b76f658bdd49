// What a run does once every task is done: the machine interpretability of each
// visualization against its unit's natural exemplars (kernels/exemplars.h), stored in the
// index's actmax_results (mis, activation_ratio) and folded into the score. Idempotent: only
// rows without it are scored, so a resumed or repeated run finishes what is missing.
#pragma once

#include <string>

#include "runner/engine.h"
#include "runner/index.h"

namespace vizsweep::runner {

// Returns the number of visualizations scored; prints one progress line to stderr when it
// scores any. Throws vizsweep::Error (a shard that cannot be read, the feature model).
int64_t finish_mis(ResultIndex& index, const sweeps::SweepSpec& spec, Engine& engine, const std::string& dir);

}  // namespace vizsweep::runner
