#pragma once
// For the plain C++ kernels (spectral.cpp, resample.cpp): their hot loops in an AVX-512, an
// AVX2 and a baseline version, chosen once at load time. Built without fused multiply-adds
// (-ffp-contract=off), every version computes the same float values.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VIZ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VIZ_CLONES
#endif
#define VIZ_INLINE inline __attribute__((always_inline))
