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

/* An array reply while hiredis fills it. hiredis passes the element count from the wire before
 * any element has arrived, so the count cannot size an allocation: "*2147483647\r\n" is 13 bytes
 * and would ask for 16 GiB at once. The element table starts small and doubles (up to the
 * count) as elements are created, so memory follows the bytes actually received. The tables
 * left behind when it grows stay in the arena until its reset: at most as much again. */
typedef struct {
    tp_reply_t reply; /* first: the reader's obj for the array is &reply */
    size_t cap;       /* slots in reply.element */
} array_t;

enum { ARRAY_FIRST_SLOTS = 8 };

/* Stores child at task->idx of the parent array, growing its table when needed. */
static int link_child(const redisReadTask *task, tp_reply_t *child) {
    array_t *parent = task->parent->obj;
    size_t idx = (size_t)task->idx;
    if (idx >= parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : ARRAY_FIRST_SLOTS;
        while (cap <= idx)
            cap *= 2;
        if (cap > parent->reply.elements)
            cap = parent->reply.elements;
        tp_reply_t **items = arena_alloc(task->privdata, cap * sizeof(*items));
        if (items == NULL)
            return -1;
        if (parent->cap)
            memcpy(items, parent->reply.element, parent->cap * sizeof(*items));
        parent->reply.element = items;
        parent->cap = cap;
    }
    parent->reply.element[idx] = child;
    return 0;
}

/* Allocates a reply of size bytes (an array_t for arrays) for task and links it into its
 * parent array. */
static tp_reply_t *new_reply(const redisReadTask *task, tp_reply_type_t type, size_t size) {
    tp_reply_t *r = arena_alloc(task->privdata, size);
    if (r == NULL)
        return NULL;
    *r = (tp_reply_t){.type = type};
    if (task->parent && link_child(task, r) != 0)
        return NULL;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len) {
    char *copy = arena_alloc(task->privdata, len + 1);
    tp_reply_t *r = copy ? new_reply(task, (tp_reply_type_t)task->type, sizeof(tp_reply_t)) : NULL;
    if (r == NULL)
        return NULL;
    memcpy(copy, str, len);
    copy[len] = '\0';
    r->str = copy;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements) {
    array_t *a = (array_t *)new_reply(task, TP_REPLY_ARRAY, sizeof(array_t));
    if (a == NULL)
        return NULL;
    a->cap = 0;
    a->reply.elements = elements > 0 ? (size_t)elements : 0;
    a->reply.element = NULL; /* the first element allocates the table */
    return &a->reply;
}

static void *create_integer(const redisReadTask *task, long long value) {
    tp_reply_t *r = new_reply(task, TP_REPLY_INTEGER, sizeof(*r));
    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task) {
    return new_reply(task, TP_REPLY_NIL, sizeof(tp_reply_t));
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
