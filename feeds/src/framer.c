/* Size-prefixed frame reassembly (tp/framer.h).
 *
 * Layout of the buffer: buf[start, end) holds the bytes not yet handed out; a
 * read appends at end. A frame is handed out whole, its 4-byte prefix included,
 * and must start at an aligned address: FlatBuffers' FinishSizePrefixed aligns
 * the buffer as a whole, prefix included, so the body of a size-prefixed frame
 * sits at 4 (mod 8) and its 8-byte scalars are aligned only when the prefix is.
 * Frames start at offset 0 (mod TP_WIRE_ALIGN) whenever the framer decides where
 * they go, i.e. on the first read and whenever the buffer is emptied or
 * compacted. FlatBuffers frames are padded, prefix included, to a multiple of 8
 * bytes, so every frame that follows an aligned one is aligned too and goes out
 * in place.
 *
 * Invariants: start <= end <= cap, and buf is aligned to TP_WIRE_ALIGN (malloc
 * aligns to max_align_t), so a frame is aligned when start is a multiple of
 * TP_WIRE_ALIGN. */
#include "tp/framer.h"

#include "tp/error.h"
#include "tp/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX ((size_t)TP_WIRE_PREFIX_BYTES)

/* Sizes beyond this are refused so that the offset arithmetic below cannot overflow. */
#define SIZE_LIMIT ((size_t)(SIZE_MAX / 4 < UINT32_MAX ? SIZE_MAX / 4 : UINT32_MAX))

/* The smallest scratch buffer: small frames should not cause several reallocations. */
#define SCRATCH_MIN ((size_t)256)

_Static_assert(_Alignof(max_align_t) >= TP_WIRE_ALIGN,
               "malloc must return buffers aligned for FlatBuffers frames");

int tp_framer_init(tp_framer_t *f, size_t max_frame, size_t read_size) {
    *f = (tp_framer_t){0};
    if (max_frame == 0 || max_frame > SIZE_LIMIT || read_size == 0 || read_size > SIZE_LIMIT)
        return TP_EINVAL;
    /* The prefix in the first capacity keeps a full read on offer even while a
     * partial prefix is held. */
    size_t cap = PREFIX + read_size;
    f->buf = malloc(cap);
    if (f->buf == NULL)
        return TP_ENOMEM;
    f->cap = cap;
    f->start = f->end = 0;
    f->max_frame = max_frame;
    f->read_size = read_size;
    return 0;
}

void tp_framer_close(tp_framer_t *f) {
    free(f->buf);
    free(f->scratch);
    *f = (tp_framer_t){0};
}

/* The body length in the prefix at start; the caller checked that the prefix is there. */
static size_t frame_len(const tp_framer_t *f) {
    return tp_wire_read_prefix(f->buf + f->start);
}

static bool has_prefix(const tp_framer_t *f) {
    return f->end - f->start >= PREFIX;
}

static bool oversized(const tp_framer_t *f) {
    return has_prefix(f) && frame_len(f) > f->max_frame;
}

/* Moves the unconsumed bytes to the front. Done before every read that follows
 * consumed frames: it moves at most the one partial frame a read leaves
 * behind (each frame at most once), realigns it, and frees the most room. */
static void compact(tp_framer_t *f) {
    size_t pending = f->end - f->start;
    if (pending == 0) {
        f->start = f->end = 0;
        return;
    }
    if (f->start == 0)
        return;
    memmove(f->buf, f->buf + f->start, pending);
    f->start = 0;
    f->end = pending;
}

/* Bytes that must fit after end for the stream to make progress: the rest of
 * the prefix, the rest of the frame, or one byte when whole frames are held
 * that the caller has not taken yet (tp_framer_push without tp_framer_next) or
 * when the frame is oversized (what is read is then dropped anyway). */
static size_t room_needed(const tp_framer_t *f) {
    size_t pending = f->end - f->start;
    if (pending < PREFIX)
        return PREFIX - pending;
    if (oversized(f))
        return 1;
    size_t total = PREFIX + frame_len(f);
    return pending < total ? total - pending : 1;
}

/* Grows buf to at least need bytes, doubling, but no further than the largest
 * frame requires unless undrained frames need more. */
static int grow(tp_framer_t *f, size_t need) {
    size_t largest = f->max_frame > f->read_size ? f->max_frame : f->read_size;
    size_t limit = PREFIX + largest;
    size_t cap = f->cap <= SIZE_MAX / 2 ? f->cap * 2 : need;
    if (cap > limit && need <= limit)
        cap = limit;
    if (cap < need)
        cap = need;
    uint8_t *p = realloc(f->buf, cap);
    if (p == NULL)
        return TP_ENOMEM;
    f->buf = p;
    f->cap = cap;
    return 0;
}

int tp_framer_reserve(tp_framer_t *f, uint8_t **p, size_t *n) {
    if (f->buf == NULL)
        return TP_ENOMEM;
    compact(f);
    /* After an oversized prefix the stream cannot be resynchronised: keep only
     * the prefix, so tp_framer_next() keeps reporting it, and let further reads
     * overwrite what follows it, so memory stays bounded until the reset. */
    if (oversized(f))
        f->end = f->start + PREFIX;
    size_t need = f->end + room_needed(f);
    if (need > f->cap) {
        int rc = grow(f, need);
        if (rc != 0)
            return rc;
    }
    size_t room = f->cap - f->end;
    *p = f->buf + f->end;
    *n = room < f->read_size ? room : f->read_size;
    return 0;
}

void tp_framer_commit(tp_framer_t *f, size_t n) {
    if (n > f->cap - f->end)
        n = f->cap - f->end;
    f->end += n;
}

int tp_framer_push(tp_framer_t *f, const void *data, size_t len) {
    const uint8_t *src = data;
    while (len > 0) {
        uint8_t *p;
        size_t n;
        int rc = tp_framer_reserve(f, &p, &n);
        if (rc != 0)
            return rc;
        if (n > len)
            n = len;
        memcpy(p, src, n);
        tp_framer_commit(f, n);
        src += n;
        len -= n;
    }
    return 0;
}

/* Makes scratch hold at least len bytes (len <= PREFIX + max_frame, a whole frame). */
static int scratch_reserve(tp_framer_t *f, size_t len) {
    if (f->scratch_cap >= len)
        return 0;
    size_t cap = f->scratch_cap ? f->scratch_cap : SCRATCH_MIN;
    while (cap < len)
        cap *= 2;
    if (cap > PREFIX + f->max_frame)
        cap = PREFIX + f->max_frame;
    /* malloc, not realloc: the old contents are not needed. */
    uint8_t *p = malloc(cap);
    if (p == NULL)
        return TP_ENOMEM;
    free(f->scratch);
    f->scratch = p;
    f->scratch_cap = cap;
    return 0;
}

/* An aligned copy of the unaligned whole frame (prefix included) of total bytes
 * at start. Usually a copy into scratch. When the frame is all that is buffered,
 * moving it back to the aligned offset below start costs the same copy and needs
 * no memory, and it is also the way out when scratch cannot be allocated: going
 * back only overwrites frames already handed out, which the caller may no longer
 * use. */
static const uint8_t *realign(tp_framer_t *f, size_t total) {
    size_t pending = f->end - f->start;
    if (pending > total && scratch_reserve(f, total) == 0) {
        memcpy(f->scratch, f->buf + f->start, total);
        return f->scratch;
    }
    size_t to = f->start - f->start % TP_WIRE_ALIGN;
    memmove(f->buf + to, f->buf + f->start, pending);
    f->start = to;
    f->end = to + pending;
    return f->buf + f->start;
}

int tp_framer_next(tp_framer_t *f, const uint8_t **frame, size_t *len) {
    /* An aligned copy of every frame with an empty body: its prefix is 4 zero
     * bytes (decode rejects it). */
    static _Alignas(TP_WIRE_ALIGN) const uint8_t empty[TP_WIRE_ALIGN];
    _Static_assert(sizeof(empty) >= PREFIX, "the empty frame holds a prefix");

    if (!has_prefix(f))
        return 0;
    size_t n = frame_len(f);
    if (n > f->max_frame)
        return TP_EFRAME_SIZE;
    if (f->end - f->start - PREFIX < n)
        return 0;
    size_t total = PREFIX + n;
    const uint8_t *out;
    if (f->start % TP_WIRE_ALIGN == 0)
        out = f->buf + f->start;
    else if (n == 0)
        out = empty;
    else
        out = realign(f, total);
    /* Consumed now. The bytes stay until the next reserve, or the next realign
     * moves a later frame over them: as long as the frame is promised to stay valid. */
    f->start += total;
    *frame = out;
    *len = total;
    return 1;
}

size_t tp_framer_pending(const tp_framer_t *f) {
    return f->end - f->start;
}

void tp_framer_reset(tp_framer_t *f) {
    f->start = f->end = 0;
}
