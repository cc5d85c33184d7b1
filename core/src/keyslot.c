/* Redis Cluster key slots: CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0)
 * of the key, or of the part between the first "{" and the next "}" when that
 * part is non-empty, modulo 16384. */
#include "pool_internal.h"

#include <string.h>

static unsigned short crc_table[256];

static void build_table(void) {
    for (unsigned i = 0; i < 256; i++) {
        unsigned crc = i << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
        crc_table[i] = (unsigned short)crc;
    }
}

/* A key given in two parts (prefix and name), read as if joined. */
typedef struct {
    const char *a;
    size_t an;
    const char *b;
    size_t bn;
} split_key_t;

static unsigned char at(const split_key_t *k, size_t i) {
    return (unsigned char)(i < k->an ? k->a[i] : k->b[i - k->an]);
}

unsigned tp__key_slot2(const char *a, size_t an, const char *b, size_t bn) {
    /* crc_table[1] is never 0 once built, so it doubles as the "built" flag. */
    if (crc_table[1] == 0)
        build_table();
    split_key_t k = {a, an, b, bn};
    size_t n = an + bn, start = 0, end = n, open = 0;
    while (open < n && at(&k, open) != '{')
        open++;
    if (open < n) {
        size_t close = open + 1;
        while (close < n && at(&k, close) != '}')
            close++;
        if (close < n && close > open + 1) {
            start = open + 1;
            end = close;
        }
    }
    unsigned crc = 0;
    for (size_t i = start; i < end; i++)
        crc = ((crc << 8) ^ crc_table[((crc >> 8) ^ at(&k, i)) & 0xff]) & 0xffff;
    return crc & 16383;
}

unsigned tp_key_slot(const char *key, size_t len) {
    return tp__key_slot2(key, len, NULL, 0);
}
