// The rank protocol: every MPI message between the coordinator (rank 0) and workers.
//
//   worker -> coordinator  kRequest  JSON array of TaskReports (may be empty): asks for work
//   worker -> coordinator  kResult   JSON array of TaskReports: tasks whose data is written
//   coordinator -> worker  kTask     int64 task indices (one or more) into the task list
//   coordinator -> worker  kStop     (empty): no more work, the worker exits its loop
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
#pragma once

namespace vizsweep::runner::protocol {

constexpr int kRequest = 11;
constexpr int kResult = 12;
constexpr int kTask = 21;
constexpr int kStop = 22;

}  // namespace vizsweep::runner::protocol
