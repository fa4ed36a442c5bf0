#!/usr/bin/python3
# A minimal TDS 7.4 client for the tests of the stand-in (tests/tds/tds_server.py):
# it logs in and runs a script of SQL batches, sp_executesql calls,
# master..xp_sqljdbc_xa_* calls and transaction manager requests in one
# session, printing every token it gets back as a line a shell test can grep.
# FreeTDS's tsql cannot call procedures with output parameters, hence this.
"""Scripted TDS client for testing the stand-in (test fixture, never shipped)."""

import argparse
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tds_server as T  # noqa: E402  (shares the encoders and decoders)


class Client:
    def __init__(self, host, port, tdsver=0x74000004):
        self.sock = socket.create_connection((host, port), timeout=60)
        self.tdsver = tdsver
        self.cookie = b""
        self.desc = b"\x00" * 8
        self.last = {}

    def send(self, ptype, payload):
        size = 4096 - 8
        chunks = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1
            self.sock.sendall(struct.pack(">BBHHBB", ptype, 1 if last else 0, len(c) + 8, 0, i + 1, 0) + c)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            c = self.sock.recv(n - len(buf))
            if not c:
                raise EOFError("server closed the connection")
            buf += c
        return buf

    def recv(self):
        data = b""
        while True:
            h = self.recv_exact(8)
            data += self.recv_exact(struct.unpack(">H", h[2:4])[0] - 8)
            if h[1] & 1:
                return data

    def headers(self):
        if self.tdsver < 0x72000000:
            return b""
        return struct.pack("<IIHQI", 22, 18, 2, struct.unpack("<Q", self.desc)[0], 1)

    def login(self, user, password, db, app="tds_client"):
        opts = [(0, bytes([9, 0, 0, 0, 0, 0])), (1, b"\x00"), (2, b"MSSQLServer\x00"), (3, b"\x00" * 4), (4, b"\x00")]
        hdr, data = b"", b""
        for tok, val in opts:
            hdr += struct.pack(">BHH", tok, 5 * len(opts) + 1 + len(data), len(val))
            data += val
        self.send(T.PKT_PRELOGIN, hdr + b"\xff" + data)
        self.recv()
        pw = bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in password.encode("utf-16-le"))
        fields = ["host", user, None, app, "server", "", "tds_client", "", db]
        fixed = 94
        var = b""
        offs = b""
        for f in fields:
            enc = pw if f is None else f.encode("utf-16-le")
            offs += struct.pack("<HH", fixed + len(var), len(enc) // 2)
            var += enc
        offs += b"\x00" * 6  # client id
        offs += struct.pack("<HHHHHHI", fixed + len(var), 0, fixed + len(var), 0, fixed + len(var), 0, 0)
        body = struct.pack("<IIIIII", 0, self.tdsver, 4096, 7, os.getpid(), 0) + bytes([0xE0, 0x03, 0, 0]) + \
            struct.pack("<iI", 0, 0x409) + offs
        assert len(body) == fixed, len(body)
        body += var
        body = struct.pack("<I", len(body)) + body[4:]
        self.send(T.PKT_LOGIN7, body)
        return self.tokens(self.recv())

    def batch(self, sql):
        self.send(T.PKT_SQLBATCH, self.headers() + sql.encode("utf-16-le"))
        return self.tokens(self.recv())

    def rpc(self, name, params, procid=None):
        """params: (name, output?, TypeInfo, value)."""
        body = self.headers()
        if procid is not None:
            body += struct.pack("<HH", 0xFFFF, procid)
        else:
            body += T.us_varchar(name)
        body += struct.pack("<H", 0)
        for pname, out, ti, val in params:
            body += T.b_varchar(pname) + bytes([1 if out else 0]) + T.typeinfo_bytes(ti) + T.encode_value(ti, val)
        self.send(T.PKT_RPC, body)
        return self.tokens(self.recv())

    def tm(self, kind, payload=b""):
        self.send(T.PKT_TM, self.headers() + struct.pack("<H", kind) + payload)
        return self.tokens(self.recv())

    def attention(self):
        self.send(T.PKT_ATTN, b"")

    def tokens(self, data):
        """Decodes a reply into printable lines (and remembers return values)."""
        r = T.Reader(data)
        out = []
        cols = []
        while r.remaining():
            tok = r.u8()
            if tok in (T.TOK_ERROR, T.TOK_INFO):
                ln = r.u16()
                end = r.pos + ln
                num, st, cls = struct.unpack("<iBB", r.take(6))
                msg = r.us_varchar()
                r.pos = end
                kind = "error" if tok == T.TOK_ERROR else "info"
                out.append("%s %d class %d state %d: %s" % (kind, num, cls, st, msg))
            elif tok == T.TOK_ENVCHANGE:
                ln = r.u16()
                body = r.take(ln)
                kind = body[0]
                if kind in (T.ENV_BEGINTRAN, T.ENV_ENLISTDTC):
                    self.desc = body[2:2 + body[1]]
                out.append("envchange %d %s" % (kind, body[1:].hex()))
            elif tok == T.TOK_LOGINACK:
                ln = r.u16()
                body = r.take(ln)
                out.append("loginack %s" % body[1:5].hex())
            elif tok == T.TOK_COLMETADATA:
                n = r.u16()
                cols = []
                for _ in range(n if n != 0xFFFF else 0):
                    r.take(4 if self.tdsver >= 0x72000000 else 2)
                    r.u16()
                    ti = T.parse_typeinfo(r)
                    name = r.b_varchar()
                    cols.append((name, ti))
                out.append("columns " + "\t".join("%s:%02x" % (c[0], c[1].ttype) for c in cols))
            elif tok == T.TOK_ROW:
                vals = [T.read_value(r, ti) for _, ti in cols]
                out.append("row " + "\t".join(fmt(v) for v in vals))
            elif tok in (T.TOK_DONE, T.TOK_DONEPROC, T.TOK_DONEINPROC):
                if self.tdsver >= 0x72000000:
                    st, cmd, cnt = struct.unpack("<HHQ", r.take(12))
                else:
                    st, cmd, cnt = struct.unpack("<HHI", r.take(8))
                name = {T.TOK_DONE: "done", T.TOK_DONEPROC: "doneproc", T.TOK_DONEINPROC: "doneinproc"}[tok]
                out.append("%s status 0x%x cmd 0x%x count %d" % (name, st, cmd, cnt))
            elif tok == T.TOK_RETURNSTATUS:
                out.append("returnstatus %d" % r.i32())
            elif tok == T.TOK_RETURNVALUE:
                r.u16()
                pname = r.b_varchar()
                r.u8()
                r.take(4 if self.tdsver >= 0x72000000 else 2)
                r.u16()
                ti = T.parse_typeinfo(r)
                v = T.read_value(r, ti)
                self.last[pname] = v
                out.append("return %s %s" % (pname, fmt(v)))
            else:
                raise ValueError("unexpected token 0x%02x at %d" % (tok, r.pos - 1))
        return out


def fmt(v):
    if v is None:
        return "NULL"
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    return str(v)


def typed(spec):
    """i:5 f:1.5 s:text b:hex n: (NULL) -> (TypeInfo, value, declaration)."""
    kind, _, val = spec.partition(":")
    if kind == "i":
        return T.TypeInfo(T.T_INTN, 8), int(val), "bigint"
    if kind == "f":
        return T.TypeInfo(T.T_FLTN, 8), float(val), "float"
    if kind == "s":
        return T.TypeInfo(T.T_NVARCHAR, 0xFFFF), val, "nvarchar(max)"
    if kind == "b":
        return T.TypeInfo(T.T_BIGVARBIN, 0xFFFF), bytes.fromhex(val), "varbinary(max)"
    if kind == "t":
        return T.TypeInfo(T.T_BITN, 1), val not in ("0", "false"), "bit"
    return T.TypeInfo(T.T_NVARCHAR, 2), None, "nvarchar(1)"


XA_PARAMS = {
    # op: list of (name, output?, kind); kind: i int, s varchar, b varbinary, B varbinary(max)
    "init_ex": [("@status", 1, "i"), ("@errmsg", 1, "s"), ("@version", 1, "s")],
    "start": [("@status", 1, "i"), ("@err", 1, "s"), ("@gid", 0, "b"), ("@bid", 0, "b"), ("@flags", 0, "i"),
              ("@cookie", 1, "B"), ("@timeout", 0, "i"), ("@formatId", 0, "i"), ("@dllver", 1, "i"),
              ("@sqlver", 0, "i"), ("@instlen", 0, "i"), ("@inst", 0, "b"), ("@archSql", 0, "i"),
              ("@archOs", 0, "i"), ("@timeoutSet", 0, "i"), ("@uow", 1, "b")],
    "end": [("@status", 1, "i"), ("@err", 1, "s"), ("@gid", 0, "b"), ("@bid", 0, "b"), ("@flags", 0, "i"),
            ("@formatId", 0, "i"), ("@uow", 1, "b")],
    "prepare": [("@status", 1, "i"), ("@err", 1, "s"), ("@gid", 0, "b"), ("@bid", 0, "b"), ("@formatId", 0, "i")],
    "commit": [("@status", 1, "i"), ("@err", 1, "s"), ("@gid", 0, "b"), ("@bid", 0, "b"), ("@flags", 0, "i"),
               ("@formatId", 0, "i")],
    "rollback": [("@status", 1, "i"), ("@err", 1, "s"), ("@gid", 0, "b"), ("@bid", 0, "b"), ("@formatId", 0, "i")],
    "forget": [("@status", 1, "i"), ("@err", 1, "s"), ("@gid", 0, "b"), ("@bid", 0, "b"), ("@formatId", 0, "i")],
    "recover": [("@status", 1, "i"), ("@err", 1, "s"), ("@flags", 0, "i"), ("@data", 1, "B")],
}


def xa_call(c, op, fid=1, gtrid="", bqual="", flags=0):
    params = []
    for name, out, kind in XA_PARAMS[op]:
        if kind == "i":
            ti = T.TypeInfo(T.T_INTN, 4)
            val = None if out else 0
        elif kind == "s":
            ti, val = T.TypeInfo(T.T_BIGVARCHR, 255), None
        elif kind == "b":
            ti, val = T.TypeInfo(T.T_BIGVARBIN, 8000), None if out else b""
        else:
            ti, val = T.TypeInfo(T.T_BIGVARBIN, 0xFFFF), None
        if name == "@gid":
            val = bytes.fromhex(gtrid)
        elif name == "@bid":
            val = bytes.fromhex(bqual)
        elif name == "@formatId":
            val = int(fid)
        elif name == "@flags":
            val = int(flags)
        elif name == "@cookie" and op == "start":
            val = None
        params.append((name, out, ti, val))
    lines = c.rpc("master..xp_sqljdbc_xa_" + op, params)
    if op == "start" and c.last.get("@cookie"):
        c.cookie = c.last["@cookie"]
    if op == "recover" and c.last.get("@data") is not None:
        d = c.last["@data"]
        pos = 0
        while pos + 6 <= len(d):
            f, gl, bl = struct.unpack("<iBB", d[pos:pos + 6])
            g = d[pos + 6:pos + 6 + gl]
            b = d[pos + 6 + gl:pos + 6 + gl + bl]
            lines.append("xid %d %s %s" % (f, g.hex(), b.hex()))
            pos += 6 + gl + bl
    return lines


def run_command(c, cmd):
    op = cmd[0]
    if op == "batch":
        return c.batch(cmd[1])
    if op == "exec":
        specs = [typed(s) for s in cmd[2:]]
        decl = ", ".join("@P%d %s" % (i + 1, d) for i, (_, _, d) in enumerate(specs))
        params = [("", 0, T.TypeInfo(T.T_NVARCHAR, 0xFFFF), cmd[1]), ("", 0, T.TypeInfo(T.T_NVARCHAR, 0xFFFF), decl)]
        params += [("", 0, ti, v) for ti, v, _ in specs]
        return c.rpc(None, params, procid=10)
    if op == "xa":
        return xa_call(c, *cmd[1:])
    if op == "propagate":
        cookie = c.cookie if len(cmd) < 2 else bytes.fromhex(cmd[1])
        return c.tm(1, struct.pack("<H", len(cookie)) + cookie)
    if op == "tm":
        kind = {"begin": 5, "commit": 7, "rollback": 8, "dtc": 0}[cmd[1]]
        payload = b"\x00\x00" if kind == 5 else (b"\x00\x00" if kind in (7, 8) else b"\x00\x00")
        return c.tm(kind, payload)
    if op == "attention":
        c.attention()
        return c.tokens(c.recv())
    if op == "send-then-attention":
        c.send(T.PKT_SQLBATCH, c.headers() + cmd[1].encode("utf-16-le"))
        time.sleep(float(cmd[2]) if len(cmd) > 2 else 0.5)
        c.attention()
        lines = c.tokens(c.recv())
        if not any("status 0x20" in ln for ln in lines):
            lines += c.tokens(c.recv())
        return lines
    if op == "touch":
        open(cmd[1], "w").close()
        return []
    if op == "wait-file":
        for _ in range(int(float(cmd[2]) * 10) if len(cmd) > 2 else 600):
            if os.path.exists(cmd[1]):
                return []
            time.sleep(0.1)
        raise ValueError("timed out waiting for %s" % cmd[1])
    if op == "sleep":
        time.sleep(float(cmd[1]))
        return []
    if op == "crash":
        os._exit(3)  # leave without closing anything, like a killed client
    raise ValueError("unknown command %r" % op)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", default="sa")
    ap.add_argument("--password", default="Xac_test_1")
    ap.add_argument("--db", default="xac_test_ms")
    ap.add_argument("--tds", default="7.4", choices=["7.1", "7.2", "7.3", "7.4"])
    ap.add_argument("commands", nargs="*", help='JSON arrays, e.g. \'["batch","SELECT 1"]\'; none: one per stdin line')
    args = ap.parse_args()
    ver = {"7.1": 0x71000001, "7.2": 0x72090002, "7.3": 0x730B0003, "7.4": 0x74000004}[args.tds]
    c = Client(args.host, args.port, ver)
    for ln in c.login(args.user, args.password, args.db):
        print(ln)
    cmds = args.commands or [ln for ln in sys.stdin if ln.strip()]
    for raw in cmds:
        cmd = json.loads(raw)
        print("> " + " ".join(str(x) if len(str(x)) <= 200 else str(x)[:200] + "..." for x in cmd))
        for ln in run_command(c, cmd):
            print(ln)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EOFError, ConnectionError) as e:
        print("closed: %s" % e)
        sys.exit(2)
