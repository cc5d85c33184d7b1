/* Unit tests of the per-stream sequence table (tp/seq.h): classification of each
 * frame, the counters, growth with many streams, the UINT64_MAX edge and seeding. */
#include "tp/error.h"
#include "tp/seq.h"

#include <criterion/criterion.h>

static tp_seq_table_t table;

static void setup(void) {
    cr_assert_eq(tp_seq_init(&table, 4), 0);
}

static void teardown(void) {
    tp_seq_close(&table);
}

TestSuite(seq, .init = setup, .fini = teardown);

/* The classification of seq on stream id, with no out-parameters. */
static int check(uint64_t id, uint64_t seq) {
    return tp_seq_check(&table, id, seq, NULL, NULL);
}

/* The first frame sets the baseline, whatever its seq; the next one follows it. */
Test(seq, first_then_next) {
    tp_stream_t *s = NULL;
    cr_assert_eq(tp_seq_check(&table, 7, 100, &s, NULL), TP_SEQ_FIRST);
    cr_assert_not_null(s);
    cr_assert_eq(s->stream_id, 7);
    cr_assert_eq(s->last_seq, 100);
    cr_assert_eq(check(7, 101), TP_SEQ_NEXT);
    cr_assert_eq(check(7, 102), TP_SEQ_NEXT);
    cr_assert_eq(tp_seq_find(&table, 7)->last_seq, 102);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(table.gaps, 0);
    cr_assert_eq(table.duplicates, 0);
    cr_assert_eq(table.missing, 0);
}

/* A jump is a gap: *expected is the seq that should have come, the counters
 * count it and the new seq becomes the last one. */
Test(seq, gap_reports_expected_and_counts) {
    uint64_t expected = 0;
    tp_stream_t *s = NULL;
    cr_assert_eq(check(1, 10), TP_SEQ_FIRST);
    cr_assert_eq(tp_seq_check(&table, 1, 15, &s, &expected), TP_SEQ_GAP);
    cr_assert_eq(expected, 11);
    cr_assert_eq(s->last_seq, 15);
    cr_assert_eq(table.gaps, 1);
    cr_assert_eq(table.missing, 4);
    cr_assert_eq(check(1, 16), TP_SEQ_NEXT);
    cr_assert_eq(tp_seq_check(&table, 1, 18, NULL, &expected), TP_SEQ_GAP);
    cr_assert_eq(expected, 17);
    cr_assert_eq(table.gaps, 2);
    cr_assert_eq(table.missing, 5);
}

/* Anything at or below the last seq is a duplicate (the B copy of an A/B feed, or
 * a late frame after a gap): counted, and the stream is left as it was. */
Test(seq, duplicates_change_nothing) {
    tp_stream_t *s = NULL;
    cr_assert_eq(check(3, 5), TP_SEQ_FIRST);
    cr_assert_eq(check(3, 6), TP_SEQ_NEXT);
    cr_assert_eq(tp_seq_check(&table, 3, 6, &s, NULL), TP_SEQ_DUPLICATE);
    cr_assert_eq(s, tp_seq_find(&table, 3));
    cr_assert_eq(check(3, 5), TP_SEQ_DUPLICATE);
    cr_assert_eq(check(3, 0), TP_SEQ_DUPLICATE);
    cr_assert_eq(table.duplicates, 3);
    cr_assert_eq(tp_seq_find(&table, 3)->last_seq, 6);
    cr_assert_eq(check(3, 7), TP_SEQ_NEXT);
    cr_assert_eq(table.gaps, 0);
}

/* A/B arbitration: two lines deliver the same frames interleaved; each seq is
 * accepted once. */
Test(seq, ab_feeds_accept_each_seq_once) {
    int accepted = 0;
    for (uint64_t seq = 1; seq <= 100; seq++) {
        for (int line = 0; line < 2; line++) {
            int r = check(42, seq);
            if (r == TP_SEQ_FIRST || r == TP_SEQ_NEXT)
                accepted++;
            else
                cr_assert_eq(r, TP_SEQ_DUPLICATE);
        }
    }
    cr_assert_eq(accepted, 100);
    cr_assert_eq(table.duplicates, 100);
}

/* Streams are independent of each other, including stream id 0. */
Test(seq, streams_are_independent) {
    cr_assert_eq(check(0, 1), TP_SEQ_FIRST);
    cr_assert_eq(check(1, 1), TP_SEQ_FIRST);
    cr_assert_eq(check(0, 2), TP_SEQ_NEXT);
    cr_assert_eq(check(1, 3), TP_SEQ_GAP);
    cr_assert_eq(check(0, 2), TP_SEQ_DUPLICATE);
    cr_assert_eq(tp_seq_find(&table, 0)->last_seq, 2);
    cr_assert_eq(tp_seq_find(&table, 1)->last_seq, 3);
    cr_assert_null(tp_seq_find(&table, 2));
    cr_assert_eq(table.count, 2);
}

/* 10000 streams force several doublings of a table sized for 4; every stream keeps
 * its last seq and the fields owned by the ack logic. */
Test(seq, many_streams_survive_growth) {
    enum { N = 10000 };
    static int owners[N];
    size_t first_cap = table.cap;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t id = i * UINT64_C(0x100000001); /* ids that differ in high and low bits */
        tp_stream_t *s = NULL;
        cr_assert_eq(tp_seq_check(&table, id, i + 1, &s, NULL), TP_SEQ_FIRST);
        s->acked_seq = i;
        s->ack_sent = i / 2;
        s->owner = &owners[i];
    }
    cr_assert_eq(table.count, N);
    cr_assert_gt(table.cap, first_cap);
    cr_assert_eq(table.cap & (table.cap - 1), 0, "capacity %zu is not a power of two", table.cap);
    cr_assert_leq(table.count * 10, table.cap * 7);
    for (uint64_t i = 0; i < N; i++) {
        uint64_t id = i * UINT64_C(0x100000001);
        tp_stream_t *s = tp_seq_find(&table, id);
        cr_assert_not_null(s, "stream %llu lost", (unsigned long long)id);
        cr_assert_eq(s->stream_id, id);
        cr_assert_eq(s->last_seq, i + 1);
        cr_assert_eq(s->acked_seq, i);
        cr_assert_eq(s->ack_sent, i / 2);
        cr_assert_eq(s->owner, &owners[i]);
        cr_assert_eq(check(id, i + 2), TP_SEQ_NEXT);
        cr_assert_eq(check(id, i + 1), TP_SEQ_DUPLICATE);
    }
    cr_assert_null(tp_seq_find(&table, UINT64_C(0x100000001) * N));
    cr_assert_eq(table.duplicates, N);
}

/* At UINT64_MAX nothing can follow: every seq is a duplicate, and last + 1 must
 * not wrap round into an accepted 0. */
Test(seq, uint64_max_edge) {
    uint64_t expected = 0;
    cr_assert_eq(check(9, UINT64_MAX - 2), TP_SEQ_FIRST);
    cr_assert_eq(check(9, UINT64_MAX - 1), TP_SEQ_NEXT);
    cr_assert_eq(check(9, UINT64_MAX), TP_SEQ_NEXT);
    cr_assert_eq(check(9, 0), TP_SEQ_DUPLICATE);
    cr_assert_eq(check(9, UINT64_MAX), TP_SEQ_DUPLICATE);
    cr_assert_eq(tp_seq_find(&table, 9)->last_seq, UINT64_MAX);

    cr_assert_eq(check(10, 0), TP_SEQ_FIRST);
    cr_assert_eq(tp_seq_check(&table, 10, UINT64_MAX, NULL, &expected), TP_SEQ_GAP);
    cr_assert_eq(expected, 1);
    cr_assert_eq(table.missing, UINT64_MAX - 1);
    cr_assert_eq(check(10, UINT64_MAX), TP_SEQ_DUPLICATE);

    /* The missing counter saturates rather than wrapping to a small number. */
    cr_assert_eq(check(11, 1), TP_SEQ_FIRST);
    cr_assert_eq(check(11, 5), TP_SEQ_GAP);
    cr_assert_eq(table.missing, UINT64_MAX);
    cr_assert_eq(table.gaps, 2);
}

/* A seeded stream (warm restart) continues from the seed: its first frame is not a
 * new baseline. Seeding an existing stream moves its last seq, either way. */
Test(seq, seed_sets_last_seq) {
    uint64_t expected = 0;
    cr_assert_eq(tp_seq_seed(&table, 5, 1000), 0);
    cr_assert_eq(table.count, 1);
    cr_assert_eq(check(5, 1001), TP_SEQ_NEXT);
    cr_assert_eq(check(5, 900), TP_SEQ_DUPLICATE);

    cr_assert_eq(tp_seq_seed(&table, 6, 50), 0);
    cr_assert_eq(tp_seq_check(&table, 6, 60, NULL, &expected), TP_SEQ_GAP);
    cr_assert_eq(expected, 51);

    cr_assert_eq(tp_seq_seed(&table, 5, 10), 0);
    cr_assert_eq(table.count, 2);
    cr_assert_eq(check(5, 11), TP_SEQ_NEXT);
}

/* Seeding many streams grows the table like checking does. */
Test(seq, seed_grows) {
    for (uint64_t id = 1; id <= 1000; id++)
        cr_assert_eq(tp_seq_seed(&table, id, id * 10), 0);
    cr_assert_eq(table.count, 1000);
    for (uint64_t id = 1; id <= 1000; id++)
        cr_assert_eq(check(id, id * 10 + 1), TP_SEQ_NEXT);
}

/* A table initialised for many streams does not have to grow for them. */
Test(seq, init_sizes_for_expected_streams) {
    tp_seq_table_t t;
    cr_assert_eq(tp_seq_init(&t, 1000), 0);
    size_t cap = t.cap;
    cr_assert_geq(cap * 7, 1000 * 10);
    for (uint64_t id = 0; id < 1000; id++)
        cr_assert_eq(tp_seq_check(&t, id, 1, NULL, NULL), TP_SEQ_FIRST);
    cr_assert_eq(t.cap, cap);
    tp_seq_close(&t);
    cr_assert_null(t.slots);
}
