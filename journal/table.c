/* The in-memory state that replay rebuilds and the writer keeps current: the
 * committed-but-not-ended transactions (a hash table keyed by gtrid) and the
 * segments in use, each with the number of live COMMITs it holds. A segment
 * whose count is zero, and every older one's too, can be deleted. Callers hold
 * the journal's mutex; nothing here does I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_int.h"

static uint64_t hash_gtrid(const char *g)
{
    uint64_t h = 1469598103934665603ull;
    for (; *g; g++)
        h = (h ^ (unsigned char)*g) * 1099511628211ull;
    return h;
}

jent *jent_new(const journal_txn *t, uint64_t decided_us)
{
    jent *e = malloc(sizeof *e + (size_t)t->nbranches * sizeof e->res[0]);
    if (e == NULL)
        return NULL;
    e->next = NULL;
    snprintf(e->gtrid, sizeof e->gtrid, "%s", t->gtrid);
    e->hash = hash_gtrid(e->gtrid);
    e->decided_us = decided_us;
    e->segno = 0;
    e->carry_to = 0;
    e->nbranches = t->nbranches;
    for (int i = 0; i < t->nbranches; i++)
        memcpy(e->res[i], t->resources[i], sizeof e->res[i]);
    return e;
}

void jent_to_txn(const jent *e, journal_txn *t)
{
    memset(t, 0, sizeof *t);
    memcpy(t->gtrid, e->gtrid, sizeof t->gtrid);
    t->nbranches = e->nbranches;
    t->decided_us = e->decided_us;
    for (int i = 0; i < e->nbranches; i++)
        memcpy(t->resources[i], e->res[i], sizeof t->resources[i]);
}

int jtab_init(jtab *t)
{
    memset(t, 0, sizeof *t);
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    return t->buckets != NULL ? 0 : -1;
}

void jtab_free(jtab *t)
{
    for (size_t i = 0; t->buckets != NULL && i < t->nbuckets; i++) {
        jent *e = t->buckets[i];
        while (e != NULL) {
            jent *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t->segs);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------- segments */

jseg_live *jtab_seg(jtab *t, uint64_t segno)
{
    size_t lo = 0, hi = t->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->segs[mid].no == segno)
            return &t->segs[mid];
        if (t->segs[mid].no < segno)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int jtab_add_seg(jtab *t, uint64_t segno)
{
    if (t->nsegs == t->capsegs) {
        size_t nc = t->capsegs ? t->capsegs * 2 : 8;
        jseg_live *ns = realloc(t->segs, nc * sizeof *ns);
        if (ns == NULL)
            return -1;
        t->segs = ns;
        t->capsegs = nc;
    }
    t->segs[t->nsegs++] = (jseg_live){.no = segno, .live = 0};
    return 0;
}

size_t jtab_deletable(const jtab *t)
{
    size_t n = 0;
    /* The last segment is the active one and is never deleted. */
    while (n + 1 < t->nsegs && t->segs[n].live == 0)
        n++;
    return n;
}

void jtab_drop_segs(jtab *t, size_t n)
{
    memmove(t->segs, t->segs + n, (t->nsegs - n) * sizeof *t->segs);
    t->nsegs -= n;
}

static void seg_count(jtab *t, uint64_t segno, int delta)
{
    jseg_live *s = jtab_seg(t, segno);
    if (s != NULL)
        s->live = (uint64_t)((int64_t)s->live + delta);
}

/* ---------------------------------------------------------------- table */

static jent **slot(jtab *t, const char *gtrid, uint64_t h)
{
    jent **pp = &t->buckets[h & (t->nbuckets - 1)];
    while (*pp != NULL && !((*pp)->hash == h && strcmp((*pp)->gtrid, gtrid) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Doubling keeps chains short; a failed grow only makes them longer. */
static void grow(jtab *t)
{
    size_t nb = t->nbuckets * 2;
    jent **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        jent *e = t->buckets[i];
        while (e != NULL) {
            jent *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

void jtab_put(jtab *t, jent *e)
{
    seg_count(t, e->segno, +1);
    jent **pp = slot(t, e->gtrid, e->hash);
    if (*pp != NULL) {
        /* A COMMIT seen twice (carried forward) keeps the later copy. */
        seg_count(t, (*pp)->segno, -1);
        e->next = (*pp)->next;
        free(*pp);
        *pp = e;
        return;
    }
    e->next = NULL;
    *pp = e;
    t->count++;
    if (t->count > t->nbuckets)
        grow(t);
}

bool jtab_del(jtab *t, const char *gtrid)
{
    jent **pp = slot(t, gtrid, hash_gtrid(gtrid));
    if (*pp == NULL)
        return false;
    jent *e = *pp;
    *pp = e->next;
    seg_count(t, e->segno, -1);
    free(e);
    t->count--;
    return true;
}

jent *jtab_get(jtab *t, const char *gtrid)
{
    return *slot(t, gtrid, hash_gtrid(gtrid));
}

void jtab_each(jtab *t, void (*fn)(void *ctx, jent *e), void *ctx)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (jent *e = t->buckets[i]; e != NULL; e = e->next)
            fn(ctx, e);
}

void jtab_move(jtab *t, jent *e, uint64_t segno)
{
    seg_count(t, e->segno, -1);
    e->segno = segno;
    seg_count(t, segno, +1);
}
