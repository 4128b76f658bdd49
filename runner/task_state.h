// Task states and the one function that owns their transitions. The same four states are
// the CHECK constraint on tasks.state in results_schema.sql.
#pragma once

#include <string>

namespace vizsweep::runner {

enum class TaskState { Pending, Running, Done, Failed };
enum class TaskEvent {
  Dispatch,   // handed to a rank
  Succeed,    // data flushed to its shard and its rows about to be committed
  Fail,       // exception or NaN; attempts counted by the caller
  Retry,      // a failed task with attempts left goes back to the queue
  Abandon,    // a run ended (killed, drained) with the task in flight
  Invalidate, // its data turned out unreadable on resume: recompute
};

const char* state_name(TaskState s);
const char* event_name(TaskEvent e);
TaskState parse_state(const std::string& s);  // throws vizsweep::Error

// The state after `e`; throws vizsweep::Error for a transition that must not happen
// (e.g. Succeed on a pending task).
TaskState transition(TaskState from, TaskEvent e);

// The one SQL statement that applies `e` to tasks in state `from`:
//   UPDATE tasks SET state='<to>'<set> WHERE state='<from>'<where>
// `set` adds assignments (", rank=?"), `where` conditions (" AND task_key=?"). The states
// come from transition(), so no statement can move a task along an edge the table lacks.
std::string transition_sql(TaskState from, TaskEvent e, const std::string& set, const std::string& where);

}  // namespace vizsweep::runner
