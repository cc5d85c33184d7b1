/* A growable byte buffer with a consumed front, used for command logs and wire
 * buffers. Data lives in [head, len); consuming from the front only moves head,
 * and space is reclaimed lazily, so a deep pipeline is never quadratic. */
#ifndef TP_BUF_H
#define TP_BUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer; zero-initialised ({0}) it is empty and owns nothing. */
typedef struct {
    char *data;  /* the allocation, NULL until the first byte */
    size_t head; /* bytes consumed from the front */
    size_t len;  /* end of the data */
    size_t cap;  /* bytes allocated */
} tp_buf_t;

/* The bytes held: [head, len). */
static inline size_t tp_buf_size(const tp_buf_t *b) {
    return b->len - b->head;
}

/* NULL for a buffer that never held anything: NULL + 0 is undefined behaviour in C. */
static inline char *tp_buf_ptr(const tp_buf_t *b) {
    return b->data ? b->data + b->head : NULL;
}

/* Makes room for n more bytes at the end. Returns 0 or TP_ENOMEM. */
int tp_buf_reserve(tp_buf_t *b, size_t n);
/* Appends n bytes. Returns 0 or TP_ENOMEM (the buffer is as it was). */
int tp_buf_append(tp_buf_t *b, const void *p, size_t n);
/* Appends printf-formatted text (not NUL-terminated in the buffer). Returns 0,
 * TP_ENOMEM or TP_EINVAL (a format error). For reports, not hot paths. */
int tp_buf_printf(tp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* tp_buf_printf() with a va_list. */
int tp_buf_vprintf(tp_buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops n bytes from the front (n <= size). */
void tp_buf_consume(tp_buf_t *b, size_t n);
/* Truncates to size bytes (size <= current size). */
void tp_buf_truncate(tp_buf_t *b, size_t size);
/* Frees the allocation; the buffer is empty again and reusable. */
void tp_buf_free(tp_buf_t *b);

#ifdef __cplusplus
}
#endif

#endif
