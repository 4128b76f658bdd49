// Activation maximization's runner side (actmax.cpp), for the engine's probes too.
#pragma once

#include "kernels/actmax.h"
#include "runner/run_context.h"
#include "sweeps/techniques/actmax.h"

namespace vizsweep::runner {

// The kernel request of an actmax task: its layer, units, objective, setting and seed, on the
// context's model in the task's compute format (with its fp32 finish).
kernels::ActMaxRequest actmax_request(RunContext& ctx, const sweeps::ActmaxSection& sec, const sweeps::Task& task);

}  // namespace vizsweep::runner
