/* Pseudo-random numbers: xoshiro256** seeded through splitmix64.
 *
 * Every random stream in the library is an explicit rn_rng value (no hidden
 * global state), so a run is repeatable from its seed and resumable from a
 * saved state. */
#ifndef RN_CORE_RNG_H
#define RN_CORE_RNG_H

#include <stdint.h>

typedef struct rn_rng {
    uint64_t state[4];
} rn_rng;

/* Mix a 64-bit value into a well-distributed one (the splitmix64 finalizer).
 * Combine it to derive independent streams: rn_hash64(seed ^ rn_hash64(i)). */
uint64_t rn_hash64(uint64_t x);

void rn_rng_seed(rn_rng *rng, uint64_t seed);
uint64_t rn_rng_next(rn_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
float rn_rng_uniform(rn_rng *rng);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint32_t rn_rng_below(rn_rng *rng, uint32_t n);
/* Standard normal sample (Box-Muller, double precision). */
double rn_rng_normal(rn_rng *rng);

#endif
