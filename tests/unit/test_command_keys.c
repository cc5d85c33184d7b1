/* Which key routes a command in Redis Cluster (core/src/command_keys.h): argv and RESP forms. */
#include "command_keys.h"
#include "tp/pool.h"
#include "tp/resp.h"

#include <criterion/criterion.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static unsigned slot_of(size_t argc, const char *const *argv) {
    tp__arg_t args[16];
    for (size_t i = 0; i < argc; i++)
        args[i] = (tp__arg_t){argv[i], strlen(argv[i])};
    return tp__command_slot(argc, args);
}

static unsigned key(const char *k) {
    return tp_key_slot(k, strlen(k));
}

#define SLOT(...)                                                                                  \
    slot_of(COUNT(((const char *const[]){__VA_ARGS__})), (const char *const[]){__VA_ARGS__})

Test(command_keys, first_key_of_each_form) {
    cr_expect_eq(SLOT("GET", "a"), key("a"));
    cr_expect_eq(SLOT("hset", "{acct}:pf", "f", "v"), key("acct"));
    cr_expect_eq(SLOT("EVALSHA", "abc", "2", "k1", "k2"), key("k1"));
    cr_expect_eq(SLOT("eval", "return 1", "0", "arg"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("FCALL", "f", "1", "fk"), key("fk"));
    cr_expect_eq(SLOT("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s1", ">"),
                 key("s1"));
    cr_expect_eq(SLOT("XREAD", "BLOCK", "0", "streams", "s2", "$"), key("s2"));
    cr_expect_eq(SLOT("XREAD", "COUNT", "1"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("OBJECT", "ENCODING", "ok"), key("ok"));
    cr_expect_eq(SLOT("MEMORY", "USAGE", "mk"), key("mk"));
}

Test(command_keys, commands_without_a_key) {
    cr_expect_eq(SLOT("PING"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("MULTI"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("CLUSTER", "SHARDS"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("client", "info"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("SCAN", "0", "MATCH", "x*"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("WAIT", "1", "100"), TP__SLOT_ANY);
    cr_expect_eq(SLOT("GET"), TP__SLOT_ANY, "no argument: no key");
}

static void encode(tp_buf_t *b, size_t argc, const char *const *argv) {
    tp_resp_array(b, argc);
    for (size_t i = 0; i < argc; i++)
        tp_resp_arg(b, argv[i], strlen(argv[i]));
}

Test(command_keys, a_unit_routes_by_its_first_key) {
    tp_buf_t b = {0};
    encode(&b, 1, (const char *const[]){"MULTI"});
    encode(&b, 4, (const char *const[]){"HSET", "{A1}:ord:7", "status", "2"});
    encode(&b, 3, (const char *const[]){"SADD", "{B2}:open", "7"});
    encode(&b, 1, (const char *const[]){"EXEC"});
    cr_expect_eq(tp__resp_slot(tp_buf_ptr(&b), tp_buf_size(&b)), key("A1"));
    tp_buf_truncate(&b, 0);
    encode(&b, 1, (const char *const[]){"MULTI"});
    encode(&b, 1, (const char *const[]){"EXEC"});
    cr_expect_eq(tp__resp_slot(tp_buf_ptr(&b), tp_buf_size(&b)), TP__SLOT_ANY);
    tp_buf_free(&b);
}

Test(command_keys, bytes_that_are_not_commands_route_anywhere) {
    const char *bad[] = {"",
                         "*",
                         "*1\r\n",
                         "*2\r\n$3\r\nGET\r\n$5\r\nab\r\n",
                         "+OK\r\n",
                         "*1\r\n$99\r\nGET\r\n",
                         "$3\r\nGET\r\n"};
    for (size_t i = 0; i < COUNT(bad); i++)
        cr_expect_eq(tp__resp_slot(bad[i], strlen(bad[i])), TP__SLOT_ANY, "case %zu", i);
}
