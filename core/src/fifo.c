#include "fifo.h"

#include "tp/error.h"

int tp__fifo_push(tp__fifo_t *f, const tp__pending_t *p) {
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 1024;
        tp__pending_t *items = malloc(cap * sizeof(*items));
        if (items == NULL)
            return TP_ENOMEM;
        for (size_t i = 0; i < f->count; i++)
            items[i] = f->items[(f->head + i) & (f->cap - 1)];
        free(f->items);
        *f = (tp__fifo_t){.items = items, .head = 0, .count = f->count, .cap = cap};
    }
    f->items[(f->head + f->count) & (f->cap - 1)] = *p;
    f->count++;
    return 0;
}
