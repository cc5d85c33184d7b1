#include "token.h"
#include "tp/error.h"

#include <openssl/rand.h>

int tp__random_token(char *out, size_t nbytes) {
    unsigned char bytes[64];
    if (nbytes > sizeof(bytes) || RAND_bytes(bytes, (int)nbytes) != 1)
        return TP_ENOMEM;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return 0;
}
