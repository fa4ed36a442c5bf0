/* Unit tests of logging: line format, level filtering, whole lines under
 * concurrent writers, a log file that cannot be opened, and the clocks. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cu.h"
#include "xac_common.h"

#define THREADS 4
#define LINES   500

static char path[64];

static void *writer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < LINES; i++)
        xac_logi("thread %ld line %d %s", id, i, "payload-payload-payload-payload");
    return NULL;
}

static void test_file_and_threads(void)
{
    xac_err e;
    snprintf(path, sizeof path, "/tmp/xac-test-log-%ld.log", (long)getpid());
    unlink(path);
    CU_ASSERT_EQUAL_FATAL(xac_log_init("tlog", XAC_LOG_INFO, path, &e), XAC_OK);
    xac_logd("hidden debug line");
    xac_logw("warn with trailing newline\n");
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(xac_log_init("tlog", XAC_LOG_INFO, NULL, &e), XAC_OK); /* back to stderr */

    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[512];
    int info = 0, warn = 0, other = 0;
    int seen[THREADS] = {0};
    while (fgets(line, sizeof line, f) != NULL) {
        int y, mo, d, h, mi, s, us;
        char lvl[16];
        /* 2026-11-23T16:43:48.123456Z tlog[123] INFO: ... */
        int n = sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ tlog[%*d] %15[A-Z]:", &y, &mo, &d, &h,
                       &mi, &s, &us, lvl);
        CU_ASSERT_EQUAL(n, 8);
        CU_ASSERT_EQUAL(line[strlen(line) - 1], '\n');
        long id;
        int k;
        if (n == 8 && strcmp(lvl, "INFO") == 0) {
            const char *m = strstr(line, "INFO: thread ");
            if (m != NULL && sscanf(m, "INFO: thread %ld line %d", &id, &k) == 2 && id >= 0 &&
                id < THREADS && k == seen[id]) {
                seen[id]++;
                info++;
                CU_ASSERT_PTR_NOT_NULL(strstr(line, "payload-payload-payload-payload\n"));
            } else {
                other++;
            }
        } else if (n == 8 && strcmp(lvl, "WARN") == 0) {
            warn++;
            CU_ASSERT_PTR_NOT_NULL(strstr(line, "WARN: warn with trailing newline\n"));
        } else {
            other++;
        }
    }
    fclose(f);
    unlink(path);
    CU_ASSERT_EQUAL(info, THREADS * LINES);
    CU_ASSERT_EQUAL(warn, 1);
    CU_ASSERT_EQUAL(other, 0); /* no debug line, no torn or interleaved line */
}

static void test_bad_path(void)
{
    xac_err e;
    xac_err_clear(&e);
    CU_ASSERT_EQUAL(xac_log_init("tlog", XAC_LOG_INFO, "/nonexistent-dir/x.log", &e), XAC_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nonexistent-dir/x.log"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "errno"));
}

static void test_level_parse(void)
{
    xac_log_level l = XAC_LOG_OFF;
    CU_ASSERT_EQUAL(xac_log_level_parse("debug", &l), XAC_OK);
    CU_ASSERT_EQUAL(l, XAC_LOG_DEBUG);
    CU_ASSERT_EQUAL(xac_log_level_parse("WARN", &l), XAC_OK);
    CU_ASSERT_EQUAL(l, XAC_LOG_WARN);
    CU_ASSERT_EQUAL(xac_log_level_parse("off", &l), XAC_OK);
    CU_ASSERT_EQUAL(l, XAC_LOG_OFF);
    CU_ASSERT_NOT_EQUAL(xac_log_level_parse("loud", &l), XAC_OK);
    CU_ASSERT_NOT_EQUAL(xac_log_level_parse(NULL, &l), XAC_OK);
}

static void test_clocks(void)
{
    uint64_t a = xac_now_mono_us();
    uint64_t b = xac_now_mono_us();
    CU_ASSERT_TRUE(b >= a);
    uint64_t w = xac_now_wall_us() / 1000000u;
    uint64_t t = (uint64_t)time(NULL);
    CU_ASSERT_TRUE(w + 1 >= t && w <= t + 1);
}

int cu_register(void)
{
    static const cu_test tests[] = {{"file and threads", test_file_and_threads},
                                    {"bad path", test_bad_path},
                                    {"level parse", test_level_parse},
                                    {"clocks", test_clocks},
                                    {NULL, NULL}};
    return cu_add_suite("log", tests);
}
