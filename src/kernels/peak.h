/* The machine's measured FP32 peak (peak.c). */
#ifndef RN_KERNELS_PEAK_H
#define RN_KERNELS_PEAK_H

/* Run FMA chains on `threads` OpenMP threads for a fraction of a second and return the
 * GFLOP/s they reached, counting an FMA as 2 FLOPs. *isa, when not NULL,
 * names the instructions used ("AVX-512 FMA", "AVX2 FMA" or "portable C"). */
double rn_peak_gflops(int threads, const char **isa);

#endif
