/* Random tokens for the utilities (lock owners, session ids, cache leases): bytes from OpenSSL's
 * generator, in lowercase hex, so that nobody can guess another's. Private to core. */
#ifndef TP_TOKEN_H
#define TP_TOKEN_H

#include <stddef.h>

/* Writes 2 * nbytes hex digits and a NUL to out. 0, or TP_ENOMEM when the generator could not
 * be seeded (never a guessable token). */
int tp__random_token(char *out, size_t nbytes);

#endif
