/* Hashing for the feed tables, whose keys (stream ids, symbols) come from the
 * network: a per-process random seed goes into every hash, so that nobody who
 * can send frames can choose keys that all land in one probe chain. */
#ifndef TP_FEEDS_HASH_H
#define TP_FEEDS_HASH_H

#include <stdint.h>
#include <sys/random.h>
#include <time.h>

/* splitmix64's finalizer: every input bit reaches the low bits that index. */
static inline uint64_t tp__mix64(uint64_t x) {
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

/* A random seed; the clock when the kernel has no entropy to give (early boot). */
static inline uint64_t tp__hash_seed(void) {
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = tp__mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32));
    }
    return seed;
}

#endif
