/* Maps MySQL/MariaDB error numbers to XA return codes, by number and by the XA
 * step they came back from (design.md's table). Shared by the native MySQL
 * driver and the ODBC driver's mysql dialect, so that both tell recovery the
 * same thing: a lost link is XAER_RMFAIL, an unknown XID is XAER_NOTA, and
 * "retry" is never mistaken for a final answer. */
#include "drv_impl.h"

bool drv_mysql_errno_is_connection_loss(unsigned err)
{
    switch (err) {
    case 2001: /* CR_SOCKET_CREATE_ERROR */
    case 2002: /* CR_CONNECTION_ERROR */
    case 2003: /* CR_CONN_HOST_ERROR */
    case 2004: /* CR_IPSOCK_ERROR */
    case 2005: /* CR_UNKNOWN_HOST */
    case 2006: /* CR_SERVER_GONE_ERROR */
    case 2011: /* CR_TCP_CONNECTION */
    case 2012: /* CR_SERVER_HANDSHAKE_ERR */
    case 2013: /* CR_SERVER_LOST */
    case 2014: /* CR_COMMANDS_OUT_OF_SYNC: the link is alive but unusable */
    case 2026: /* CR_SSL_CONNECTION_ERROR */
    case 2027: /* CR_MALFORMED_PACKET */
    case 2047: /* CR_CONN_UNKNOWN_PROTOCOL */
    case 2048: /* CR_INVALID_CONN_HANDLE */
    case 2055: /* CR_SERVER_LOST_EXTENDED */
    case 5013: /* CR_ERR_NET_READ */
    case 5014: /* CR_ERR_NET_WRITE */
    case 5015: /* CR_ERR_NET_UNCOMPRESS */
    case 1053: /* ER_SERVER_SHUTDOWN */
    case 1152: /* ER_ABORTING_CONNECTION */
    case 1158: /* ER_NET_READ_ERROR */
    case 1159: /* ER_NET_READ_INTERRUPTED */
    case 1160: /* ER_NET_ERROR_ON_WRITE */
    case 1161: /* ER_NET_WRITE_INTERRUPTED */
    case 1927: /* ER_CONNECTION_KILLED (MariaDB) */
        return true;
    default:
        return false;
    }
}

/* Constraint violations. Only at PREPARE do they mean "this branch votes no
 * because of integrity"; during EXEC the statement failed and the branch lives. */
static bool is_integrity(unsigned err)
{
    switch (err) {
    case 1022: /* ER_DUP_KEY */
    case 1048: /* ER_BAD_NULL_ERROR */
    case 1062: /* ER_DUP_ENTRY */
    case 1169: /* ER_DUP_UNIQUE */
    case 1216: /* ER_NO_REFERENCED_ROW */
    case 1217: /* ER_ROW_IS_REFERENCED */
    case 1451: /* ER_ROW_IS_REFERENCED_2 */
    case 1452: /* ER_NO_REFERENCED_ROW_2 */
    case 1557: /* MySQL ER_FOREIGN_DUPLICATE_KEY */
    case 1586: /* ER_DUP_ENTRY_WITH_KEY_NAME */
    case 1761: /* ER_FOREIGN_DUPLICATE_KEY_WITH_CHILD_INFO */
    case 1762: /* ER_FOREIGN_DUPLICATE_KEY_WITHOUT_CHILD_INFO */
    case 3819: /* MySQL ER_CHECK_CONSTRAINT_VIOLATED */
    case 4025: /* MariaDB ER_CONSTRAINT_FAILED */
        return true;
    default:
        return false;
    }
}

int drv_mysql_errno_to_xa(unsigned err, drv_step step)
{
    if (drv_mysql_errno_is_connection_loss(err))
        return XAER_RMFAIL;
    /* Whatever stops a connection from opening (bad password, too many
     * connections, unknown database) makes the resource unreachable for us. */
    if (step == DRV_STEP_OPEN)
        return XAER_RMFAIL;
    switch (err) {
    case 1397:
        return XAER_NOTA;
    case 1398:
        return XAER_INVAL;
    case 1399: /* the XA state does not allow the command */
        return XAER_RMFAIL;
    case 1400:
        return XAER_OUTSIDE;
    case 1401:
        /* On COMMIT/ROLLBACK MariaDB means "not now, try again"; not final. */
        if (step == DRV_STEP_COMMIT || step == DRV_STEP_ROLLBACK)
            return XA_RETRY;
        return XAER_RMERR;
    case 3197: /* MySQL ER_XA_RETRY */
        return XA_RETRY;
    case 1402:
        return XA_RBROLLBACK;
    case 1440:
        return XAER_DUPID;
    case 1613:
        return XA_RBTIMEOUT;
    case 1614:
    case 1213: /* ER_LOCK_DEADLOCK: InnoDB rolled the whole branch back */
        return XA_RBDEADLOCK;
    default:
        break;
    }
    if (step == DRV_STEP_PREPARE && is_integrity(err))
        return XA_RBINTEGRITY;
    return XAER_RMERR;
}
