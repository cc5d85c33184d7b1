/* Unit tests of tp_key_slot(): CRC16 (XMODEM) modulo 16384 and the "{tag}" rules of the Redis
 * Cluster specification. The expected numbers are the spec's own examples, or values computed
 * independently with Python's binascii.crc_hqx(key, 0) % 16384 (a separate CRC16-XMODEM). */
#include "tp/pool.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* The slot of a NUL-terminated key. */
static unsigned slot(const char *key) {
    return tp_key_slot(key, strlen(key));
}

TestSuite(keyslot);

/* Plain keys hash to the slots Redis Cluster assigns them. */
Test(keyslot, known_cluster_slots) {
    cr_assert_eq(slot("foo"), 12182);
    cr_assert_eq(slot("bar"), 5061);
    cr_assert_eq(slot("user1000"), 3443);
}

/* The CRC16 check value of the spec: "123456789" -> 0x31C3, which is below 16384. */
Test(keyslot, crc16_check_value) {
    cr_assert_eq(slot("123456789"), 0x31C3);
    cr_assert_eq(slot("123456789"), 12739);
}

/* The empty key is slot 0. */
Test(keyslot, empty_key_is_slot_zero) {
    cr_assert_eq(tp_key_slot("", 0), 0);
}

/* Only the part between "{" and "}" is hashed, so keys sharing a tag share a slot. */
Test(keyslot, hash_tag_selects_slot) {
    cr_assert_eq(slot("{user1000}.following"), slot("user1000"));
    cr_assert_eq(slot("{user1000}.followers"), slot("user1000"));
    cr_assert_eq(slot("{user1000}.following"), 3443);
}

/* An empty tag "{}" does not count: the whole key is hashed. */
Test(keyslot, empty_tag_hashes_whole_key) {
    cr_assert_eq(slot("foo{}{bar}"), 8363);
    cr_assert_neq(slot("foo{}{bar}"), slot("bar"));
    cr_assert_eq(slot("{}"), 15257);
}

/* The tag runs from the first "{" to the first "}" after it, braces included inside. */
Test(keyslot, tag_starts_at_first_open_brace) {
    cr_assert_eq(slot("foo{{bar}}zap"), slot("{bar"));
    cr_assert_eq(slot("foo{{bar}}zap"), 4015);
}

/* Only the first tag counts. */
Test(keyslot, only_first_tag_counts) {
    cr_assert_eq(slot("foo{bar}{zap}"), slot("bar"));
    cr_assert_eq(slot("foo{bar}{zap}"), 5061);
}

/* A "{" without a closing "}" is not a tag: the whole key is hashed. */
Test(keyslot, unclosed_brace_hashes_whole_key) {
    cr_assert_eq(slot("foo{bar"), 15278);
}

/* The length argument is what counts: bytes past it are ignored, and NUL bytes are hashed. */
Test(keyslot, length_not_nul_terminates) {
    cr_assert_eq(tp_key_slot("foobar", 3), 12182);
    cr_assert_eq(tp_key_slot("a\0b", 3), 8383);
    cr_assert_eq(tp_key_slot("{bar}x", 4), slot("{bar"));
}

/* Every slot is in 0..16383, and many different keys spread over many slots. */
Test(keyslot, slots_in_range_and_spread) {
    static bool used[16384];
    int distinct = 0;
    for (int i = 0; i < 10000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "key:%d", i);
        unsigned s = tp_key_slot(key, (size_t)n);
        cr_assert_lt(s, 16384);
        distinct += !used[s];
        used[s] = true;
    }
    cr_assert_gt(distinct, 4000, "only %d distinct slots", distinct);
}
