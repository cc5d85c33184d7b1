/* tp_info_parse() over INFO replies captured from a real redis-server 7.0.15 (tests/unit/info/:
 * a master with one online replica, and that replica), and over text that is not INFO. */
#define _POSIX_C_SOURCE 200809L

#include "tp/error.h"
#include "tp/health.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fixture(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", TP_INFO_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    static char buf[16384];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return buf;
}

Test(info, master_with_a_replica) {
    size_t len;
    const char *text = fixture("master_with_replica.txt", &len);
    tp_redis_info_t info;
    cr_assert_eq(tp_info_parse(text, len, &info), 0);
    cr_assert_str_eq(info.version, "7.0.15");
    cr_assert_str_eq(info.role, "master");
    cr_assert_str_eq(info.maxmemory_policy, "noeviction");
    cr_assert_eq(info.maxmemory, 0);
    cr_assert_gt(info.used_memory, 0);
    cr_assert_gt(info.fragmentation, 0);
    cr_assert_eq(info.connected_clients, 1);
    cr_assert_eq(info.maxclients, 10000);
    cr_assert_eq(info.connected_replicas, 1);
    cr_assert_eq(info.nreplicas, 1);
    cr_assert_str_eq(info.replicas[0].addr, "127.0.0.1:6398");
    cr_assert_str_eq(info.replicas[0].state, "online");
    cr_assert_gt(info.repl_offset, 0);
    cr_assert_eq(info.replicas[0].behind, info.repl_offset - info.replicas[0].offset);
    cr_assert_geq(info.replicas[0].lag_s, 0);
    cr_assert_eq(info.ndbs, 2);
    cr_assert_eq(info.dbs[0].db, 0);
    cr_assert_eq(info.dbs[0].keys, 3);
    cr_assert_eq(info.dbs[0].expires, 1);
    cr_assert_eq(info.dbs[1].db, 3);
    cr_assert_eq(info.dbs[1].keys, 1);
    cr_assert(!info.loading);
    cr_assert(!info.aof_enabled);
    cr_assert(info.rdb_last_save_ok);
    cr_assert(info.aof_last_write_ok);
    cr_assert(info.can_persist);
    cr_assert(!info.master_link_up, "a master has no master link");
}

Test(info, replica) {
    size_t len;
    const char *text = fixture("replica.txt", &len);
    tp_redis_info_t info;
    cr_assert_eq(tp_info_parse(text, len, &info), 0);
    cr_assert_str_eq(info.role, "slave");
    cr_assert(info.master_link_up);
    cr_assert_geq(info.master_last_io_s, 0);
    cr_assert_eq(info.nreplicas, 0);
}

/* A server that cannot persist: MISCONF is coming for every write. */
Test(info, failed_save_means_it_cannot_persist) {
    const char text[] = "# Persistence\r\nloading:0\r\nrdb_last_bgsave_status:err\r\n"
                        "aof_last_write_status:ok\r\n";
    tp_redis_info_t info;
    cr_assert_eq(tp_info_parse(text, sizeof(text) - 1, &info), 0);
    cr_assert(!info.rdb_last_save_ok);
    cr_assert(!info.can_persist);
    const char aof[] = "aof_enabled:1\naof_last_write_status:err\n";
    cr_assert_eq(tp_info_parse(aof, sizeof(aof) - 1, &info), 0);
    cr_assert(info.aof_enabled);
    cr_assert(!info.can_persist);
}

/* What INFO did not say stays unknown: -1, "", false. */
Test(info, missing_fields_are_unknown) {
    const char text[] = "# Server\r\nredis_version:6.2.0\r\n";
    tp_redis_info_t info;
    cr_assert_eq(tp_info_parse(text, sizeof(text) - 1, &info), 0);
    cr_assert_str_eq(info.version, "6.2.0");
    cr_assert_eq(info.used_memory, -1);
    cr_assert_eq(info.fragmentation, -1);
    cr_assert_str_eq(info.role, "");
    cr_assert_eq(info.ndbs, 0);
    cr_assert(info.can_persist, "no failure reported");
}

/* Bad input: not INFO at all, garbage values, lines cut short, huge values. */
Test(info, bad_text_is_refused_or_unknown) {
    tp_redis_info_t info;
    cr_assert_eq(tp_info_parse("", 0, &info), TP_EPROTOCOL);
    cr_assert_eq(tp_info_parse(NULL, 0, &info), TP_EPROTOCOL);
    const char junk[] = "hello world\r\n# only a comment: here\r\n";
    cr_assert_eq(tp_info_parse(junk, sizeof(junk) - 1, &info), TP_EPROTOCOL);
    char long_version[400] = "redis_version:";
    memset(long_version + 14, '9', 300);
    cr_assert_eq(tp_info_parse(long_version, strlen(long_version), &info), 0);
    cr_assert_eq(strlen(info.version), sizeof(info.version) - 1, "cut to fit");
    const char bad[] = "used_memory:lots\r\ndb0:keys=x,expires\r\nslave0:ip=1.2.3.4,offset=\r\n"
                       "db99999999999:keys=1\r\nconnected_clients:12";
    cr_assert_eq(tp_info_parse(bad, sizeof(bad) - 1, &info), 0);
    cr_assert_eq(info.used_memory, -1);
    cr_assert_eq(info.ndbs, 1);
    cr_assert_eq(info.dbs[0].keys, -1);
    cr_assert_eq(info.nreplicas, 1);
    cr_assert_str_eq(info.replicas[0].addr, "1.2.3.4");
    cr_assert_eq(info.replicas[0].offset, -1);
    cr_assert_eq(info.replicas[0].behind, -1);
    cr_assert_eq(info.connected_clients, 12, "the last line needs no newline");
}
