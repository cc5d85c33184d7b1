/* A parsed Redis reply and the completion every command carries.
 *
 * Replies are built in a per-connection arena and are valid only while the
 * completion callback runs: copy what you need to keep. */
#ifndef TP_REPLY_H
#define TP_REPLY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a reply is; which members of tp_reply_t are set follows from it. */
typedef enum {
    TP_REPLY_STRING = 1,  /* bulk string: str/len */
    TP_REPLY_ARRAY = 2,   /* element[0..elements) */
    TP_REPLY_INTEGER = 3, /* integer */
    TP_REPLY_NIL = 4,     /* a missing value: nothing set */
    TP_REPLY_STATUS = 5,  /* simple string, e.g. "OK": str/len */
    TP_REPLY_ERROR = 6,   /* error string, e.g. "WRONGTYPE ...": str/len */
} tp_reply_type_t;

/* One reply, or one element of an array reply. */
typedef struct tp_reply_s {
    tp_reply_type_t type;        /* which of the members below are set */
    long long integer;           /* TP_REPLY_INTEGER */
    size_t len;                  /* bytes of str */
    const char *str;             /* NUL-terminated, but may contain NULs: use len */
    size_t elements;             /* TP_REPLY_ARRAY: how many */
    struct tp_reply_s **element; /* TP_REPLY_ARRAY: the elements */
} tp_reply_t;

/* Called exactly once per command, in the order the commands were issued on
 * their connection:
 *   status 0           reply is the answer;
 *   status TP_EREPLY   reply is Redis's error reply (type TP_REPLY_ERROR);
 *   status < 0 other   no reply: TP_ETIMEDOUT, TP_EDOWN or TP_ECLOSED, reply is NULL. */
typedef void (*tp_cmd_cb)(void *data, int status, const tp_reply_t *reply);

#ifdef __cplusplus
}
#endif

#endif
