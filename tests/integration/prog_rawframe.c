/* A raw protocol client for the integration tests: sends hand-made frames
 * (hex on the command line) to xacd's Unix socket, one at a time, and prints
 * one line per reply, so that shell tests can feed xacd malformed input that
 * libxac would never produce. ERROR replies are decoded here by hand rather
 * than by common/'s codec, so the test checks the bytes xacd really sends.
 *
 *   prog_rawframe SOCKET ARG...
 *     ARG = HEX   send these bytes (spaces allowed), then read one reply
 *     ARG = send:HEX   send only, read nothing
 *     ARG = read  read one reply without sending
 *
 * Output lines: "ERROR <XAC_E...> resource=<r> message=<m>", "WELCOME <node>",
 * "BEGUN <gtrid>", "RESULT", "OUTCOME <0|1> resource=<r> message=<m>",
 * "STATE <gtrid> <n>", "REPLY 0x<type>", "CLOSED" (the server closed the
 * connection) or "READERROR <message>". Exit 0 unless the arguments are bad
 * or the socket cannot be reached (2). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "xac_common.h"

#define READ_TIMEOUT_S 20

/* Parses hex digits, skipping blanks, into a malloc'd buffer. */
static int parse_hex(const char *s, uint8_t **out, size_t *outlen, xac_err *err)
{
    size_t len = strlen(s), n = 0;
    char *digits = malloc(len + 1);
    uint8_t *b = malloc(len / 2 + 1);
    if (digits == NULL || b == NULL) {
        free(digits);
        free(b);
        return xac_err_set(err, XAC_ENOMEM, "out of memory for %zu bytes of frame", len);
    }
    for (const char *p = s; *p != '\0'; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n')
            digits[n++] = *p;
    int rc = xac_hex_decode(digits, n, b, len / 2 + 1, outlen);
    free(digits);
    if (rc != XAC_OK) {
        free(b);
        return xac_err_set(err, XAC_EINVAL, "bad hex (a non-hex digit, or an odd count) in \"%s\"",
                           s);
    }
    *out = b;
    return XAC_OK;
}

static int connect_unix(const char *path, int *fd_out, xac_err *err)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return xac_err_set(err, XAC_EINVAL, "socket path %s is too long", path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return xac_err_set(err, XAC_EIO, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        return xac_err_set(err, XAC_ECONN, "cannot connect to %s: %s", path, strerror(e));
    }
    struct timeval tv = {.tv_sec = READ_TIMEOUT_S, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    *fd_out = fd;
    return XAC_OK;
}

/* Reads a big-endian u32-counted string at *p; false when it does not fit. */
static bool take_str(const uint8_t **p, const uint8_t *end, const char **s, uint32_t *len)
{
    if (end - *p < 4)
        return false;
    uint32_t n = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 |
                 (uint32_t)(*p)[3];
    *p += 4;
    if ((size_t)(end - *p) < n)
        return false;
    *s = (const char *)*p;
    *len = n;
    *p += n;
    return true;
}

static void print_error(const xac_buf *payload)
{
    const uint8_t *p = payload->data, *end = payload->data + payload->len;
    const char *res, *msg;
    uint32_t rlen, mlen;
    if (payload->len < 2) {
        xac_out("ERROR (malformed: %zu payload bytes)\n", payload->len);
        return;
    }
    int code = p[0] << 8 | p[1];
    p += 2;
    if (!take_str(&p, end, &res, &rlen) || !take_str(&p, end, &msg, &mlen) || p != end) {
        xac_out("ERROR %s (malformed strings)\n", xac_code_name(code));
        return;
    }
    xac_out("ERROR %s resource=%.*s message=%.*s\n", xac_code_name(code), (int)rlen, res, (int)mlen,
            msg);
}

/* Reads and prints one reply. */
static void read_reply(int fd)
{
    xac_buf payload;
    xac_buf_init(&payload);
    xac_err err;
    xac_err_clear(&err);
    uint8_t type = 0;
    int rc = xac_frame_read(fd, XAC_FRAME_DEFAULT_MAX, &type, &payload, &err);
    if (rc == XAC_ECONN && strstr(err.msg, "mid-frame") == NULL) {
        xac_out("CLOSED\n");
    } else if (rc != XAC_OK) {
        xac_out("READERROR %s: %s\n", xac_code_name(rc), err.msg);
    } else if (type == XAC_MSG_ERROR) {
        print_error(&payload);
    } else {
        xac_msg m;
        if (xac_msg_decode(type, payload.data, payload.len, &m, &err) != XAC_OK) {
            xac_out("REPLY 0x%02x (undecodable: %s)\n", type, err.msg);
        } else {
            switch (type) {
            case XAC_MSG_WELCOME:
                xac_out("WELCOME %s\n", m.node_id);
                break;
            case XAC_MSG_BEGUN:
                xac_out("BEGUN %s\n", m.gtrid);
                break;
            case XAC_MSG_RESULT:
                xac_out("RESULT\n");
                break;
            case XAC_MSG_OUTCOME:
                xac_out("OUTCOME %u resource=%s message=%s\n", m.outcome, m.resource, m.message);
                break;
            case XAC_MSG_STATE:
                xac_out("STATE %s %u\n", m.gtrid, m.state);
                break;
            default:
                xac_out("REPLY 0x%02x\n", type);
            }
            xac_msg_free(&m);
        }
    }
    xac_out_flush();
    xac_buf_free(&payload);
}

int main(int argc, char **argv)
{
    xac_err err;
    xac_err_clear(&err);
    xac_log_init("prog_rawframe", XAC_LOG_INFO, NULL, NULL);
    if (argc < 3) {
        xac_loge("usage: prog_rawframe SOCKET HEX|send:HEX|read...");
        return 2;
    }
    int fd = -1;
    if (connect_unix(argv[1], &fd, &err) != XAC_OK) {
        xac_loge("%s", err.msg);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "read") == 0) {
            read_reply(fd);
            continue;
        }
        bool reply = strncmp(arg, "send:", 5) != 0;
        uint8_t *bytes = NULL;
        size_t n = 0;
        if (parse_hex(reply ? arg : arg + 5, &bytes, &n, &err) != XAC_OK) {
            xac_loge("argument %d: %s", i - 1, err.msg);
            close(fd);
            return 2;
        }
        int rc = xac_write_all(fd, bytes, n, &err);
        free(bytes);
        if (rc != XAC_OK) {
            xac_out("WRITEERROR %s\n", err.msg);
            xac_out_flush();
            break;
        }
        if (reply)
            read_reply(fd);
    }
    close(fd);
    return 0;
}
