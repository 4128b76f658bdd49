// The rank protocol: every MPI message between the coordinator (rank 0) and workers.
//
//   worker -> coordinator  kRequest  JSON array of TaskReports (may be empty): asks for work
//   worker -> coordinator  kResult   JSON array of TaskReports: tasks whose data is written
//   coordinator -> worker  kTask     int64 task indices (one or more) into the task list
//   coordinator -> worker  kTaskContext  JSON {"tasks": [indices], "context": {...}}: tasks that
//                                    need something from the index (a search trial's exemplars)
//   coordinator -> worker  kStop     (empty): no more work, the worker exits its loop
//   coordinator -> worker  kHold     (empty): the drain deadline passed; stop writing
//   worker -> coordinator  kHeld     (empty): this rank's writer has stopped, between writes
//
// A worker computes the tasks of an assignment one after another and hands each result to
// its writer thread; the writer sends the task's report (kResult) the moment its data is on
// disk, so shard writes and index records overlap with the next task's compute. A request
// the coordinator cannot serve yet (no work queued, tasks still in flight elsewhere that may
// fail and be retried) is answered later. Cheap tasks go out several to an assignment, so the
// per-task cost of the round trip is shared.
//
// Every rank parses the sweep and expands the same task list, so a task travels as its
// index. Reports are JSON (MPI_BYTE), self-describing.
//
// kHold and kHeld go between the coordinator and a rank's writer thread (the compute thread
// waits only for kTask and kStop). Before it aborts a run whose drain deadline passed, the
// coordinator asks every writer to hold and waits for each kHeld (a few seconds at most), so
// that no rank dies in the middle of a shard write.
#pragma once

namespace vizsweep::runner::protocol {

constexpr int kRequest = 11;
constexpr int kResult = 12;
constexpr int kTask = 21;
constexpr int kTaskContext = 24;
constexpr int kStop = 22;
constexpr int kHold = 23;
constexpr int kHeld = 13;

}  // namespace vizsweep::runner::protocol
