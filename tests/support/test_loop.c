#include "test_loop.h"

typedef struct {
    bool expired;
} deadline_t;

static void on_deadline(uv_timer_t *t) {
    ((deadline_t *)t->data)->expired = true;
}

static void on_closed(uv_handle_t *h) {
    (void)h;
}

static bool never(void *arg) {
    (void)arg;
    return false;
}

bool tp_test_run_until(uv_loop_t *loop, tp_test_cond_fn cond, void *arg, int timeout_ms) {
    deadline_t d = {false};
    /* The loop's clock stands still while a test blocks (a redis-cli, a fork): without this the
     * deadline would count from then and could pass before the loop has run at all. */
    uv_update_time(loop);
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    timer.data = &d;
    uv_timer_start(&timer, on_deadline, (uint64_t)timeout_ms, 0);
    bool ok;
    while (!(ok = cond(arg)) && !d.expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, on_closed);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

void tp_test_run_for(uv_loop_t *loop, int ms) {
    tp_test_run_until(loop, never, NULL, ms);
}

bool tp_test_flag_set(void *flag) {
    return *(bool *)flag;
}

bool tp_test_count_zero(void *count) {
    return *(int *)count == 0;
}
