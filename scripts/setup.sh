#!/usr/bin/env bash
# Installs the Debian 12 packages vizsweep needs.
#   scripts/setup.sh              everything: build, run, analysis and every test (test.sh)
#   scripts/setup.sh --quickstart what the quickstart needs: build vizsweep, run, analysis
# Idempotent; needs root (or sudo). Safe to run with no standard input (CI).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config
  # compute core: LibTorch (+ OpenBLAS: the reference BLAS is ~15x slower)
  libtorch-dev libopenblas0-openmp
  # runner
  libopenmpi-dev openmpi-bin libhdf5-dev libsqlite3-dev
  libyaml-cpp-dev libboost-program-options-dev nlohmann-json3-dev zlib1g-dev
  # images
  libstb-dev
  # analysis scripts (Debian's /usr/bin/python3)
  python3 python3-numpy python3-h5py python3-matplotlib
  # real data for the default model and the quickstart
  dataset-fashion-mnist
)
if [ "${1:-}" != "--quickstart" ]; then
  PACKAGES+=(
    git hdf5-tools sqlite3
    # tests
    libgtest-dev googletest
    # model export and the tests' references (torchvision's definitions)
    python3-torch python3-torchvision
    # headless browser check of the atlas pages
    chromium
    # the sweep-file fuzzer (libFuzzer, sanitizers)
    clang libclang-rt-14-dev
    # a real one-node Slurm cluster for the tests (started and stopped by the tests themselves)
    slurmctld slurmd slurm-client munge
  )
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
  $SUDO apt-get update -q
  # unsafe-io: dpkg skips its fsync after every file, slow on virtual disks; an install cut
  # off by a power loss is redone by running this again.
  $SUDO apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-unsafe-io "${missing[@]}"
fi

# Debian's libtorch computes its matrix products through libblas.so.3, and must get the OpenMP
# build of OpenBLAS (libopenblas0-openmp, above): the reference BLAS is about 15x slower, and the
# pthread build, which libtorch's own dependency (libopenblas0) installs on a fresh machine and
# whose alternative has the higher priority, starts threads of its own beside LibTorch's. So the
# OpenMP build is selected explicitly.
for alt in /usr/lib/*/openblas-openmp/libblas.so.3 /usr/lib/*/openblas-openmp/liblapack.so.3; do
  [ -e "$alt" ] || continue
  lib="$(basename "$alt")"
  triple="$(basename "$(dirname "$(dirname "$alt")")")"
  link="/usr/lib/$triple/$lib"
  if [ "$(readlink -f "$link")" != "$(readlink -f "$alt")" ]; then
    echo "setup: $lib -> the OpenMP build of OpenBLAS (was $(readlink -f "$link"))"
    $SUDO update-alternatives --quiet --set "$lib-$triple" "$alt"
  fi
done
