/* LD_PRELOAD=libtp_alloc_count.so PROGRAM: counts every malloc, calloc and realloc of PROGRAM
 * (malloc_count.c) and prints {"msg":"allocations","count":N} on stderr when it exits -- after
 * tickplane's orderly shutdown, in its JSON log. bench/run.sh compares a short and a long run
 * to get the steady-state allocations per frame.
 *
 * SIGUSR2 prints the count so far, {"msg":"allocations","count":N,"signal":"SIGUSR2"}, and
 * the program goes on: bench/marks.sh takes the count at both ends of its measured window in
 * one run. The handler only reads the counter and calls write(2), both async-signal-safe; if
 * the signal lands on another thread than the one allocating, the count read may miss an
 * allocation in flight. */
#define _GNU_SOURCE /* sigaction and SA_RESTART under -std=c11 */

#include "malloc_count.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void write_line(const char *line, size_t len) {
    if (write(STDERR_FILENO, line, len) < 0)
        return; /* nowhere left to report to */
}

/* snprintf is not async-signal-safe: the digits by hand. */
static void on_sigusr2(int sig) {
    (void)sig;
    static const char head[] = "{\"msg\":\"allocations\",\"count\":";
    static const char tail[] = ",\"signal\":\"SIGUSR2\"}\n";
    char line[sizeof(head) + 20 + sizeof(tail)], digits[20];
    uint64_t v = tp_bench_allocations();
    size_t n = 0, len = sizeof(head) - 1;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    memcpy(line, head, len);
    while (n > 0)
        line[len++] = digits[--n];
    memcpy(line + len, tail, sizeof(tail) - 1);
    write_line(line, len + sizeof(tail) - 1);
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa = {.sa_handler = on_sigusr2, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

__attribute__((destructor)) static void report(void) {
    char line[80];
    int n = snprintf(line, sizeof(line), "{\"msg\":\"allocations\",\"count\":%llu}\n",
                     (unsigned long long)tp_bench_allocations());
    if (n > 0)
        write_line(line, (size_t)n);
}
