/* Counting and failing allocations in a test (tests/support/alloc_wrap.c): a test linked with
 * tp_wrap_allocations() (tests/CMakeLists.txt) has every malloc, calloc and realloc of its
 * own code and of the project's libraries sent here first, then to the real one (or the
 * sanitizer's). */
#ifndef TP_ALLOC_WRAP_H
#define TP_ALLOC_WRAP_H

#include <stdbool.h>

/* Calls to malloc, calloc and realloc so far. */
extern unsigned long tp_test_allocations;
/* While true, each of them fails (returns NULL) instead. */
extern bool tp_test_fail_allocations;

#endif
