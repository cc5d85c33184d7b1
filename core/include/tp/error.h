/* Error codes shared by every tickplane module.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and a
 * negative TP_E* code on failure. One list below makes the enum, the names and
 * the messages, so they can never drift apart. Where a user needs more than the
 * code (which TLS check failed, what Redis answered), the object that failed
 * keeps a detail string of its own. */
#ifndef TP_ERROR_H
#define TP_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro of every code: XX(NAME, message) makes TP_E<NAME>. */
#define TP_ERRNO_MAP(XX)                                                                           \
    XX(NOMEM, "out of memory")                                                                     \
    XX(INVAL, "invalid argument")                                                                  \
    XX(CONFIG, "invalid configuration")                                                            \
    XX(IO, "input/output error")                                                                   \
    XX(CONNREFUSED, "connection refused")                                                          \
    XX(CONNRESET, "connection reset by peer")                                                      \
    XX(EOF, "connection closed by peer")                                                           \
    XX(CONNECT_TIMEOUT, "connection timed out")                                                    \
    XX(TIMEDOUT, "command timed out")                                                              \
    XX(DNS, "address resolution failed")                                                           \
    XX(TLS, "TLS error")                                                                           \
    XX(TLS_VERIFY, "TLS certificate verification failed")                                          \
    XX(AUTH, "authentication failed")                                                              \
    XX(SELECT, "database selection failed")                                                        \
    XX(PROTOCOL, "protocol error")                                                                 \
    XX(REPLY, "Redis replied with an error")                                                       \
    XX(BACKPRESSURE, "queue full, back off")                                                       \
    XX(DOWN, "Redis unreachable, retries exhausted")                                               \
    XX(CLOSED, "handle closed")                                                                    \
    XX(REPLICAS, "fewer replicas acknowledged the write than required")                            \
    XX(NOTFOUND, "not found")                                                                      \
    XX(FRAME_VERIFY, "frame failed FlatBuffers verification")                                      \
    XX(FRAME_TYPE, "frame of an unknown or unexpected type")                                       \
    XX(FRAME_FIELD, "frame field out of range")                                                    \
    XX(FRAME_SIZE, "frame larger than TP_MAX_FRAME_BYTES")                                         \
    XX(FRAME_TRUNCATED, "stream ended inside a frame")                                             \
    XX(LOCKED, "held by another owner")                                                            \
    XX(NOT_OWNER, "not held by this owner: the lease ended or another owner took it")              \
    XX(JSON, "malformed JSON")

/* The codes: TP_OK, then TP_ENOMEM, TP_EINVAL ... as listed above, all negative. */
typedef enum {
    TP_OK = 0,
#define TP__ERRNO_ENUM(name, msg) TP_E##name,
    TP__ERRNO_FIRST = -1000,
    TP_ERRNO_MAP(TP__ERRNO_ENUM)
#undef TP__ERRNO_ENUM
        TP__ERRNO_END
} tp_errno_t;

/* A static, human-readable message for a TP_E* code (or a negated errno from libuv). */
const char *tp_strerror(int err);

/* The code's name without the TP_E prefix, e.g. "TIMEDOUT"; "UNKNOWN" for others. */
const char *tp_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif
