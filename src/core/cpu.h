/* Runtime CPU dispatch for plain C loops.
 *
 * RN_CLONES compiles a function for AVX-512, AVX2 and baseline x86-64; the
 * dynamic loader picks the best one for the CPU at start-up (GCC's
 * target_clones, an ifunc). Hot loops get wide vectors while the build still
 * runs on any x86-64 CPU. Other architectures compile the function once. */
#ifndef RN_CORE_CPU_H
#define RN_CORE_CPU_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                      \
    !defined(RN_ISA_AVX2) && !defined(RN_ISA_BASELINE)
#define RN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && defined(RN_ISA_AVX2)
#define RN_CLONES __attribute__((target("avx2")))
#else
#define RN_CLONES
#endif

/* 1 in a build limited to baseline x86-64, which runs no AVX code. */
#if defined(RN_ISA_BASELINE)
#define RN_ISA_BASELINE_ONLY 1
#else
#define RN_ISA_BASELINE_ONLY 0
#endif

/* Whether the AVX-512 kernels may run: the CPU has AVX-512F and the build
 * is not limited to an older instruction set. `make ISA=avx2` (RN_ISA_AVX2)
 * builds the AVX2 clones alone and `make ISA=baseline` (RN_ISA_BASELINE) the
 * baseline x86-64 code alone, so that this machine can test the paths that
 * older CPUs take. */
static inline int rn_cpu_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(RN_ISA_AVX2) &&                     \
    !defined(RN_ISA_BASELINE)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* Whether the CPU has the AVX-512 BF16 dot products (vdpbf16ps) that
 * --precision bf16 needs, besides rn_cpu_avx512(). */
static inline int rn_cpu_avx512_bf16(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(RN_ISA_AVX2) &&                     \
    !defined(RN_ISA_BASELINE)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* Partial sums per reduction, so that the compiler vectorizes reductions
 * without reassociating float additions, which strict IEEE semantics forbid.
 * The result depends only on the data, not on the CPU. */
#define RN_LANES 16

/* A vector of RN_LANES floats in GCC's vector extension: one AVX-512
 * register, two AVX2 registers, or four SSE registers, with the same
 * per-lane arithmetic on each. Macros, not functions, because a vector
 * return value would change the ABI between the clones. */
typedef float rn_vf16 __attribute__((vector_size(4 * RN_LANES)));
typedef int rn_vi16 __attribute__((vector_size(4 * RN_LANES)));

#define RN_VF16_LOAD(p)                                                        \
    __extension__({                                                            \
        rn_vf16 v_;                                                            \
        __builtin_memcpy(&v_, (p), sizeof v_);                                 \
        v_;                                                                    \
    })

/* Lanes of value where mask_src > 0, and zero elsewhere (NaN too). */
#define RN_VF16_WHERE_POSITIVE(mask_src, value)                                \
    ((rn_vf16)((rn_vi16)(value) & ((mask_src) > (rn_vf16){0})))

#endif
