// The rank protocol: every MPI message between the coordinator (rank 0) and workers.
//
//   worker -> coordinator  kReady   (empty)            first message of a worker
//   worker -> coordinator  kResult  JSON TaskReport    after each task; asks for the next
//   coordinator -> worker  kTask    int64 task index   into the task list every rank expands
//   coordinator -> worker  kStop    (empty)            no more work: the worker exits its loop
//
// Every rank parses the sweep and expands the same task list, so a task travels as its
// index. Payloads are bytes (MPI_BYTE); JSON keeps reports self-describing.
#pragma once

namespace vizsweep::runner::protocol {

constexpr int kReady = 11;
constexpr int kResult = 12;
constexpr int kTask = 21;
constexpr int kStop = 22;

}  // namespace vizsweep::runner::protocol
