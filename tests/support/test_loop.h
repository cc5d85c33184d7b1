/* Runs a libuv loop until a condition holds or a deadline passes, so that
 * integration tests can wait for asynchronous results without sleeping. */
#ifndef TP_TEST_LOOP_H
#define TP_TEST_LOOP_H

#include <stdbool.h>
#include <uv.h>

typedef bool (*tp_test_cond_fn)(void *arg);

/* Returns true when cond(arg) became true within timeout_ms. */
bool tp_test_run_until(uv_loop_t *loop, tp_test_cond_fn cond, void *arg, int timeout_ms);

/* Runs the loop for ms milliseconds. */
void tp_test_run_for(uv_loop_t *loop, int ms);

/* Condition helpers: *(bool *)arg, and *(int *)arg reaching zero. */
bool tp_test_flag_set(void *flag);
bool tp_test_count_zero(void *count);

#endif
