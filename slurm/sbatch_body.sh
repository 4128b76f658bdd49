
# One rank per GPU (or per --ranks-per-node on CPU nodes), started by srun through PMIx:
# Open MPI without PMIx would start independent rank-0 processes (vizsweep checks the world
# size against SLURM_NTASKS). Each rank takes the GPU of its SLURM_LOCALID.
VIZSWEEP=@VIZSWEEP@
SWEEP=@SWEEP@
OUT=@OUT@
CHAIN_LIMIT=@CHAIN_LIMIT@

echo "[$(date -Is)] job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}, nodes $SLURM_JOB_NODELIST"
# A requeued job can start while the last allocation's step is still being torn down.
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then sleep 10; fi
# Slurm signals the batch shell drain_seconds before the time limit; the run stops taking
# tasks, lets in-flight ones finish, and exits @EXIT_DRAINED@ (work remains).
# SIGTERM before that signal is scancel (or a preemption, which Slurm requeues itself): the
# run drains the same way, and the script does not requeue the job.
DRAINING=0; CANCELLED=0
drain() { DRAINING=1; echo "[$(date -Is)] time limit near: draining"; kill -USR1 "$STEP" 2>/dev/null; }
cancelled() {
  if [ "$DRAINING" -eq 0 ]; then CANCELLED=1; echo "[$(date -Is)] cancelled: finishing the tasks in flight"; fi
  kill -USR1 "$STEP" 2>/dev/null
}
trap drain USR1
trap cancelled TERM
srun --mpi=pmix --kill-on-bad-exit=1 "$VIZSWEEP" run "$SWEEP" --out "$OUT" --drain-seconds @RUN_DRAIN_SECONDS@ --journal @JOURNAL@ --progress-seconds 60 &
STEP=$!
while true; do  # wait returns early when the trap runs: wait until the step has ended
  wait "$STEP"; RC=$?
  kill -0 "$STEP" 2>/dev/null || break
done
echo "[$(date -Is)] vizsweep exited with $RC"
# A step that failed to launch or died leaves work behind: the index says so. Not after
# bad input (@EXIT_USAGE@), failed tasks (@EXIT_TASKS_FAILED@) or results that cannot be written (@EXIT_STORAGE@): a rerun would not help.
if [ "$RC" -ne @EXIT_DRAINED@ ] && [ "$RC" -ne @EXIT_TASKS_FAILED@ ] && [ "$RC" -ne @EXIT_USAGE@ ] && [ "$RC" -ne @EXIT_STORAGE@ ]; then
  "$VIZSWEEP" status "$OUT" --check >/dev/null 2>&1
  if [ $? -eq @EXIT_DRAINED@ ]; then echo "[$(date -Is)] the step ended (exit $RC) with tasks left"; RC=@EXIT_DRAINED@; fi
fi
if [ "$CANCELLED" -eq 1 ]; then
  echo "[$(date -Is)] job cancelled: not requeueing; submit this script again to go on"
  exit "$RC"
fi
if [ "$RC" -eq @EXIT_DRAINED@ ]; then
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "$CHAIN_LIMIT" ]; then
    echo "requeued $CHAIN_LIMIT times already: stopping; 'vizsweep status $OUT' tells what is left"
    exit 1
  fi
  echo "[$(date -Is)] work remains: requeueing job $SLURM_JOB_ID"
  # A requeued job waits about two minutes for its begin time; ask for now instead.
  setsid bash -c "sleep 2; scontrol update JobId=$SLURM_JOB_ID StartTime=now" >/dev/null 2>&1 < /dev/null &
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
exit "$RC"
