/* Private to drivers/: the switches each implementation file defines, and
 * helpers they share. Nothing outside drivers/ includes this. */
#ifndef XAC_DRV_IMPL_H
#define XAC_DRV_IMPL_H

#include "drv.h"

extern const drv_ops drv_mysql_ops; /* mysql.c */
extern const drv_ops drv_odbc_ops;  /* odbc.c */
extern const drv_ops drv_mssql_ops; /* mssql.c */
extern const drv_ops drv_null_ops;  /* null.c: benchmarks and tests only */

/* Whether the linked FreeTDS db-lib can apply this encryption setting of an
 * mssql resource: per connection from FreeTDS 1.5 on; before that only
 * freetds.conf sets it and its default ("request") stands, so "require"
 * cannot be promised. Defined in mssql.c. */
bool drv_mssql_can_set_encryption(const char *encryption);

/* The XA step a MySQL/MariaDB error number was returned in: the same number
 * means different things in different steps (1401 is "retry" on commit). */
typedef enum drv_step {
    DRV_STEP_OPEN,
    DRV_STEP_START,
    DRV_STEP_END,
    DRV_STEP_PREPARE,
    DRV_STEP_COMMIT,
    DRV_STEP_ROLLBACK,
    DRV_STEP_RECOVER,
    DRV_STEP_EXEC
} drv_step;

/* Maps a MySQL/MariaDB server or client error number to an XA code
 * (design.md lists the table). Shared by mysql.c and odbc_mysql.c.
 * Defined in mysql_errmap.c. */
int drv_mysql_errno_to_xa(unsigned err, drv_step step);
/* Whether the error number means the connection is gone. */
bool drv_mysql_errno_is_connection_loss(unsigned err);

struct st_mysql;
/* prefix, then sql with each '?' replaced by params' SQL literals, escaped
 * for m's character set, then suffix (after a newline when sql ends in a
 * line comment), into a new buffer of at most max bytes (*out, *outlen; the
 * caller frees it). False, with nothing allocated, when sql is not an
 * INSERT/UPDATE/DELETE/REPLACE whose reading is certain or a value has no
 * exact literal. Defined in mysql_fold.c. */
bool drv_mysql_fold(struct st_mysql *m, const char *prefix, const char *sql, size_t len,
                    const xac_value *params, size_t nparams, const char *suffix, size_t max,
                    char **out, size_t *outlen);

#endif
