/* A bounded connection pool for one resource. Connections open lazily up to
 * pool_size; callers beyond that wait on a condition variable with a deadline.
 * After a failed open the pool backs off (100 ms doubling to 5 s) and callers
 * fail fast instead of each paying a connect timeout against a dead database.
 * Idle connections are kept LIFO, so the warm ones are reused and the cold
 * ones are the ones that get pinged. Blocking calls (open, ping, close) run
 * with the mutex released. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drv_impl.h"

#define POOL_BACKOFF_MIN_MS 100u
#define POOL_BACKOFF_MAX_MS 5000u
#define POOL_PING_IDLE_US   1000000u /* ping connections idle longer than this */

typedef struct idle_conn {
    drv_conn *c;
    uint64_t since_us; /* when it was put back */
} idle_conn;

struct drv_pool {
    const drv_conf *conf;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t size;  /* the most connections that may exist */
    size_t count; /* connections that exist or are being opened */
    idle_conn *idle;
    size_t nidle;
    uint32_t backoff_ms;  /* 0: no failure since the last success */
    uint64_t retry_at_us; /* monotonic; opens fail fast before this */
    char last_error[XAC_ERR_MSG_MAX];
    atomic_bool down;
};

int drv_pool_create(const drv_conf *conf, drv_pool **out, xac_err *err)
{
    if (out == NULL)
        return xac_err_set(err, XAC_EINVAL, "drv_pool_create: no output pointer given");
    *out = NULL;
    int rc = drv_check_conf(conf, err);
    if (rc != XAC_OK)
        return rc;
    drv_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return xac_err_setr(err, XAC_ENOMEM, conf->name,
                            "resource %s: out of memory creating its connection pool", conf->name);
    p->conf = conf;
    p->size = (size_t)conf->pool_size;
    p->idle = calloc(p->size, sizeof *p->idle);
    if (p->idle == NULL) {
        free(p);
        return xac_err_setr(err, XAC_ENOMEM, conf->name,
                            "resource %s: out of memory creating a pool of %d connections",
                            conf->name, conf->pool_size);
    }
    pthread_condattr_t ca;
    int e = pthread_mutex_init(&p->mu, NULL);
    if (e == 0) {
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        e = pthread_cond_init(&p->cv, &ca);
        pthread_condattr_destroy(&ca);
        if (e != 0)
            pthread_mutex_destroy(&p->mu);
    }
    if (e != 0) {
        free(p->idle);
        free(p);
        return xac_err_setr(err, XAC_EINTERNAL, conf->name,
                            "resource %s: cannot create the pool's lock: %s", conf->name,
                            strerror(e));
    }
    atomic_init(&p->down, false);
    *out = p;
    return XAC_OK;
}

void drv_pool_destroy(drv_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    size_t in_use = p->count - p->nidle;
    for (size_t i = 0; i < p->nidle; i++)
        drv_close(p->idle[i].c);
    p->nidle = 0;
    pthread_mutex_unlock(&p->mu);
    if (in_use > 0)
        xac_logw("resource %s: pool destroyed with %zu connection(s) still in use; they are "
                 "leaked",
                 p->conf->name, in_use);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->idle);
    free(p);
}

static struct timespec deadline_ts(uint64_t deadline_us)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_us / 1000000u);
    ts.tv_nsec = (long)(deadline_us % 1000000u) * 1000L;
    return ts;
}

/* Opens a connection into a slot the caller already counted. On failure the
 * slot is released and the backoff grows. */
static int open_into_slot(drv_pool *p, drv_conn **out, xac_err *err)
{
    xac_err e;
    xac_err_clear(&e);
    drv_conn *c = NULL;
    int rc = drv_open(p->conf, &c, &e);
    pthread_mutex_lock(&p->mu);
    if (rc == XA_OK) {
        p->backoff_ms = 0;
        p->retry_at_us = 0;
        atomic_store(&p->down, false);
        pthread_mutex_unlock(&p->mu);
        *out = c;
        return XA_OK;
    }
    p->count--;
    p->backoff_ms = p->backoff_ms == 0 ? POOL_BACKOFF_MIN_MS : p->backoff_ms * 2;
    if (p->backoff_ms > POOL_BACKOFF_MAX_MS)
        p->backoff_ms = POOL_BACKOFF_MAX_MS;
    p->retry_at_us = xac_now_mono_us() + (uint64_t)p->backoff_ms * 1000u;
    snprintf(p->last_error, sizeof p->last_error, "%s", e.msg);
    atomic_store(&p->down, true);
    uint32_t backoff = p->backoff_ms;
    pthread_cond_signal(&p->cv); /* a waiter may use the freed slot */
    pthread_mutex_unlock(&p->mu);
    xac_logw("resource %s: cannot connect, next attempt in %u ms: %s", p->conf->name,
             (unsigned)backoff, e.msg);
    if (err != NULL)
        *err = e;
    if (err != NULL && err->resource[0] == '\0')
        snprintf(err->resource, sizeof err->resource, "%s", p->conf->name);
    return rc == XAER_INVAL ? XAER_INVAL : XAER_RMFAIL;
}

int drv_pool_get(drv_pool *p, uint32_t wait_ms, drv_conn **out, xac_err *err)
{
    if (p == NULL || out == NULL) {
        xac_err_set(err, XAC_EINVAL, "drv_pool_get: no pool or output pointer given");
        return XAER_INVAL;
    }
    *out = NULL;
    const char *name = p->conf->name;
    uint64_t deadline = xac_now_mono_us() + (uint64_t)wait_ms * 1000u;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->nidle > 0) {
            idle_conn ic = p->idle[--p->nidle];
            pthread_mutex_unlock(&p->mu);
            if (xac_now_mono_us() - ic.since_us <= POOL_PING_IDLE_US) {
                *out = ic.c;
                return XA_OK;
            }
            xac_err pe;
            xac_err_clear(&pe);
            if (drv_ping(ic.c, &pe) == XA_OK) {
                atomic_store(&p->down, false);
                *out = ic.c;
                return XA_OK;
            }
            /* Keep the slot and replace the dead connection in it. */
            xac_logi("resource %s: an idle connection failed its health check, reconnecting: %s",
                     name, pe.msg);
            drv_close(ic.c);
            pthread_mutex_lock(&p->mu);
            if (p->retry_at_us != 0 && xac_now_mono_us() < p->retry_at_us) {
                p->count--;
                pthread_cond_signal(&p->cv);
                continue; /* the fail-fast branch below reports it */
            }
            pthread_mutex_unlock(&p->mu);
            return open_into_slot(p, out, err);
        }
        if (p->count < p->size) {
            uint64_t now = xac_now_mono_us();
            if (p->retry_at_us != 0 && now < p->retry_at_us) {
                unsigned left = (unsigned)((p->retry_at_us - now + 999u) / 1000u);
                xac_err_setr(err, XAC_ERMFAIL, name,
                             "resource %s is unreachable (next connection attempt in %u ms): %s",
                             name, left, p->last_error);
                pthread_mutex_unlock(&p->mu);
                return XAER_RMFAIL;
            }
            p->count++;
            pthread_mutex_unlock(&p->mu);
            return open_into_slot(p, out, err);
        }
        if (xac_now_mono_us() >= deadline) {
            size_t size = p->size;
            pthread_mutex_unlock(&p->mu);
            xac_err_setr(err, XAC_ELIMIT, name,
                         "resource %s: pool exhausted: all %zu connections stayed busy for %u ms "
                         "(raise pool_size or timeouts.pool_wait_ms)",
                         name, size, (unsigned)wait_ms);
            return XAER_RMERR;
        }
        struct timespec ts = deadline_ts(deadline);
        int e = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        if (e != 0 && e != ETIMEDOUT && e != EINTR) {
            pthread_mutex_unlock(&p->mu);
            xac_err_setr(err, XAC_EINTERNAL, name, "resource %s: waiting for a connection: %s",
                         name, strerror(e));
            return XAER_RMERR;
        }
    }
}

void drv_pool_put(drv_pool *p, drv_conn *c)
{
    if (p == NULL || c == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    if (c->broken || p->nidle >= p->size) {
        if (p->count > 0)
            p->count--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        drv_close(c);
        return;
    }
    p->idle[p->nidle].c = c;
    p->idle[p->nidle].since_us = xac_now_mono_us();
    p->nidle++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

const drv_conf *drv_pool_conf(const drv_pool *p)
{
    return p == NULL ? NULL : p->conf;
}

bool drv_pool_down(const drv_pool *p)
{
    return p != NULL && atomic_load(&p->down);
}
