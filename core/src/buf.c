#include "tp/buf.h"

#include "tp/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_buf_reserve(tp_buf_t *b, size_t n) {
    if (b->cap - b->len >= n)
        return 0;
    size_t size = tp_buf_size(b);
    /* Compact only when at least half of the buffer is dead: moving less often
     * would turn a slowly draining buffer into a memmove per append. */
    if (b->head >= size && b->cap - size >= n) {
        memmove(b->data, b->data + b->head, size);
        b->head = 0;
        b->len = size;
        return 0;
    }
    /* Small at first: thousands of order units may each hold a MULTI/EXEC of about a KiB,
     * and a connection's log reaches megabytes in a few doublings anyway. */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return TP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int tp_buf_append(tp_buf_t *b, const void *p, size_t n) {
    int rc = tp_buf_reserve(b, n);
    if (rc == 0 && n > 0) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    return rc;
}

int tp_buf_vprintf(tp_buf_t *b, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(b->data ? b->data + b->len : NULL, b->cap - b->len, fmt, ap);
    int rc = n < 0 ? TP_EINVAL : 0;
    if (rc == 0 && (size_t)n >= b->cap - b->len) {
        /* vsnprintf needs room for its NUL, which the buffer then drops. */
        rc = tp_buf_reserve(b, (size_t)n + 1);
        if (rc == 0)
            vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (rc == 0)
        b->len += (size_t)n;
    return rc;
}

int tp_buf_printf(tp_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = tp_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void tp_buf_consume(tp_buf_t *b, size_t n) {
    b->head += n;
    if (b->head == b->len)
        b->head = b->len = 0;
}

void tp_buf_truncate(tp_buf_t *b, size_t size) {
    b->len = b->head + size;
    if (size == 0)
        b->head = b->len = 0;
}

void tp_buf_free(tp_buf_t *b) {
    free(b->data);
    *b = (tp_buf_t){0};
}
