/* Maps SQL Server error numbers and FreeTDS db-lib error numbers to XA return
 * codes: the one table the mssql driver consults, so that a deadlock victim
 * always reads as a rollback, a constraint violation as an SQL error during
 * the work (the statement failed, the transaction lives) but as
 * XA_RBINTEGRITY at commit, and a lost link or a refused login as
 * XAER_RMFAIL. */
#include <stddef.h>

#include <sybdb.h>

#include "mssql_internal.h"

typedef struct ms_errmap {
    int msgno;
    int work_rc;   /* during start, exec and the other steps */
    int commit_rc; /* at commit */
    const char *note;
} ms_errmap;

static const ms_errmap ms_errors[] = {
    /* SQL Server has rolled the whole transaction back. */
    {1205, XA_RBDEADLOCK, XA_RBDEADLOCK, "deadlock victim; SQL Server rolled the transaction back"},
    {3960, XA_RBROLLBACK, XA_RBROLLBACK,
     "snapshot update conflict; SQL Server rolled the transaction back"},
    /* The statement failed; the transaction is still open. */
    {2627, XAER_RMERR, XA_RBINTEGRITY, "duplicate key"},
    {2601, XAER_RMERR, XA_RBINTEGRITY, "duplicate key"},
    {547, XAER_RMERR, XA_RBINTEGRITY, "constraint violation"},
    {515, XAER_RMERR, XA_RBINTEGRITY, "NULL not allowed"},
    {1222, XAER_RMERR, XAER_RMERR, "lock request timed out"},
    /* COMMIT without a transaction: the server ended it already. */
    {3902, XAER_PROTO, XA_RBROLLBACK, "no transaction is open"},
    /* The login is refused: the resource is unusable until someone acts. */
    {18456, XAER_RMFAIL, XAER_RMFAIL, "login failed"},
    {18452, XAER_RMFAIL, XAER_RMFAIL, "login failed"},
    {18486, XAER_RMFAIL, XAER_RMFAIL, "account locked"},
    {18487, XAER_RMFAIL, XAER_RMFAIL, "password expired"},
    {18488, XAER_RMFAIL, XAER_RMFAIL, "password must be changed"},
    {4060, XAER_RMFAIL, XAER_RMFAIL, "cannot open the database"},
};

int drv_mssql_errno_to_xa(int msgno, drv_step step, const char **note)
{
    if (note != NULL)
        *note = NULL;
    for (size_t i = 0; i < sizeof ms_errors / sizeof ms_errors[0]; i++) {
        if (ms_errors[i].msgno != msgno)
            continue;
        if (note != NULL)
            *note = ms_errors[i].note;
        return step == DRV_STEP_COMMIT ? ms_errors[i].commit_rc : ms_errors[i].work_rc;
    }
    /* Whatever stops a connection from opening makes the resource unreachable. */
    if (step == DRV_STEP_OPEN)
        return XAER_RMFAIL;
    return XAER_RMERR;
}

bool drv_mssql_errno_is_login_failure(int msgno)
{
    switch (msgno) {
    case 18456:
    case 18452:
    case 18486:
    case 18487:
    case 18488:
        return true;
    default:
        return false;
    }
}

/* SYBESMSG is not here on purpose: db-lib raises it with every error
 * the server sends, and the server's own message carries the number. */
bool drv_mssql_dberr_is_connection_loss(int dberr)
{
    switch (dberr) {
    case SYBEFCON: /* connection failed */
    case SYBETIME: /* timed out; the link is closed rather than reused */
    case SYBEREAD: /* read failed */
    case SYBEWRIT: /* write failed */
    case SYBESOCK: /* cannot open a socket */
    case SYBECONN: /* cannot connect */
    case SYBEINTF: /* server name not found */
    case SYBEUHST: /* unknown host */
    case SYBESEOF: /* unexpected EOF */
    case SYBEBTOK: /* bad token, stream out of sync */
    case SYBEDDNE: /* DBPROCESS is dead or not enabled */
        return true;
    default:
        return false;
    }
}
