#include "reply.h"

#include <stdlib.h>
#include <string.h>

struct tp__arena_chunk_s {
    tp__arena_chunk_t *next;
    size_t cap;
    size_t used;
    max_align_t data[];
};

static void *arena_alloc(tp__arena_t *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    tp__arena_chunk_t *c = a->chunks;
    if (c == NULL || c->cap - c->used < n) {
        /* Chunks only ever grow, and a reset folds them into one big enough for
         * the largest reply seen, so a new chunk means a new high-water mark. */
        size_t cap = c ? c->cap * 2 : 16384;
        while (cap < n)
            cap *= 2;
        tp__arena_chunk_t *nc = malloc(sizeof(*nc) + cap);
        if (nc == NULL)
            return NULL;
        nc->next = c;
        nc->cap = cap;
        nc->used = 0;
        a->chunks = c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

void tp__arena_reset(tp__arena_t *a) {
    tp__arena_chunk_t *c = a->chunks;
    if (c == NULL)
        return;
    if (c->next) {
        /* Several chunks: keep one of the combined size for the next reply. */
        size_t total = 0;
        for (tp__arena_chunk_t *p = c; p; p = p->next)
            total += p->cap;
        tp__arena_free(a);
        tp__arena_chunk_t *nc = malloc(sizeof(*nc) + total);
        if (nc == NULL)
            return;
        *nc = (tp__arena_chunk_t){.next = NULL, .cap = total, .used = 0};
        a->chunks = nc;
        return;
    }
    c->used = 0;
}

void tp__arena_free(tp__arena_t *a) {
    tp__arena_chunk_t *c = a->chunks;
    while (c) {
        tp__arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
}

/* Allocates a reply for task and links it into its parent array. */
static tp_reply_t *new_reply(const redisReadTask *task, tp_reply_type_t type) {
    tp_reply_t *r = arena_alloc(task->privdata, sizeof(*r));
    if (r == NULL)
        return NULL;
    *r = (tp_reply_t){.type = type};
    if (task->parent) {
        tp_reply_t *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len) {
    char *copy = arena_alloc(task->privdata, len + 1);
    tp_reply_t *r = copy ? new_reply(task, (tp_reply_type_t)task->type) : NULL;
    if (r == NULL)
        return NULL;
    memcpy(copy, str, len);
    copy[len] = '\0';
    r->str = copy;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements) {
    tp_reply_t **items = NULL;
    if (elements > 0) {
        items = arena_alloc(task->privdata, (size_t)elements * sizeof(*items));
        if (items == NULL)
            return NULL;
    }
    tp_reply_t *r = new_reply(task, TP_REPLY_ARRAY);
    if (r == NULL)
        return NULL;
    r->elements = elements > 0 ? (size_t)elements : 0;
    r->element = items;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value) {
    tp_reply_t *r = new_reply(task, TP_REPLY_INTEGER);
    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task) {
    return new_reply(task, TP_REPLY_NIL);
}

/* Objects die with the arena; the reader's own free calls have nothing to do. */
static void free_object(void *obj) {
    (void)obj;
}

static redisReplyObjectFunctions arena_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

redisReader *tp__reader_new(tp__arena_t *arena) {
    redisReader *r = redisReaderCreateWithFunctions(&arena_functions);
    if (r == NULL)
        return NULL;
    r->privdata = arena;
    /* Keep the reader's input buffer however large it grew: hiredis would
     * otherwise free and reallocate it whenever it drains above 16 KiB. */
    r->maxbuf = 0;
    return r;
}

void tp__reader_free(redisReader *r) {
    if (r)
        redisReaderFree(r);
}
