/* Private to the mssql driver and its unit test: the pure pieces of the
 * driver that need no server (placeholder rewriting, the decoder of
 * xp_sqljdbc_xa_recover's packed records, the SQL Server error table), so
 * tests/unit/test_mssql_*.c can check them without a TDS connection. */
#ifndef XAC_MSSQL_INTERNAL_H
#define XAC_MSSQL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "drv_impl.h"

/* At most this many parameters per statement: SQL Server takes 2100 per
 * RPC and sp_executesql uses two of them for the statement and the list. */
#define DRV_MSSQL_MAX_PARAMS 2098

/* Rewrites each '?' outside string literals, quoted identifiers ("..." and
 * [...]) and comments to @P1, @P2, ... in order. subst, when not NULL, has
 * one entry per '?': a non-NULL entry is written instead of @Pn (a literal
 * for a value sp_executesql cannot carry, such as an empty string). *out is
 * malloc'd and NUL-terminated; *nmarks is the number of '?' seen. A '?' past
 * nsubst entries is still counted (the caller reports the mismatch). An
 * unterminated literal or comment is left for the server to refuse.
 * Returns XAC_OK or XAC_ENOMEM. */
int drv_mssql_rewrite(const char *sql, size_t len, const char *const *subst, size_t nsubst,
                      char **out, size_t *nmarks, xac_err *err);

/* Decodes xp_sqljdbc_xa_recover's @data: records of formatId (4 bytes
 * little-endian), gtrid length (1 byte), bqual length (1 byte), gtrid,
 * bqual. *out is malloc'd (NULL when there are none). A record that runs
 * past the end, or a length over 64, is XAC_EPROTO with the record's
 * number and offset in err. */
int drv_mssql_decode_recover(const uint8_t *data, size_t len, drv_indoubt **out, size_t *n,
                             xac_err *err);

/* What a SQL Server error number means for xac (mssql_errmap.c, the one
 * table). *note, when not NULL, gets a short explanation for the message
 * ("duplicate key") or NULL. */
int drv_mssql_errno_to_xa(int msgno, drv_step step, const char **note);
/* The server refused the login (bad user or password, database refused). */
bool drv_mssql_errno_is_login_failure(int msgno);
/* A db-lib error number (SYBE...) that means the link is gone. */
bool drv_mssql_dberr_is_connection_loss(int dberr);

/* A gtrid that can go into the marker table's SQL as a literal:
 * [A-Za-z0-9._-]{1,64} (or {0,64} with empty_ok, for prefixes). */
bool drv_mssql_valid_gtrid(const char *s, bool empty_ok);

#endif
