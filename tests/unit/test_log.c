/* JSON log lines and error names/messages. Each line is checked by Python's
 * json module, so "valid JSON" is not judged by our own code. */
#include "tp/error.h"
#include "tp/log.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static char path[] = "/tmp/tp-log-XXXXXX";

/* Sends stderr to a temporary file for the test (each test is its own process). */
static void capture(void) {
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_not_null(freopen(path, "w", stderr));
}

static void finish(void) {
    unlink(path);
}

/* Runs a Python check over the captured lines (the program goes through a
 * file, so no shell quoting is involved); returns its exit status. */
static int python_check(const char *program) {
    fflush(stderr);
    char script[] = "/tmp/tp-log-check-XXXXXX";
    int fd = mkstemp(script);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    cr_assert_not_null(f);
    fprintf(f, "import json, sys\nlines = [json.loads(l) for l in open(sys.argv[1])]\n%s\n",
            program);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s 1>&2", script, path);
    int status = system(cmd);
    unlink(script);
    return status;
}

TestSuite(log, .init = capture, .fini = finish);

/* Every line is one JSON object with ts, level, msg and the fields, strings
 * escaped (quotes, backslashes, control characters) and integers as numbers. */
Test(log, lines_are_json_with_fields) {
    tp_log_level = TP_LOG_INFO;
    TP_LOG(TP_LOG_INFO, "plain message");
    TP_LOG(TP_LOG_WARN, "quote \" backslash \\ newline \n tab \t", TP_STR("k", "v\"\x01"),
           TP_INT("n", -42), TP_INT("big", 9007199254740993LL));
    cr_assert_eq(python_check("assert len(lines) == 2\n"
                              "a, b = lines\n"
                              "assert a['level'] == 'info' and a['msg'] == 'plain message'\n"
                              "assert a['ts'].endswith('Z') and 'T' in a['ts']\n"
                              "assert b['level'] == 'warn'\n"
                              "assert b['msg'] == 'quote \" backslash \\\\ newline \\n tab \\t'\n"
                              "assert b['k'] == 'v\"\\x01' and b['n'] == -42\n"
                              "assert b['big'] == 9007199254740993"),
                 0);
}

/* Lines below TP_LOG_LEVEL are not written (nor their fields formatted). */
Test(log, level_filters) {
    cr_assert_eq(tp_log_level_parse("warn", &tp_log_level), 0);
    TP_LOG(TP_LOG_DEBUG, "hidden");
    TP_LOG(TP_LOG_INFO, "hidden");
    TP_LOG(TP_LOG_ERROR, "shown");
    cr_assert_eq(python_check("assert [l['msg'] for l in lines] == ['shown']"), 0);
    cr_assert_eq(tp_log_level_parse("verbose", &tp_log_level), TP_EINVAL);
}

/* A line too long for the buffer is cut but stays one line of valid JSON. */
Test(log, overlong_line_stays_json) {
    static char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    TP_LOG(TP_LOG_ERROR, "long", TP_STR("payload", big));
    cr_assert_eq(python_check("assert len(lines) == 1 and lines[0]['msg'] == 'long'"), 0);
}

/* Every code has a name and a message; libuv's codes pass through. */
Test(errors, names_and_messages) {
    cr_assert_str_eq(tp_err_name(TP_ETIMEDOUT), "TIMEDOUT");
    cr_assert_str_eq(tp_strerror(TP_ETIMEDOUT), "command timed out");
    cr_assert_str_eq(tp_strerror(TP_OK), "success");
    cr_assert_str_eq(tp_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
    cr_assert_str_eq(tp_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
    for (int code = TP__ERRNO_FIRST + 1; code < TP__ERRNO_END; code++)
        cr_assert_str_neq(tp_err_name(code), "UNKNOWN", "code %d", code);
}
