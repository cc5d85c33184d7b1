/* Size-prefixed frame reassembly from a byte stream (feeds/src/framer.c).
 *
 * A frame on the wire is a 4-byte little-endian prefix holding the body length,
 * then the body (one FlatBuffer). The framer hands out WHOLE frames, prefix
 * included, which is what tp_wire_decode() takes, and each starts at a
 * TP_WIRE_ALIGN-aligned address. The prefix, not the body, is what must be
 * aligned: FlatBuffers' FinishSizePrefixed aligns the buffer as a whole, prefix
 * included, so the body sits at 4 (mod 8) and its 8-byte scalars, which
 * FlatBuffers reads in place, are aligned only when the prefix is.
 *
 * The framer owns one buffer per stream. A read goes straight into it
 * (tp_framer_reserve / tp_framer_commit, which is what a libuv alloc_cb and
 * read_cb need), and whole frames are then handed out in place: the first frame
 * of a read into an empty buffer starts at an aligned offset, and so does every
 * frame after it as long as frames are multiples of 8 bytes long, prefix
 * included, as the FlatBuffers builders pad them. Such a stream is never copied.
 * A frame that sits unaligned (after one of another size) is copied once, prefix
 * included, into an aligned scratch buffer, or, when it is the last thing
 * buffered, moved back to the aligned offset below it (over frames already handed
 * out, which is why a frame is valid only until the next call). A partial frame is kept and moved
 * to the front of the buffer, an aligned offset, before the next read; the buffer grows,
 * geometrically, only as far as the largest frame allowed. */
#ifndef TP_FRAMER_H
#define TP_FRAMER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *buf; /* owned, cap bytes */
    size_t cap;
    size_t start; /* the unconsumed bytes are buf[start, end) */
    size_t end;
    size_t max_frame; /* largest frame body (prefix value) accepted (TP_MAX_FRAME_BYTES) */
    size_t read_size; /* most bytes offered to one read */
    uint8_t *scratch; /* aligned copy of an unaligned frame; allocated on first need */
    size_t scratch_cap;
} tp_framer_t;

/* max_frame: largest frame body, i.e. largest prefix value (a whole frame may be
 * 4 bytes more); read_size: bytes
 * offered to each read, which bounds the work of one read callback. Returns 0 or
 * TP_ENOMEM / TP_EINVAL. Pair with tp_framer_close(). */
int tp_framer_init(tp_framer_t *f, size_t max_frame, size_t read_size);
void tp_framer_close(tp_framer_t *f);

/* Where the next read may write: *p, up to *n bytes (at most read_size; less
 * only when a partial frame needs less to complete). Moves a partial frame to the
 * front and grows the buffer when the frame needs it. Returns 0 or TP_ENOMEM.
 * Frames returned by tp_framer_next() are invalid after this call. */
int tp_framer_reserve(tp_framer_t *f, uint8_t **p, size_t *n);

/* Records that the last read wrote n bytes at the reserved place. */
void tp_framer_commit(tp_framer_t *f, size_t n);

/* Copies data in through reserve/commit: for sources that do not read into the
 * framer themselves (tests, fuzzing). Returns 0 or TP_ENOMEM. */
int tp_framer_push(tp_framer_t *f, const void *data, size_t len);

/* The next whole frame: *frame points at its 4-byte prefix, followed by the body,
 * and *len = 4 + the body length (4 for an empty body), so that
 * tp_wire_read_prefix(*frame) == *len - 4. *frame is TP_WIRE_ALIGN-aligned (the
 * prefix is; the body then sits at 4 mod 8, as FlatBuffers lays it out) and
 * valid until the next tp_framer_next() / tp_framer_reserve(). Returns 1 with a
 * frame, 0 when more bytes are needed, or TP_EFRAME_SIZE when a length prefix
 * exceeds max_frame: the stream cannot be resynchronised after that, and the
 * framer returns TP_EFRAME_SIZE until it is reset. */
int tp_framer_next(tp_framer_t *f, const uint8_t **frame, size_t *len);

/* Bytes held that do not yet make a whole frame: non-zero at the end of a stream
 * means the stream was truncated. */
size_t tp_framer_pending(const tp_framer_t *f);

/* Forgets every buffered byte (keeps the memory). */
void tp_framer_reset(tp_framer_t *f);

#endif
