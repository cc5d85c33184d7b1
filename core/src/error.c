#include "tp/error.h"

#include <uv.h>

const char *tp_strerror(int err) {
    switch (err) {
    case TP_OK:
        return "success";
#define TP__ERRNO_MSG(name, msg)                                                                   \
    case TP_E##name:                                                                               \
        return msg;
        TP_ERRNO_MAP(TP__ERRNO_MSG)
#undef TP__ERRNO_MSG
    default:
        /* Other negative codes are libuv's (negated errno values). */
        return err < 0 ? uv_strerror(err) : "unknown error";
    }
}

const char *tp_err_name(int err) {
    switch (err) {
    case TP_OK:
        return "OK";
#define TP__ERRNO_NAME(name, msg)                                                                  \
    case TP_E##name:                                                                               \
        return #name;
        TP_ERRNO_MAP(TP__ERRNO_NAME)
#undef TP__ERRNO_NAME
    default:
        return err < 0 ? uv_err_name(err) : "UNKNOWN";
    }
}
