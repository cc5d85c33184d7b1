/* Hashing for the in-memory tables, whose keys (stream ids, symbols, order and
 * exec ids, accounts) come from the network: each table draws a random seed
 * and puts it into every hash, so that nobody who can send frames can choose
 * keys that all land in one probe chain, or two exec ids that collide. */
#ifndef TP_HASH_H
#define TP_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* Eight bytes at a time, each word xored into a state that starts from the seed
 * and is then mixed. */
static inline uint64_t tp__hash_bytes(uint64_t seed, const char *s, size_t len) {
    uint64_t h = tp__mix64(seed ^ (uint64_t)len);
    for (; len >= 8; s += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = tp__mix64(h ^ w);
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, s, len);
        h = tp__mix64(h ^ w);
    }
    return h;
}

#ifdef __cplusplus
}
#endif

#endif
