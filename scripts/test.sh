#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: install, build, run the whole suite under ctest;
# then the whole suite again in a build with AddressSanitizer + UndefinedBehaviorSanitizer
# (build-asan/), and the sweep-file fuzzer for 60 s (tests/fuzz/run_fuzzer.sh).
#   scripts/test.sh           everything (what CI runs)
#   scripts/test.sh --quick   the plain build's suite only
set -euo pipefail
cd "$(dirname "$0")/.."
# Floating-point results and speeds depend on the CPU kind (oneDNN picks its kernels by ISA):
# every log says which one it ran on.
./scripts/cpu_kind.sh
./scripts/setup.sh
# Tests on: a build the quickstart configured without them gets them back.
./scripts/build.sh -DVIZSWEEP_BUILD_TESTS=ON
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j2 --timeout 900)
if [ "${1:-}" = "--quick" ]; then exit 0; fi

echo "test: the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
BUILD_DIR=build-asan ./scripts/build.sh -DVIZSWEEP_SANITIZE=ON
# Leak checking is off for the suite: Open MPI and LibTorch keep one-time allocations to exit.
# Every other ASan and UBSan finding fails the test that met it.
# The Slurm test (label slurm) runs in the plain pass only: its ~12 minutes are Slurm's time limits
# and requeues, and the runner code it drives (drain on SIGTERM/SIGUSR1, resume, requeue exit codes)
# runs under the sanitizers in runner_faults and runner_integration. Keeping it out keeps CI's
# 90 minutes with room to spare on the slower CPU kinds. The docs test (label docs) too: it checks
# the docs against the program's help and output, which the sanitizers have nothing to add to; and
# the benchmark's toy run (label bench), which times programs the sanitizers only slow down (the
# sanitizer build leaves the benchmarks and the demo out); the analysis package's test (label
# analysis), Python over results whose runs runner_integration makes under the sanitizers; and
# whole-dataset runs and quality measurements (label long; the default model's two FGSM accuracy
# curves over 500 images and the ResNet default's class images, ~3 minutes each under the
# sanitizers), whose code paths the shorter tests take under them.
(cd build-asan && ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1" \
   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" ctest --output-on-failure -j2 --timeout 1800 \
   --label-exclude "slurm|docs|bench|analysis|long" \
   --exclude-regex "^(DefaultModel\.(FgsmAccuracyFallsAsEpsGrows|IterativeFgsmSucceedsWhereOneStepDoesNot)|ResNetDefault\..*)$")

echo "test: fuzzing the sweep-file parser for 60 s (libFuzzer, ASan + UBSan, leak checks on)"
tests/fuzz/run_fuzzer.sh 60 build-fuzz
