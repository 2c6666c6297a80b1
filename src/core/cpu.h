/* Runtime CPU dispatch for plain C loops.
 *
 * RN_CLONES compiles a function for AVX-512, AVX2 and baseline x86-64; the
 * dynamic loader picks the best one for the CPU at start-up (GCC's
 * target_clones, an ifunc). Hot loops get wide vectors while the build still
 * runs on any x86-64 CPU. Other architectures compile the function once. */
#ifndef RN_CORE_CPU_H
#define RN_CORE_CPU_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RN_CLONES
#endif

/* Partial sums per reduction, so that the compiler vectorizes reductions
 * without reassociating float additions, which strict IEEE semantics forbid.
 * The result depends only on the data, not on the CPU. */
#define RN_LANES 16

#endif
