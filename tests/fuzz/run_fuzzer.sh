#!/usr/bin/env bash
# Builds the sweep-file fuzzer with clang (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs it for a fixed time on a seed corpus of every sweep file in the project.
# Usage: tests/fuzz/run_fuzzer.sh [SECONDS (default 60)] [BUILD_DIR (default build-fuzz)]
# Exit 0: no finding. Otherwise libFuzzer's crash report and the input (crash-*) are in BUILD_DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SECONDS_TO_RUN="${1:-60}"
OUT="$(realpath -m "${2:-$ROOT/build-fuzz}")"
CXX="${FUZZ_CXX:-clang++}"
command -v "$CXX" >/dev/null || { echo "run_fuzzer: $CXX not found (scripts/setup.sh installs clang)" >&2; exit 2; }
mkdir -p "$OUT/corpus" "$OUT/obj" "$OUT/generated/sweeps"
FLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$ROOT" -I"$OUT/generated" -I/usr/include/yaml-cpp)
# Every technique's sweep side, listed as sweeps/CMakeLists.txt lists them.
TECHNIQUES=("$ROOT"/sweeps/techniques/*.cpp)
list=""
for f in "${TECHNIQUES[@]}"; do list+="VIZSWEEP_TECHNIQUE($(basename "$f" .cpp))"$'\n'; done
[ "$(cat "$OUT/generated/sweeps/technique_list.inc" 2>/dev/null)"$'\n' = "$list" ] || printf '%s' "$list" > "$OUT/generated/sweeps/technique_list.inc"
SOURCES=("$ROOT/tests/fuzz/fuzz_sweep.cpp" "$ROOT/sweeps/sweep.cpp" "$ROOT/sweeps/reader.cpp" "$ROOT/sweeps/technique.cpp"
         "$ROOT/sweeps/idx.cpp" "$ROOT/kernels/settings.cpp" "$ROOT/kernels/objective_spec.cpp" "${TECHNIQUES[@]}")
BIN="$OUT/fuzz_sweep"
newest=$(stat -c %Y "${SOURCES[@]}" "$ROOT"/sweeps/*.h "$ROOT"/sweeps/techniques/*.h "$ROOT"/kernels/settings.h "$ROOT"/kernels/objective_spec.h "$ROOT"/kernels/error.h \
         "$OUT/generated/sweeps/technique_list.inc" | sort -n | tail -1)
if [ ! -x "$BIN" ] || [ "$(stat -c %Y "$BIN")" -lt "$newest" ]; then
  echo "run_fuzzer: building $BIN"
  "$CXX" "${FLAGS[@]}" "${SOURCES[@]}" -o "$BIN" -lyaml-cpp -lz
fi
# Seed corpus: the example sweeps and every sweep file the tests use.
for f in "$ROOT"/sweeps/examples/*.yaml "$ROOT"/tests/*/*.yaml; do cp "$f" "$OUT/corpus/$(basename "$(dirname "$f")")-$(basename "$f")"; done
cd "$OUT"
export VIZSWEEP_FUZZ_DIR="$ROOT/sweeps/examples"   # relative model and image paths resolve as in the examples
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The dictionary: tests/fuzz/sweep.dict's syntax and values, and the words the declarations
# give (every key and hyperparameter, from the fuzz target itself).
{ cat "$ROOT/tests/fuzz/sweep.dict"; VIZSWEEP_FUZZ_WORDS=1 "$BIN"; } > dictionary
declared=$(VIZSWEEP_FUZZ_WORDS=1 "$BIN" | wc -l)
[ "$declared" -gt 50 ] || { echo "run_fuzzer: only $declared declared words" >&2; exit 2; }
set +e
"$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -dict=dictionary corpus 2>&1 | tee fuzz.log | grep -E "^(#[0-9]+.*(DONE|INITED)|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|escaped)"
rc=${PIPESTATUS[0]}
set -e
execs=$(grep -o "stat::number_of_executed_units: [0-9]*" fuzz.log | grep -o "[0-9]*$" || echo "?")
if [ "$rc" -eq 0 ]; then
  echo "run_fuzzer: $execs executions in ${SECONDS_TO_RUN}s, no findings (corpus: $(ls corpus | wc -l) inputs; dictionary: $declared declared words)"
else
  echo "run_fuzzer: FINDING after $execs executions (exit $rc): see $OUT/fuzz.log and $OUT/crash-*" >&2
fi
exit "$rc"
