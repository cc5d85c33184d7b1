/* RESP command encoding straight into a buffer (the connection log, or a
 * caller's buffer handed to tp_conn_send_unit()): "*<argc>\r\n" then one
 * "$<len>\r\n<bytes>\r\n" per argument. No allocation once the buffer has grown
 * to its working size. */
#ifndef TP_RESP_H
#define TP_RESP_H

#include "tp/buf.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Appends the header of a command of argc arguments ("*<argc>\r\n"). Returns 0 or TP_ENOMEM,
 * as do the others. */
int tp_resp_array(tp_buf_t *b, size_t argc);
/* Appends one argument, n bytes (binary safe). */
int tp_resp_arg(tp_buf_t *b, const char *p, size_t n);
/* One argument made of two parts, e.g. a key prefix and a key, without joining them first. */
int tp_resp_arg2(tp_buf_t *b, const char *p1, size_t n1, const char *p2, size_t n2);
/* Appends v as a decimal argument. */
int tp_resp_arg_ll(tp_buf_t *b, long long v);
/* Formats v as decimal digits into out (at least 21 bytes); returns the length. */
size_t tp_resp_lltoa(char *out, long long v);

#ifdef __cplusplus
}
#endif

#endif
