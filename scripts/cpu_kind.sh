#!/usr/bin/env bash
# Prints the CPU model, its core count and the instruction sets that decide which kernels
# oneDNN and OpenBLAS run (bf16 and AMX units in particular), e.g.
#   cpu: AMD EPYC (family 25, model 17), 2 cores; avx2 avx512f avx512_bf16 (no AMX); bf16 units
set -euo pipefail
model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
family=$(grep -m1 '^cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
number=$(grep -m1 '^model\s*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2-) "
have=()
for f in avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile; do
  case "$flags" in *" $f "*) have+=("$f") ;; esac
done
amx="(no AMX)"
case "$flags" in *" amx_bf16 "*) amx="(AMX: bf16 matrix units)" ;; esac
bf16="no bf16 units"
case "$flags" in *" avx512_bf16 "* | *" amx_bf16 "*) bf16="bf16 units" ;; esac
echo "cpu: ${model:-unknown} (family ${family:-?}, model ${number:-?}), $(nproc) cores; ${have[*]:-no AVX2} $amx; $bf16"
