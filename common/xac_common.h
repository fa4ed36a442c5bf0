/* The whole public face of common/: what the coordinator, the drivers, recovery,
 * the client library and the tools share. The error type, XIDs, SQL values and
 * row sets, the wire codec of the client protocol (docs/protocol.md), CRC32C and
 * logging. common/ depends on no other folder of xac. */
#ifndef XAC_COMMON_H
#define XAC_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- errors */

/* Status codes. 0 is success; every other value is also the error code that
 * travels in an ERROR frame (docs/protocol.md lists them). These are macros,
 * token for token the same as in client/xac.h, so that libxac can include both. */
#define XAC_OK        0
#define XAC_EPROTO    1  /* malformed frame or protocol violation */
#define XAC_EVERSION  2  /* unsupported protocol version */
#define XAC_EAUTH     3  /* unknown client or wrong token */
#define XAC_ELIMIT    4  /* frame too large, too many sessions */
#define XAC_ESTATE    5  /* request not valid now (no transaction, one already open) */
#define XAC_ERESOURCE 6  /* unknown resource name */
#define XAC_ESQL      7  /* the database refused the statement */
#define XAC_ERMFAIL   8  /* the resource is unreachable */
#define XAC_ETIMEOUT  9  /* the transaction timed out and was rolled back */
#define XAC_EROLLBACK 10 /* the transaction is rolled back (or must be) */
#define XAC_EJOURNAL  11 /* the decision journal failed */
#define XAC_ECONFIG   12 /* configuration error */
#define XAC_EIO       13 /* operating-system I/O error */
#define XAC_ENOMEM    14
#define XAC_EINTERNAL 15
#define XAC_EINVAL    16 /* invalid argument */
#define XAC_ECONN     17 /* connection to xacd lost (client side) */
#define XAC_ECODE_MAX 17

#define XAC_ERR_MSG_MAX 512

/* An error a user can act on: a code, the resource it concerns (may be empty)
 * and a message. Functions that can fail return the code and fill this. */
typedef struct xac_err {
    int code;
    char resource[65];
    char msg[XAC_ERR_MSG_MAX];
} xac_err;

void xac_err_clear(xac_err *e);
/* Sets code and message; returns code so callers can `return xac_err_set(...)`.
 * e may be NULL. */
int xac_err_set(xac_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, and names the resource. */
int xac_err_setr(xac_err *e, int code, const char *resource, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prepends "context: " to an existing message. Returns e->code. */
int xac_err_prefix(xac_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A short name of a code, e.g. "XAC_ESQL". Never NULL. */
const char *xac_code_name(int code);

/* ------------------------------------------------------------------ XIDs */

#define XAC_GTRID_MAX    64
#define XAC_BQUAL_MAX    64
#define XAC_NODE_ID_MAX  24         /* node ids: [A-Za-z0-9_-]{1,24} */
#define XAC_RESOURCE_MAX 32         /* resource names: [A-Za-z0-9_-]{1,32} */
#define XAC_FORMAT_ID    0x78616331 /* "xac1" */
#define XAC_PG_GID_MAX   200        /* PostgreSQL gid, excluding the NUL */
#define XAC_XID_TEXT_MAX 300        /* xac_xid_format output, including the NUL */

/* An X/Open XID. gtrid and bqual are bytes, not strings; for xac's own XIDs
 * they happen to be printable ASCII and are NUL-terminated in the arrays. */
typedef struct xac_xid {
    int32_t format_id;
    uint8_t gtrid_len;
    uint8_t bqual_len;
    char gtrid[XAC_GTRID_MAX + 1];
    char bqual[XAC_BQUAL_MAX + 1];
} xac_xid;

bool xac_valid_name(const char *s, size_t maxlen); /* [A-Za-z0-9_-]{1,maxlen} */

/* A new gtrid "<node>.<boot>.<seq>" with boot and seq in lower-case hex. boot
 * distinguishes runs of xacd (start time in microseconds), seq counts within one. */
int xac_gtrid_make(char out[XAC_GTRID_MAX + 1], const char *node_id, uint64_t boot, uint64_t seq,
                   xac_err *err);
/* xac's XID for one branch: our format id, the gtrid, bqual = resource name. */
int xac_xid_make(xac_xid *x, const char *gtrid, const char *resource, xac_err *err);
/* Any XID from raw parts (recovery lists foreign ones too). */
int xac_xid_set(xac_xid *x, int32_t format_id, const void *gtrid, size_t gtrid_len,
                const void *bqual, size_t bqual_len, xac_err *err);
bool xac_xid_equal(const xac_xid *a, const xac_xid *b);
/* True when the XID has xac's format id and its gtrid starts with "<node_id>.". */
bool xac_xid_is_ours(const xac_xid *x, const char *node_id);
/* True when the XID is this node's branch on this resource (bqual == resource). */
bool xac_xid_is_ours_on(const xac_xid *x, const char *node_id, const char *resource);

/* PostgreSQL gid: "<format_id decimal>.<gtrid base64url>.<bqual base64url>",
 * reversible for any XID and at most XAC_PG_GID_MAX bytes. */
int xac_xid_to_pg_gid(const xac_xid *x, char out[XAC_PG_GID_MAX + 1], xac_err *err);
int xac_xid_from_pg_gid(const char *gid, xac_xid *x, xac_err *err);
/* Whether the gtrid and bqual lengths are ones every text form can carry. */
bool xac_xid_lengths_ok(const xac_xid *x);
/* MySQL/MariaDB XID literal: X'<gtrid hex>',X'<bqual hex>',<format_id>. */
int xac_xid_to_mysql(const xac_xid *x, char *out, size_t outlen, xac_err *err);
/* Human form for DBAs, the same as MariaDB's XA RECOVER FORMAT='SQL':
 * 'gtrid','bqual',fid when both are printable, X'..',X'..',fid otherwise. */
void xac_xid_format(const xac_xid *x, char out[XAC_XID_TEXT_MAX]);
/* Parses what xac_xid_format prints, or a bare gtrid (then bqual is empty
 * and format_id is XAC_FORMAT_ID). */
int xac_xid_parse(const char *text, xac_xid *x, xac_err *err);

/* ------------------------------------------------------ values and rows */

typedef enum xac_type {
    XAC_T_NULL = 0,
    XAC_T_INT = 1,    /* int64 */
    XAC_T_DOUBLE = 2, /* IEEE 754 binary64 */
    XAC_T_TEXT = 3,   /* UTF-8 bytes */
    XAC_T_BLOB = 4    /* raw bytes */
} xac_type;

/* A bound SQL parameter. s points to len bytes (TEXT, BLOB); the value does not
 * own them. */
typedef struct xac_value {
    xac_type type;
    int64_t i;
    double d;
    const char *s;
    size_t len;
} xac_value;

/* The result of one statement: either a count of affected rows, or columns and
 * rows of text cells. Cells are NUL-terminated copies with a length; a NULL
 * cell pointer is SQL NULL. Owns all its memory. */
typedef struct xac_rows {
    bool has_rows;
    uint64_t affected;
    size_t ncols;
    size_t nrows;
    char **cols;  /* ncols names */
    char **cells; /* nrows * ncols, row-major */
    size_t *lens; /* nrows * ncols */
    size_t cap_rows;
} xac_rows;

void xac_rows_init(xac_rows *r);
void xac_rows_free(xac_rows *r); /* frees contents, leaves r initialised */
/* Turns r into a row set with these ncols columns (copies the names). */
int xac_rows_set_cols(xac_rows *r, size_t ncols, const char *const *names, xac_err *err);
/* Appends one row of ncols cells; vals[i] NULL means SQL NULL; lens may be
 * NULL for NUL-terminated text. */
int xac_rows_add(xac_rows *r, const char *const *vals, const size_t *lens, xac_err *err);
const char *xac_rows_cell(const xac_rows *r, size_t row, size_t col, size_t *len);

/* ------------------------------------------------------------- wire codec */

#define XAC_PROTO_VERSION     1
#define XAC_FRAME_DEFAULT_MAX (16u * 1024u * 1024u)

enum xac_msg_type {
    XAC_MSG_HELLO = 0x01,
    XAC_MSG_BEGIN = 0x02,
    XAC_MSG_EXEC = 0x03,
    XAC_MSG_COMMIT = 0x04,
    XAC_MSG_ROLLBACK = 0x05,
    XAC_MSG_STATUS = 0x06,
    /* The admin socket's requests (docs/protocol.md, "Admin socket"); never
     * valid on a client listener. Replies are RESULT, OUTCOME and ERROR. */
    XAC_MSG_ADMIN_STATUS = 0x20,
    XAC_MSG_ADMIN_LIST = 0x21,
    XAC_MSG_ADMIN_RESOLVE = 0x22,
    XAC_MSG_ADMIN_RECOVER = 0x23,
    XAC_MSG_WELCOME = 0x81,
    XAC_MSG_BEGUN = 0x82,
    XAC_MSG_RESULT = 0x83,
    XAC_MSG_OUTCOME = 0x84,
    XAC_MSG_STATE = 0x85,
    XAC_MSG_ERROR = 0xFF
};

enum xac_outcome { XAC_OUTCOME_COMMITTED = 0, XAC_OUTCOME_ROLLED_BACK = 1 };

/* ADMIN_RESOLVE's action. */
enum xac_admin_action { XAC_ADMIN_COMMIT = 0, XAC_ADMIN_ROLLBACK = 1 };

/* Transaction states, as in client/xac.h. */
#define XAC_STATE_UNKNOWN     0 /* not live, no commit record: it did not commit */
#define XAC_STATE_ACTIVE      1
#define XAC_STATE_PREPARING   2
#define XAC_STATE_COMMITTING  3 /* commit decided and durable, finishing */
#define XAC_STATE_COMMITTED   4
#define XAC_STATE_ROLLED_BACK 5

/* One decoded or to-be-encoded message. Only the fields of its type are used;
 * see the comments. After xac_msg_decode every string is a NUL-terminated heap
 * copy (with its length where it may hold NULs) and xac_msg_free releases it. */
typedef struct xac_msg {
    uint8_t type;
    uint16_t version;    /* HELLO, WELCOME */
    char *client;        /* HELLO */
    char *token;         /* HELLO */
    char *node_id;       /* WELCOME */
    uint32_t max_frame;  /* WELCOME */
    uint32_t timeout_ms; /* BEGIN (0 = server default) */
    char *gtrid;         /* BEGUN, STATUS, STATE */
    char *resource;      /* EXEC, OUTCOME, ERROR ("" = none) */
    char *sql;           /* EXEC */
    size_t sql_len;      /* EXEC */
    xac_value *params;   /* EXEC */
    uint16_t nparams;    /* EXEC */
    xac_rows rows;       /* RESULT */
    uint8_t outcome;     /* OUTCOME: enum xac_outcome */
    uint8_t state;       /* STATE: XAC_STATE_* */
    uint16_t code;       /* ERROR: XAC_E* */
    char *message;       /* OUTCOME, ERROR */
    char *xid;           /* ADMIN_RESOLVE: xac_xid_format text */
    uint8_t action;      /* ADMIN_RESOLVE: enum xac_admin_action */
    uint8_t force;       /* ADMIN_RESOLVE: 0 or 1 */
    char *operator_name; /* ADMIN_RESOLVE: who asked, for the audit log */
} xac_msg;

void xac_msg_init(xac_msg *m, uint8_t type);
void xac_msg_free(xac_msg *m);

/* A growable byte buffer. */
typedef struct xac_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} xac_buf;

void xac_buf_init(xac_buf *b);
void xac_buf_free(xac_buf *b);
int xac_buf_reserve(xac_buf *b, size_t extra, xac_err *err);
int xac_buf_put(xac_buf *b, const void *p, size_t n, xac_err *err);

/* Appends one whole frame (length, type, payload) for m to out. */
int xac_msg_encode(const xac_msg *m, xac_buf *out, xac_err *err);
/* Decodes the payload of a frame of the given type. Unknown types, short or
 * over-long payloads and bad values give XAC_EPROTO with a message naming the
 * field. On failure m holds nothing to free. */
int xac_msg_decode(uint8_t type, const uint8_t *payload, size_t len, xac_msg *m, xac_err *err);

/* Reads one frame from a blocking socket: type and payload (payload buffer is
 * reset and filled). A frame longer than max_frame gives XAC_ELIMIT without
 * reading its body; EOF before a whole frame gives XAC_ECONN ("closed" when no
 * byte of the frame had arrived). */
int xac_frame_read(int fd, uint32_t max_frame, uint8_t *type, xac_buf *payload, xac_err *err);
/* A connection's buffered read side. One read() takes whatever the peer has
 * sent so far, so a frame usually costs one system call instead of three, and
 * frames that arrived together (a client that pipelines) are served one after
 * the other from the buffer. The buffer grows to hold a frame larger than it
 * (up to max_frame) and shrinks back once that frame is consumed. */
typedef struct xac_reader {
    int fd;
    uint8_t *data;
    size_t cap;   /* bytes allocated */
    size_t start; /* the first byte not yet returned in a frame */
    size_t end;   /* one past the last byte read */
} xac_reader;

void xac_reader_init(xac_reader *r, int fd);
void xac_reader_free(xac_reader *r);
/* xac_frame_read from r's buffer, with the same errors and messages; a frame
 * longer than max_frame gives XAC_ELIMIT before its body is waited for (bytes
 * of it may already be buffered: the connection is of no further use). The
 * payload points into r's buffer and stays valid until the next call. */
int xac_reader_frame(xac_reader *r, uint32_t max_frame, uint8_t *type, const uint8_t **payload,
                     size_t *len, xac_err *err);
/* Bytes received and not yet returned in a frame. */
size_t xac_reader_pending(const xac_reader *r);
/* Whether a whole frame is buffered, so the next xac_reader_frame will not
 * wait for the peer. */
bool xac_reader_has_frame(const xac_reader *r);
/* The k-th whole frame buffered behind those already returned (k = 0: the
 * next one), left in place: its type, its payload (valid until the next
 * xac_reader_frame) and the payload's length. False when fewer than k + 1
 * whole frames are buffered or one before it has length 0 (no type). */
bool xac_reader_peek(const xac_reader *r, size_t k, uint8_t *type, const uint8_t **payload,
                     size_t *len);
/* The resource named by an EXEC payload, without decoding the rest (it is
 * not NUL-terminated). False when the payload is too short to hold it. */
bool xac_exec_resource(const uint8_t *payload, size_t len, const char **name, size_t *name_len);
/* Writes all bytes, retrying on EINTR and short writes; XAC_ECONN on failure.
 * Never raises SIGPIPE. */
int xac_write_all(int fd, const void *p, size_t n, xac_err *err);
/* Encodes m and writes it. */
int xac_msg_send(int fd, const xac_msg *m, xac_err *err);

/* Hex and base64url helpers used by the XID and journal code. */
void xac_hex_encode(const void *p, size_t n, char *out); /* writes 2n chars + NUL */
/* Writes v in base 10 or 16 (lower case) at out, without a NUL; returns the
 * digits written (at most 20). For text on every transaction, where
 * snprintf would cost more than the rest. */
size_t xac_put_u64(char *out, uint64_t v, unsigned base);
int xac_hex_decode(const char *s, size_t slen, void *out, size_t outcap, size_t *outlen);

/* ----------------------------------------------------------------- CRC32C */

uint32_t xac_crc32c(uint32_t crc, const void *p, size_t n); /* start with crc = 0 */

/* ---------------------------------------------------------------- logging */

typedef enum xac_log_level {
    XAC_LOG_DEBUG = 0,
    XAC_LOG_INFO = 1,
    XAC_LOG_WARN = 2,
    XAC_LOG_ERROR = 3,
    XAC_LOG_OFF = 4
} xac_log_level;

/* Diagnostics go to stderr, or to path when given (opened in append mode).
 * Lines carry an ISO-8601 UTC timestamp, the level and the program name. */
int xac_log_init(const char *prog, xac_log_level level, const char *path, xac_err *err);
int xac_log_level_parse(const char *s, xac_log_level *out);
void xac_log(xac_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define xac_logd(...) xac_log(XAC_LOG_DEBUG, __VA_ARGS__)
#define xac_logi(...) xac_log(XAC_LOG_INFO, __VA_ARGS__)
#define xac_logw(...) xac_log(XAC_LOG_WARN, __VA_ARGS__)
#define xac_loge(...) xac_log(XAC_LOG_ERROR, __VA_ARGS__)
/* A tool's own output (tables, results) to stdout, unadorned. Kept here so
 * that one module does all printing. */
void xac_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void xac_out_write(const void *p, size_t n);
void xac_out_flush(void);

/* Monotonic and wall clocks in microseconds. */
uint64_t xac_now_mono_us(void);
uint64_t xac_now_wall_us(void);

#endif
