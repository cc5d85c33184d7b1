#include "tp/buf.h"

#include "tp/error.h"

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
    size_t cap = b->cap ? b->cap : 4096;
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
