/* Unit tests of the open-addressing index (tp/table.h): insert, find and remove; growth across
 * many sizes; randomized operations against a plain reference model, with good, clustered and
 * fully colliding hashes; find-or-insert; reserve; no allocation at a steady size; and
 * allocation failure, which must leave the table as it was.
 *
 * Allocations are counted and failed by wrapping malloc, calloc, realloc and free at link time
 * (tests/CMakeLists.txt links this test with -Wl,--wrap=...): every call from the statically
 * linked tickplane libraries comes here first, and the real allocator (the sanitizer's, in CI)
 * still does the work. */
#include "alloc_wrap.h"
#include "tp/error.h"
#include "tp/hash.h"
#include "tp/table.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys -------------------------------------------------------------------------------- */

/* The records a table indexes here: value v is the number of keys[v]. */
enum { KEYS = 4096 };
static uint64_t keys[KEYS];
static uint64_t seed;

typedef uint64_t (*hash_fn)(uint64_t key);

static uint64_t good_hash(uint64_t key) {
    return tp__mix64(key ^ seed);
}

/* 61 hashes for every key: long probe chains that overlap and wrap round. */
static uint64_t clustered_hash(uint64_t key) {
    return good_hash(key) % 61;
}

static uint64_t same_hash(uint64_t key) {
    (void)key;
    return UINT64_C(0xdeadbeef00000007);
}

/* The key looked up and the records it is compared with. */
typedef struct {
    const uint64_t *records;
    uint64_t key;
} key_ctx_t;

static bool key_eq(const void *ctx, uint32_t value) {
    const key_ctx_t *k = ctx;
    return k->records[value] == k->key;
}

static tp_table_t table;
static hash_fn hash = good_hash;

static void setup(void) {
    seed = tp__hash_seed();
    for (uint32_t i = 0; i < KEYS; i++)
        keys[i] = tp__mix64(i + 1) | 1; /* distinct, and never 0 */
    hash = good_hash;
    tp_test_allocations = 0;
    tp_test_fail_allocations = false;
    table = (tp_table_t){0};
}

static void teardown(void) {
    tp_test_fail_allocations = false;
    tp_table_close(&table);
}

TestSuite(table, .init = setup, .fini = teardown);

static uint32_t find(uint32_t v) {
    key_ctx_t k = {keys, keys[v]};
    return tp_table_find(&table, hash(keys[v]), key_eq, &k);
}

static int insert(uint32_t v) {
    return tp_table_insert(&table, hash(keys[v]), v);
}

static uint32_t remove_key(uint32_t v) {
    key_ctx_t k = {keys, keys[v]};
    return tp_table_remove(&table, hash(keys[v]), key_eq, &k);
}

/* The table's own invariants: a power-of-two capacity at most half used, count in step with
 * the used slots, and every entry reachable from its home slot without crossing an empty one
 * (what backward-shift deletion must preserve). */
static void assert_invariants(const tp_table_t *t) {
    cr_assert_eq(t->cap & (t->cap - 1), 0, "capacity %u", t->cap);
    cr_assert_leq(2 * (uint64_t)t->count, t->cap);
    uint32_t used = 0, mask = t->cap - 1;
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->slots[i] == 0)
            continue;
        used++;
        for (uint32_t j = (uint32_t)(t->slots[i] >> 32) & mask; j != i; j = (j + 1) & mask)
            cr_assert_neq(t->slots[j], 0, "hole at %u before the entry at %u", j, i);
    }
    cr_assert_eq(used, t->count);
}

/* ---- basics ------------------------------------------------------------------------------ */

Test(table, insert_find_remove) {
    cr_assert_eq(tp_table_init(&table, 4), 0);
    cr_assert_eq(table.cap, 16); /* at least 8 entries */
    for (uint32_t v = 0; v < 5; v++)
        cr_assert_eq(insert(v), 0);
    cr_assert_eq(table.count, 5);
    for (uint32_t v = 0; v < 5; v++)
        cr_assert_eq(find(v), v);
    cr_assert_eq(find(5), TP_TABLE_NONE);
    cr_assert_eq(remove_key(2), 2);
    cr_assert_eq(remove_key(2), TP_TABLE_NONE);
    cr_assert_eq(find(2), TP_TABLE_NONE);
    cr_assert_eq(table.count, 4);
    cr_assert_eq(find(4), 4);
    assert_invariants(&table);
}

/* Values run up to UINT32_MAX - 1; TP_TABLE_NONE cannot be stored. */
Test(table, value_range) {
    cr_assert_eq(tp_table_init(&table, 0), 0);
    cr_assert_eq(tp_table_insert(&table, 1, TP_TABLE_NONE), TP_EINVAL);
    cr_assert_eq(tp_table_insert_at(&table, 0, 1, TP_TABLE_NONE), TP_EINVAL);
    cr_assert_eq(table.count, 0);
    cr_assert_eq(tp_table_insert(&table, 99, TP_TABLE_NONE - 1), 0);
    /* key_eq would read keys[UINT32_MAX - 1]: the only entry is at its home slot. */
    cr_assert_eq(tp_table_value_at(&table, 99 & (table.cap - 1)), TP_TABLE_NONE - 1);
}

/* A zeroed table is empty: it can be searched and closed, and its first insert allocates. */
Test(table, zeroed_table_is_empty) {
    cr_assert_eq(find(0), TP_TABLE_NONE);
    cr_assert_eq(remove_key(0), TP_TABLE_NONE);
    cr_assert_eq(tp_test_allocations, 0);
    cr_assert_eq(insert(0), 0);
    cr_assert_eq(tp_test_allocations, 1);
    cr_assert_eq(find(0), 0);
    tp_table_close(&table);
    cr_assert_null(table.slots);
    cr_assert_eq(table.cap, 0);
    cr_assert_eq(table.count, 0);
    tp_table_close(&table); /* twice is harmless */
}

/* From empty to each size, with growth on the way: every key found with its value, none of the
 * others, and the load never above half. */
Test(table, growth_across_sizes) {
    static const uint32_t sizes[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 4095};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        uint32_t n = sizes[s];
        cr_assert_eq(tp_table_init(&table, 1), 0);
        for (uint32_t v = 0; v < n; v++)
            cr_assert_eq(insert(v), 0);
        cr_assert_eq(table.count, n);
        cr_assert_geq(table.cap, 2 * n);
        cr_assert_leq(table.cap, n <= 8 ? 16 : 4 * n, "size %u: capacity %u", n, table.cap);
        assert_invariants(&table);
        for (uint32_t v = 0; v < n; v++)
            cr_assert_eq(find(v), v, "size %u: key %u", n, v);
        for (uint32_t v = n; v < KEYS; v++)
            cr_assert_eq(find(v), TP_TABLE_NONE, "size %u: absent key %u", n, v);
        tp_table_close(&table);
    }
}

/* A large table: 100,000 entries, doubling from the minimum. */
Test(table, hundred_thousand_entries) {
    enum { N = 100000 };
    cr_assert_eq(tp_table_init(&table, 0), 0);
    static uint64_t big[N];
    for (uint32_t v = 0; v < N; v++) {
        big[v] = tp__mix64(v + 12345);
        cr_assert_eq(tp_table_insert(&table, good_hash(big[v]), v), 0);
    }
    cr_assert_eq(table.count, N);
    cr_assert_eq(table.cap, 1u << 18);
    for (uint32_t v = 0; v < N; v++) {
        key_ctx_t k = {big, big[v]};
        cr_assert_eq(tp_table_find(&table, good_hash(big[v]), key_eq, &k), v);
    }
    key_ctx_t absent = {big, tp__mix64(N + 12345)};
    cr_assert_eq(tp_table_find(&table, good_hash(absent.key), key_eq, &absent), TP_TABLE_NONE);
    assert_invariants(&table);
}

/* ---- randomized operations against a model ----------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n) {
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)((rng >> 33) % n);
}

/* ops random inserts, removals, lookups and find-or-inserts over a universe of universe keys,
 * each checked against a plain array of flags; the whole table is compared with the model and
 * its invariants checked every 997 operations. */
static void random_ops(hash_fn h, uint32_t universe, uint32_t ops) {
    hash = h;
    static bool present[KEYS];
    memset(present, 0, sizeof(present));
    uint32_t count = 0;
    cr_assert_eq(tp_table_init(&table, 0), 0);
    for (uint32_t op = 0; op < ops; op++) {
        uint32_t v = rnd(universe);
        key_ctx_t k = {keys, keys[v]};
        switch (rnd(4)) {
        case 0: /* insert when absent */
            if (!present[v]) {
                cr_assert_eq(insert(v), 0);
                present[v] = true;
                count++;
            }
            break;
        case 1: /* remove */
            cr_assert_eq(remove_key(v), present[v] ? v : TP_TABLE_NONE, "op %u", op);
            count -= present[v];
            present[v] = false;
            break;
        case 2: /* find */
            cr_assert_eq(find(v), present[v] ? v : TP_TABLE_NONE, "op %u", op);
            break;
        default: { /* find or insert, probing once */
            uint32_t pos = tp_table_probe(&table, hash(keys[v]), key_eq, &k);
            uint32_t got = tp_table_value_at(&table, pos);
            cr_assert_eq(got, present[v] ? v : TP_TABLE_NONE, "op %u", op);
            if (got == TP_TABLE_NONE) {
                cr_assert_eq(tp_table_insert_at(&table, pos, hash(keys[v]), v), 0);
                present[v] = true;
                count++;
            }
            break;
        }
        }
        cr_assert_eq(table.count, count);
        if (op % 997 == 0) {
            assert_invariants(&table);
            for (uint32_t w = 0; w < universe; w++)
                cr_assert_eq(find(w), present[w] ? w : TP_TABLE_NONE, "op %u key %u", op, w);
        }
    }
    assert_invariants(&table);
}

Test(table, random_ops_match_model) {
    random_ops(good_hash, KEYS, 100000);
}

/* Few distinct hashes: probe chains overlap, so backward shifts move entries of other homes
 * past each other and round the end of the slot array. */
Test(table, random_ops_clustered_hashes) {
    random_ops(clustered_hash, 1000, 100000);
}

/* One hash for every key: the equality callback alone tells them apart. */
Test(table, random_ops_one_hash) {
    random_ops(same_hash, 300, 20000);
}

/* ---- collisions and reuse ---------------------------------------------------------------- */

Test(table, all_keys_in_one_hash) {
    enum { N = 500 };
    hash = same_hash;
    cr_assert_eq(tp_table_init(&table, 0), 0);
    for (uint32_t v = 0; v < N; v++)
        cr_assert_eq(insert(v), 0);
    for (uint32_t v = 0; v < N; v++)
        cr_assert_eq(find(v), v);
    cr_assert_eq(find(N), TP_TABLE_NONE);
    for (uint32_t v = 0; v < N; v += 2)
        cr_assert_eq(remove_key(v), v);
    assert_invariants(&table);
    for (uint32_t v = 0; v < N; v++)
        cr_assert_eq(find(v), v % 2 ? v : TP_TABLE_NONE);
}

/* A removed key can come back, with another value; removing everything empties every slot. */
Test(table, remove_then_reinsert) {
    cr_assert_eq(tp_table_init(&table, 0), 0);
    for (uint32_t v = 0; v < 100; v++)
        cr_assert_eq(insert(v), 0);
    for (uint32_t v = 0; v < 100; v++)
        cr_assert_eq(remove_key(v), v);
    cr_assert_eq(table.count, 0);
    for (uint32_t i = 0; i < table.cap; i++)
        cr_assert_eq(table.slots[i], 0);
    for (uint32_t v = 0; v < 100; v++)
        cr_assert_eq(find(v), TP_TABLE_NONE);
    /* keys[v] again, now as value v + 100: the same key under a new record number. */
    for (uint32_t v = 0; v < 100; v++) {
        keys[v + 100] = keys[v];
        cr_assert_eq(tp_table_insert(&table, hash(keys[v]), v + 100), 0);
    }
    for (uint32_t v = 0; v < 100; v++)
        cr_assert_eq(find(v), v + 100);
    assert_invariants(&table);
}

/* tp_table_remove_at() on a slot found by probing, as callers that check the record first do. */
Test(table, remove_at_probed_slot) {
    cr_assert_eq(tp_table_init(&table, 0), 0);
    for (uint32_t v = 0; v < 8; v++)
        cr_assert_eq(insert(v), 0);
    key_ctx_t k = {keys, keys[3]};
    uint32_t pos = tp_table_probe(&table, hash(keys[3]), key_eq, &k);
    cr_assert_eq(tp_table_value_at(&table, pos), 3);
    tp_table_remove_at(&table, pos);
    cr_assert_eq(find(3), TP_TABLE_NONE);
    cr_assert_eq(table.count, 7);
    assert_invariants(&table);
}

/* ---- allocation -------------------------------------------------------------------------- */

/* After a reserve, inserts up to that count allocate nothing and the slots stay put. */
Test(table, reserve_preallocates) {
    cr_assert_eq(tp_table_init(&table, 0), 0);
    cr_assert_eq(tp_table_reserve(&table, 3000), 0);
    cr_assert_eq(table.cap, 8192);
    const uint64_t *slots = table.slots;
    tp_test_allocations = 0;
    for (uint32_t v = 0; v < 3000; v++)
        cr_assert_eq(insert(v), 0);
    cr_assert_eq(tp_test_allocations, 0);
    cr_assert_eq(table.slots, slots);
    /* A smaller reserve changes nothing; the next insert past the bound grows. */
    cr_assert_eq(tp_table_reserve(&table, 10), 0);
    cr_assert_eq(table.cap, 8192);
    for (uint32_t v = 3000; v < 4096; v++)
        cr_assert_eq(insert(v), 0);
    cr_assert_eq(tp_test_allocations, 0);
    cr_assert_eq(tp_table_insert(&table, 12345, KEYS), 0); /* one more entry, never looked up */
    cr_assert_eq(table.cap, 16384);
    cr_assert_eq(tp_test_allocations, 1);
}

Test(table, reserve_above_max) {
    cr_assert_eq(tp_table_init(&table, 0), 0);
    tp_test_allocations = 0;
    uint64_t *slots = table.slots;
    cr_assert_eq(tp_table_reserve(&table, TP_TABLE_MAX + 1), TP_ENOMEM);
    cr_assert_eq(table.slots, slots);
    cr_assert_eq(table.cap, 16);
    tp_table_t other;
    cr_assert_eq(tp_table_init(&other, UINT32_MAX), TP_ENOMEM);
    cr_assert_null(other.slots);
    cr_assert_eq(tp_test_allocations, 0);
}

/* A table at a steady size: removals and inserts, lookups and find-or-inserts, 100,000 of
 * them, allocate nothing. */
Test(table, steady_state_allocates_nothing) {
    enum { LIVE = 1000 };
    cr_assert_eq(tp_table_init(&table, 0), 0);
    for (uint32_t v = 0; v < LIVE; v++)
        cr_assert_eq(insert(v), 0);
    tp_test_allocations = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        uint32_t out = i % LIVE, in = LIVE + i % (KEYS - LIVE);
        /* Keep LIVE entries: swap one present key for an absent one and back. */
        cr_assert_eq(remove_key(out), out);
        key_ctx_t k = {keys, keys[in]};
        uint32_t pos = tp_table_probe(&table, hash(keys[in]), key_eq, &k);
        cr_assert_eq(tp_table_value_at(&table, pos), TP_TABLE_NONE);
        cr_assert_eq(tp_table_insert_at(&table, pos, hash(keys[in]), in), 0);
        cr_assert_eq(find(in), in);
        cr_assert_eq(remove_key(in), in);
        cr_assert_eq(insert(out), 0);
    }
    cr_assert_eq(tp_test_allocations, 0);
    cr_assert_eq(table.count, LIVE);
    assert_invariants(&table);
}

/* Growth that cannot allocate fails with TP_ENOMEM and leaves every slot as it was; once memory
 * is back, the same insert succeeds. */
Test(table, failed_growth_leaves_table_unchanged) {
    cr_assert_eq(tp_table_init(&table, 0), 0);
    uint32_t n = table.cap / 2;
    for (uint32_t v = 0; v < n; v++)
        cr_assert_eq(insert(v), 0);
    tp_table_t before = table;
    static uint64_t copy[16];
    cr_assert_eq(table.cap, 16);
    memcpy(copy, table.slots, sizeof(copy));

    tp_test_fail_allocations = true;
    cr_assert_eq(insert(n), TP_ENOMEM);
    key_ctx_t k = {keys, keys[n]};
    uint32_t pos = tp_table_probe(&table, hash(keys[n]), key_eq, &k);
    cr_assert_eq(tp_table_insert_at(&table, pos, hash(keys[n]), n), TP_ENOMEM);
    cr_assert_eq(tp_table_reserve(&table, 100), TP_ENOMEM);
    cr_assert_eq(table.slots, before.slots);
    cr_assert_eq(table.cap, before.cap);
    cr_assert_eq(table.count, before.count);
    cr_assert_eq(memcmp(table.slots, copy, sizeof(copy)), 0);
    for (uint32_t v = 0; v < n; v++)
        cr_assert_eq(find(v), v);
    cr_assert_eq(find(n), TP_TABLE_NONE);
    /* Lookups and removals still work without memory. */
    cr_assert_eq(remove_key(0), 0);
    cr_assert_eq(insert(0), 0);

    tp_test_fail_allocations = false;
    cr_assert_eq(insert(n), 0);
    cr_assert_eq(table.cap, 32);
    for (uint32_t v = 0; v <= n; v++)
        cr_assert_eq(find(v), v);
    assert_invariants(&table);
}

Test(table, failed_init_leaves_table_zeroed) {
    tp_test_fail_allocations = true;
    table = (tp_table_t){.count = 3}; /* whatever was there */
    cr_assert_eq(tp_table_init(&table, 100), TP_ENOMEM);
    cr_assert_null(table.slots);
    cr_assert_eq(table.cap, 0);
    cr_assert_eq(table.count, 0);
}
