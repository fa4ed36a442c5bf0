/* The error type every fallible function fills: a code, the resource it
 * concerns and a message a user can act on, plus the names of the codes. */
#include <stdio.h>
#include <string.h>

#include "xac_common.h"

void xac_err_clear(xac_err *e)
{
    if (e == NULL)
        return;
    e->code = XAC_OK;
    e->resource[0] = '\0';
    e->msg[0] = '\0';
}

int xac_err_set(xac_err *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    e->resource[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int xac_err_setr(xac_err *e, int code, const char *resource, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    e->code = code;
    snprintf(e->resource, sizeof e->resource, "%s", resource != NULL ? resource : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int xac_err_prefix(xac_err *e, const char *fmt, ...)
{
    if (e == NULL)
        return XAC_EINTERNAL;
    char pre[XAC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char old[XAC_ERR_MSG_MAX];
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t pl = strlen(pre);
    if (pl > sizeof e->msg - 3)
        pl = sizeof e->msg - 3;
    memcpy(e->msg, pre, pl);
    memcpy(e->msg + pl, ": ", 2);
    size_t ol = strlen(old);
    if (ol > sizeof e->msg - pl - 3)
        ol = sizeof e->msg - pl - 3;
    memcpy(e->msg + pl + 2, old, ol);
    e->msg[pl + 2 + ol] = '\0';
    return e->code;
}

const char *xac_code_name(int code)
{
    static const char *const names[] = {
        "XAC_OK",        "XAC_EPROTO",    "XAC_EVERSION", "XAC_EAUTH",   "XAC_ELIMIT",
        "XAC_ESTATE",    "XAC_ERESOURCE", "XAC_ESQL",     "XAC_ERMFAIL", "XAC_ETIMEOUT",
        "XAC_EROLLBACK", "XAC_EJOURNAL",  "XAC_ECONFIG",  "XAC_EIO",     "XAC_ENOMEM",
        "XAC_EINTERNAL", "XAC_EINVAL",    "XAC_ECONN"};
    if (code < 0 || code > XAC_ECODE_MAX)
        return "XAC_E?";
    return names[code];
}
