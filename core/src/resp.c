#include "tp/resp.h"

#include <string.h>

size_t tp_resp_lltoa(char *out, long long v) {
    char tmp[24];
    size_t n = 0;
    /* Work on the magnitude as unsigned so that LLONG_MIN does not overflow. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

static int header(tp_buf_t *b, char kind, size_t n) {
    int rc = tp_buf_reserve(b, 24);
    if (rc)
        return rc;
    char *p = b->data + b->len;
    *p++ = kind;
    p += tp_resp_lltoa(p, (long long)n);
    *p++ = '\r';
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
    return 0;
}

int tp_resp_array(tp_buf_t *b, size_t argc) {
    return header(b, '*', argc);
}

int tp_resp_arg2(tp_buf_t *b, const char *p1, size_t n1, const char *p2, size_t n2) {
    int rc = header(b, '$', n1 + n2);
    if (rc == 0)
        rc = tp_buf_reserve(b, n1 + n2 + 2);
    if (rc)
        return rc;
    char *p = b->data + b->len;
    if (n1)
        memcpy(p, p1, n1);
    if (n2)
        memcpy(p + n1, p2, n2);
    p[n1 + n2] = '\r';
    p[n1 + n2 + 1] = '\n';
    b->len += n1 + n2 + 2;
    return 0;
}

int tp_resp_arg(tp_buf_t *b, const char *p, size_t n) {
    return tp_resp_arg2(b, p, n, NULL, 0);
}

int tp_resp_arg_ll(tp_buf_t *b, long long v) {
    char digits[24];
    return tp_resp_arg(b, digits, tp_resp_lltoa(digits, v));
}
