/* The layout of a fuzz_frames input, shared with fuzz_seeds, which writes inputs of that
 * shape so that the fuzzer starts from valid streams.
 *
 *   byte 0   how the payload is cut into reads:
 *              bit 7     chunk sizes vary, drawn from a generator seeded by bytes 0 and 1;
 *              bit 6     reads go through tp_framer_reserve/commit instead of tp_framer_push;
 *              bits 0-5  the fixed chunk size in bytes, 0 meaning the whole payload at once
 *                        (bit 7 clear), or the largest varying chunk / 8 (bit 7 set)
 *   byte 1   the framer's read_size: 1 + byte * 8 (1 .. 2041)
 *   rest     the payload: a byte stream of size-prefixed frames for the framer. The payload,
 *            and the whole input too, are also decoded directly, from aligned copies, as one
 *            whole size-prefixed Frame (the 4-byte prefix included, as tp_wire_decode takes
 *            it) and as one TradingEvent. */
#ifndef TP_FUZZ_INPUT_H
#define TP_FUZZ_INPUT_H

#define FUZZ_HEADER_BYTES 2
#define FUZZ_VARY 0x80u
#define FUZZ_RESERVE 0x40u
#define FUZZ_SIZE_MASK 0x3fu

/* The largest frame body the fuzzed framer accepts; bigger prefixes end a stream. */
#define FUZZ_MAX_FRAME 4096

#endif
