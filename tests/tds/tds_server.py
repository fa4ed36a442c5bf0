#!/usr/bin/python3
# A SQL Server stand-in for tests: it speaks TDS 7.1-7.4 on a TCP port (what
# FreeTDS and the other SQL Server clients speak) and keeps the data in a real
# PostgreSQL server, translating the small T-SQL subset that xac's mssql
# driver and its tests send. It exists so that the driver's wire protocol,
# transactions, errors and XA recovery procedures (master..xp_sqljdbc_xa_*)
# can be tested on a machine without SQL Server. It is a test fixture and
# never ships; tests/tds/README.md lists what it does and does not do.
"""TDS 7.4 stand-in backed by PostgreSQL (test fixture, never shipped)."""

import argparse
import datetime
import decimal
import logging
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import uuid

try:
    import psycopg2
    import psycopg2.extensions
except ImportError:  # a pyenv or venv python without Debian's python3-psycopg2
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.path.exists("/usr/bin/python3") and __name__ == "__main__":
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

LOG = logging.getLogger("tds")

# ------------------------------------------------------------------ protocol constants

PKT_SQLBATCH, PKT_RPC, PKT_REPLY, PKT_ATTN, PKT_TM, PKT_LOGIN7, PKT_PRELOGIN = 0x01, 0x03, 0x04, 0x06, 0x0E, 0x10, 0x12
ST_EOM, ST_RESET = 0x01, 0x08

TOK_COLMETADATA, TOK_ROW, TOK_RETURNSTATUS, TOK_RETURNVALUE = 0x81, 0xD1, 0x79, 0xAC
TOK_ERROR, TOK_INFO, TOK_LOGINACK, TOK_ENVCHANGE = 0xAA, 0xAB, 0xAD, 0xE3
TOK_DONE, TOK_DONEPROC, TOK_DONEINPROC = 0xFD, 0xFE, 0xFF
DONE_FINAL, DONE_MORE, DONE_ERROR, DONE_INXACT, DONE_COUNT, DONE_ATTN, DONE_SRVERROR = 0, 1, 2, 4, 0x10, 0x20, 0x100

ENV_DATABASE, ENV_LANGUAGE, ENV_PACKETSIZE, ENV_COLLATION = 1, 2, 4, 7
ENV_BEGINTRAN, ENV_COMMITTRAN, ENV_ROLLBACKTRAN, ENV_ENLISTDTC = 8, 9, 10, 11

# SQL_Latin1_General_CP1_CI_AS: LCID 0x409, flags 0xD0, sort id 52 (code page 1252).
COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])

T_NULL, T_INT1, T_BIT, T_INT2, T_INT4, T_DATETIM4, T_FLT4, T_MONEY, T_DATETIME, T_FLT8 = \
    0x1F, 0x30, 0x32, 0x34, 0x38, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E
T_MONEY4, T_INT8 = 0x7A, 0x7F
T_GUID, T_INTN, T_BITN, T_FLTN, T_MONEYN, T_DATETIMN = 0x24, 0x26, 0x68, 0x6D, 0x6E, 0x6F
T_DECIMALN, T_NUMERICN = 0x6A, 0x6C
T_VARBINARY, T_BINARY, T_VARCHAR, T_CHAR = 0x25, 0x2D, 0x27, 0x2F
T_DATEN, T_TIMEN, T_DATETIME2N, T_DATETIMEOFFSETN = 0x28, 0x29, 0x2A, 0x2B
T_BIGVARBIN, T_BIGVARCHR, T_BIGBINARY, T_BIGCHAR, T_NVARCHAR, T_NCHAR = 0xA5, 0xA7, 0xAD, 0xAF, 0xE7, 0xEF
T_IMAGE, T_TEXT, T_NTEXT = 0x22, 0x23, 0x63
FIXED_LEN = {T_NULL: 0, T_INT1: 1, T_BIT: 1, T_INT2: 2, T_INT4: 4, T_DATETIM4: 4, T_FLT4: 4,
             T_MONEY: 8, T_DATETIME: 8, T_FLT8: 8, T_MONEY4: 4, T_INT8: 8}
BYTELEN_TYPES = {T_GUID, T_INTN, T_BITN, T_FLTN, T_MONEYN, T_DATETIMN, T_DECIMALN, T_NUMERICN,
                 T_VARBINARY, T_BINARY, T_VARCHAR, T_CHAR}
USHORT_TYPES = {T_BIGVARBIN, T_BIGVARCHR, T_BIGBINARY, T_BIGCHAR, T_NVARCHAR, T_NCHAR}
COLLATED_TYPES = {T_BIGVARCHR, T_BIGCHAR, T_NVARCHAR, T_NCHAR, T_TEXT, T_NTEXT}
PLP_NULL = 0xFFFFFFFFFFFFFFFF

PROC_IDS = {1: "sp_cursor", 2: "sp_cursoropen", 3: "sp_cursorprepare", 4: "sp_cursorexecute",
            5: "sp_cursorprepexec", 6: "sp_cursorunprepare", 7: "sp_cursorfetch", 8: "sp_cursoroption",
            9: "sp_cursorclose", 10: "sp_executesql", 11: "sp_prepare", 12: "sp_execute",
            13: "sp_prepexec", 14: "sp_prepexecrpc", 15: "sp_unprepare"}

# XA (what xp_sqljdbc_xa_* return in @status).
XA_OK, XA_RDONLY, XA_RBROLLBACK, XA_RBDEADLOCK = 0, 3, 100, 102
XAER_RMERR, XAER_NOTA, XAER_INVAL, XAER_PROTO, XAER_RMFAIL, XAER_DUPID = -3, -4, -5, -6, -7, -8
TMJOIN, TMRESUME, TMSUCCESS, TMFAIL, TMSUSPEND = 0x00200000, 0x08000000, 0x04000000, 0x20000000, 0x02000000
TMONEPHASE, TMSTARTRSCAN, TMENDRSCAN = 0x40000000, 0x01000000, 0x00800000

SERVER_NAME = "XACTDS"
PRODUCT_NAME = "Microsoft SQL Server"  # clients key features off this name
MAX_MESSAGE = 64 * 1024 * 1024
LOGIN_TIMEOUT = 30


class ProtocolError(Exception):
    """The client sent something that is not TDS we understand: close it."""


class SessionClosed(Exception):
    """The client went away (or must be dropped): end the session quietly."""


class SqlError(Exception):
    """A T-SQL error to report in an ERROR token."""

    def __init__(self, number, message, cls=16, state=1, abort_batch=False, abort_tx=False):
        super().__init__(message)
        self.number, self.message, self.cls, self.state = number, message, cls, state
        self.abort_batch, self.abort_tx = abort_batch, abort_tx


# ------------------------------------------------------------------ encoding helpers


class Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("message truncated (wanted %d bytes at %d of %d)" % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def peek(self):
        if self.pos >= len(self.data):
            raise ProtocolError("message truncated")
        return self.data[self.pos]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u16be(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def i32(self):
        return struct.unpack("<i", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def ucs2(self, nchars):
        return self.take(2 * nchars).decode("utf-16-le", errors="replace")

    def b_varchar(self):
        return self.ucs2(self.u8())

    def us_varchar(self):
        return self.ucs2(self.u16())

    def plp(self):
        total = self.u64()
        if total == PLP_NULL:
            return None
        parts = []
        while True:
            n = self.u32()
            if n == 0:
                break
            parts.append(self.take(n))
        return b"".join(parts)


def b_varchar(s):
    e = s.encode("utf-16-le")
    return bytes([len(e) // 2]) + e


def us_varchar(s):
    e = s.encode("utf-16-le")
    return struct.pack("<H", len(e) // 2) + e


def plp(b):
    if b is None:
        return struct.pack("<Q", PLP_NULL)
    out = struct.pack("<Q", len(b))
    if b:
        out += struct.pack("<I", len(b)) + b
    return out + struct.pack("<I", 0)


def skip_all_headers(r, tdsver):
    """Skip the ALL_HEADERS block that TDS 7.2+ puts before batches, RPCs and TM requests."""
    if tdsver < 0x72000000:
        return
    total = r.u32()
    if total < 4 or total - 4 > r.remaining():
        raise ProtocolError("bad ALL_HEADERS length %d" % total)
    r.take(total - 4)


# ------------------------------------------------------------------ types (TYPE_INFO + values)


class TypeInfo:
    """A TDS TYPE_INFO: what a column, parameter or return value carries."""

    def __init__(self, ttype, size=0, prec=0, scale=0, collation=COLLATION):
        self.ttype, self.size, self.prec, self.scale, self.collation = ttype, size, prec, scale, collation

    @property
    def plp(self):
        return self.ttype in USHORT_TYPES and self.size == 0xFFFF

    def describe(self):
        return "type 0x%02X size %d" % (self.ttype, self.size)


def parse_typeinfo(r):
    t = r.u8()
    ti = TypeInfo(t)
    if t in FIXED_LEN:
        ti.size = FIXED_LEN[t]
    elif t in (T_DECIMALN, T_NUMERICN):
        ti.size, ti.prec, ti.scale = r.u8(), r.u8(), r.u8()
    elif t == T_DATEN:
        ti.size = 3
    elif t in (T_TIMEN, T_DATETIME2N, T_DATETIMEOFFSETN):
        ti.scale = r.u8()
    elif t in BYTELEN_TYPES:
        ti.size = r.u8()
    elif t in USHORT_TYPES:
        ti.size = r.u16()
        if t in COLLATED_TYPES:
            ti.collation = r.take(5)
    elif t in (T_IMAGE, T_TEXT, T_NTEXT):
        ti.size = r.u32()
        if t in COLLATED_TYPES:
            ti.collation = r.take(5)
    else:
        raise ProtocolError("unsupported TDS data type 0x%02X" % t)
    return ti


def _decode_chars(ti, b):
    if ti.ttype in (T_NVARCHAR, T_NCHAR, T_NTEXT):
        return b.decode("utf-16-le", errors="replace")
    return b.decode("cp1252", errors="replace")


def _time_from(b, scale):
    units = int.from_bytes(b, "little")
    micro = units * 10 ** 6 // 10 ** scale
    return datetime.timedelta(microseconds=micro)


def read_value(r, ti):
    """Reads one value of type ti; returns a Python value (None for NULL)."""
    t = ti.ttype
    if t in FIXED_LEN:
        n = FIXED_LEN[t]
        data = r.take(n)
    elif t in (T_IMAGE, T_TEXT, T_NTEXT):
        n = r.i32()
        if n < 0:
            return None
        data = r.take(n)
        return data if t == T_IMAGE else _decode_chars(ti, data)
    elif ti.plp:
        data = r.plp()
        if data is None:
            return None
        return data if t in (T_BIGVARBIN, T_BIGBINARY) else _decode_chars(ti, data)
    elif t in USHORT_TYPES:
        n = r.u16()
        if n == 0xFFFF:
            return None
        data = r.take(n)
        return data if t in (T_BIGVARBIN, T_BIGBINARY) else _decode_chars(ti, data)
    else:
        n = r.u8()
        if n == 0:  # NULL (these types have no empty value in TDS 7)
            return None
        data = r.take(n)
        if t in (T_VARBINARY, T_BINARY):
            return data
        if t in (T_VARCHAR, T_CHAR):
            return _decode_chars(ti, data)
    if t == T_NULL:
        return None
    if t in (T_INT1,):
        return data[0]
    if t in (T_INT2, T_INT4, T_INT8) or (t == T_INTN and len(data) > 1):
        return int.from_bytes(data, "little", signed=True)
    if t == T_INTN:
        return data[0]  # tinyint is unsigned
    if t in (T_BIT, T_BITN):
        return bool(data[0])
    if t == T_FLT4 or (t == T_FLTN and len(data) == 4):
        return struct.unpack("<f", data)[0]
    if t in (T_FLT8, T_FLTN):
        return struct.unpack("<d", data)[0]
    if t in (T_MONEY, T_MONEY4, T_MONEYN):
        if len(data) == 8:
            hi, lo = struct.unpack("<iI", data)
            v = (hi << 32) | lo
        else:
            v = struct.unpack("<i", data)[0]
        return decimal.Decimal(v).scaleb(-4)
    if t in (T_DECIMALN, T_NUMERICN):
        v = int.from_bytes(data[1:], "little")
        if data[0] == 0:
            v = -v
        return decimal.Decimal(v).scaleb(-ti.scale)
    if t in (T_DATETIME, T_DATETIMN, T_DATETIM4):
        base = datetime.datetime(1900, 1, 1)
        if len(data) == 8:
            days, ticks = struct.unpack("<iI", data)
            return base + datetime.timedelta(days=days, milliseconds=ticks * 10 / 3)
        days, mins = struct.unpack("<HH", data)
        return base + datetime.timedelta(days=days, minutes=mins)
    if t == T_GUID:
        return str(uuid.UUID(bytes_le=data))
    if t == T_DATEN:
        return datetime.date(1, 1, 1) + datetime.timedelta(days=int.from_bytes(data, "little"))
    if t == T_TIMEN:
        return str(datetime.datetime(2000, 1, 1) + _time_from(data, ti.scale))[11:]
    if t in (T_DATETIME2N, T_DATETIMEOFFSETN):
        tl = len(data) - 3 - (2 if t == T_DATETIMEOFFSETN else 0)
        d = datetime.datetime(1, 1, 1) + datetime.timedelta(days=int.from_bytes(data[tl:tl + 3], "little"))
        return d + _time_from(data[:tl], ti.scale)
    raise ProtocolError("cannot decode type 0x%02X" % t)


def typeinfo_bytes(ti):
    t = ti.ttype
    if t in (T_DECIMALN, T_NUMERICN):
        return bytes([t, ti.size, ti.prec, ti.scale])
    if t in BYTELEN_TYPES:
        return bytes([t, ti.size])
    if t in USHORT_TYPES:
        out = bytes([t]) + struct.pack("<H", ti.size)
        return out + ti.collation if t in COLLATED_TYPES else out
    raise ValueError("no encoder for type 0x%02X" % t)


def _numeric_digits(v):
    return len(str(abs(int(v)))) if v else 1


def encode_value(ti, v):
    """Encodes value v for type ti (one of the types typeinfo_bytes knows)."""
    t = ti.ttype
    if t == T_INTN:
        if v is None:
            return b"\x00"
        return bytes([ti.size]) + int(v).to_bytes(ti.size, "little", signed=ti.size > 1)
    if t == T_BITN:
        return b"\x00" if v is None else b"\x01" + (b"\x01" if v else b"\x00")
    if t == T_FLTN:
        if v is None:
            return b"\x00"
        return b"\x08" + struct.pack("<d", float(v)) if ti.size == 8 else b"\x04" + struct.pack("<f", float(v))
    if t in (T_DECIMALN, T_NUMERICN):
        if v is None:
            return b"\x00"
        iv = int(decimal.Decimal(v).scaleb(ti.scale).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
        mag = abs(iv).to_bytes(ti.size - 1, "little")
        return bytes([ti.size, 1 if iv >= 0 else 0]) + mag
    if t in USHORT_TYPES:
        if v is None:
            data = None
        elif t in (T_BIGVARBIN, T_BIGBINARY):
            data = bytes(v)
        elif t in (T_NVARCHAR, T_NCHAR):
            data = str(v).encode("utf-16-le")
        else:
            data = str(v).encode("cp1252", errors="replace")
        if ti.size == 0xFFFF:
            return plp(data)
        if data is None:
            return b"\xff\xff"
        return struct.pack("<H", len(data)) + data
    raise ValueError("no encoder for type 0x%02X" % t)


def reply_type_for(ti, value, tdsver):
    """The TYPE_INFO to return an output parameter the client declared as ti."""
    t = ti.ttype
    if t in (T_INT1, T_INT2, T_INT4, T_INT8, T_INTN):
        size = {T_INT1: 1, T_INT2: 2, T_INT4: 4, T_INT8: 8}.get(t, ti.size or 4)
        return TypeInfo(T_INTN, size)
    if t in (T_BIT, T_BITN):
        return TypeInfo(T_BITN, 1)
    if t in (T_FLT4, T_FLT8, T_FLTN):
        return TypeInfo(T_FLTN, 8)
    if t in (T_DECIMALN, T_NUMERICN):
        return TypeInfo(T_NUMERICN, ti.size, ti.prec, ti.scale)
    binary = t in (T_BIGVARBIN, T_BIGBINARY, T_VARBINARY, T_BINARY, T_IMAGE)
    if t in (T_BIGVARCHR, T_BIGCHAR, T_VARCHAR, T_CHAR, T_TEXT):
        base = T_BIGVARCHR
        nbytes = len(str(value).encode("cp1252", errors="replace")) if value is not None else 0
    elif binary:
        base = T_BIGVARBIN
        nbytes = len(value) if value is not None else 0
    else:
        base = T_NVARCHAR
        nbytes = 2 * len(str(value)) if value is not None else 0
    if ti.plp or (nbytes > 8000 and tdsver >= 0x72000000):
        return TypeInfo(base, 0xFFFF)
    return TypeInfo(base, 8000)


def coerce_for(ti, v):
    """Makes v fit the declared type of an output parameter."""
    if v is None:
        return None
    t = ti.ttype
    try:
        if t == T_INTN:
            return int(v)
        if t == T_FLTN:
            return float(v)
        if t == T_BITN:
            return bool(v)
        if t == T_NUMERICN:
            return decimal.Decimal(v)
    except (TypeError, ValueError, decimal.InvalidOperation):
        return None
    if t == T_BIGVARBIN:
        return v if isinstance(v, (bytes, bytearray)) else str(v).encode()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


# ------------------------------------------------------------------ tokens


def tok_envchange(kind, new, old):
    if kind in (ENV_COLLATION, ENV_BEGINTRAN, ENV_COMMITTRAN, ENV_ROLLBACKTRAN, ENV_ENLISTDTC):
        body = bytes([kind, len(new)]) + new + bytes([len(old)]) + old
    else:
        body = bytes([kind]) + b_varchar(new) + b_varchar(old)
    return bytes([TOK_ENVCHANGE]) + struct.pack("<H", len(body)) + body


def tok_message(token, number, state, cls, msg, tdsver, proc="", line=1):
    body = struct.pack("<iBB", number, state & 0xFF, cls & 0xFF) + us_varchar(msg[:2000]) + \
        b_varchar(SERVER_NAME) + b_varchar(proc[:128])
    body += struct.pack("<i", line) if tdsver >= 0x72000000 else struct.pack("<H", line)
    return bytes([token]) + struct.pack("<H", len(body)) + body


def tok_done(token, status, curcmd, count, tdsver):
    if tdsver >= 0x72000000:
        return struct.pack("<BHHQ", token, status, curcmd, count)
    return struct.pack("<BHHI", token, status, curcmd, count & 0xFFFFFFFF)


def tok_loginack(tdsver):
    body = bytes([1]) + struct.pack(">I", tdsver) + b_varchar(PRODUCT_NAME) + bytes([16, 0, 0x0F, 0xA0])
    return bytes([TOK_LOGINACK]) + struct.pack("<H", len(body)) + body


def usertype_bytes(tdsver):
    return b"\x00\x00\x00\x00" if tdsver >= 0x72000000 else b"\x00\x00"


def tok_returnvalue(ordinal, name, ti, value, tdsver):
    return bytes([TOK_RETURNVALUE]) + struct.pack("<H", ordinal) + b_varchar(name) + b"\x01" + \
        usertype_bytes(tdsver) + b"\x00\x00" + typeinfo_bytes(ti) + encode_value(ti, value)


class Done:
    """A DONE/DONEPROC/DONEINPROC whose MORE bit is decided when the reply is complete."""

    def __init__(self, token, status, curcmd=0, count=0):
        self.token, self.status, self.curcmd, self.count = token, status, curcmd, count


# ------------------------------------------------------------------ result sets


def result_columns(desc, rows, tdsver):
    """Chooses a TDS type per PostgreSQL result column (see README)."""
    cols = []
    for i, d in enumerate(desc):
        name = d.name if d.name != "?column?" else ""
        oid = d.type_code
        vals = [r[i] for r in rows if r[i] is not None]
        if oid in (21, 23):
            ti = TypeInfo(T_INTN, 4)
        elif oid == 20:
            ti = TypeInfo(T_INTN, 8)
        elif oid in (700, 701):
            ti = TypeInfo(T_FLTN, 8)
        elif oid == 16:
            ti = TypeInfo(T_BITN, 1)
        elif oid == 1700:
            finite = [v for v in vals if isinstance(v, decimal.Decimal) and v.is_finite()]
            dscale = d.scale if d.scale is not None and 0 <= d.scale <= 38 else 0  # no typmod: 65531
            scale = max([max(0, -v.as_tuple().exponent) for v in finite] + [dscale])
            scale = min(scale, 38)
            digits = max([_numeric_digits(v) + scale for v in finite] + [1])
            if digits <= 38 and len(finite) == len(vals):
                ti = TypeInfo(T_NUMERICN, 17, 38, scale)
            else:
                ti = TypeInfo(T_FLTN, 8)
        elif oid == 17:
            big = any(len(v) > 8000 for v in vals)
            ti = TypeInfo(T_BIGVARBIN, 0xFFFF if big and tdsver >= 0x72000000 else 8000)
        else:
            big = any(len(_cell_text(v)) > 4000 for v in vals)
            ti = TypeInfo(T_NVARCHAR, 0xFFFF if big and tdsver >= 0x72000000 else 8000)
        cols.append((name, ti))
    return cols


def _cell_text(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, datetime.datetime):
        return v.isoformat(sep=" ")
    return str(v)


def cell_value(ti, v):
    if v is None:
        return None
    if ti.ttype == T_BIGVARBIN:
        b = bytes(v)
        return b if ti.size == 0xFFFF else b[:8000]
    if ti.ttype == T_NVARCHAR:
        s = _cell_text(v)
        return s if ti.size == 0xFFFF else s[:4000]
    if ti.ttype == T_FLTN:
        return float(v)
    return v


def tok_colmetadata(cols, tdsver):
    out = [bytes([TOK_COLMETADATA]), struct.pack("<H", len(cols))]
    for name, ti in cols:
        out.append(usertype_bytes(tdsver) + struct.pack("<H", 0x0001 | 0x0008) + typeinfo_bytes(ti) + b_varchar(name))
    return b"".join(out)


def tok_row(cols, row):
    out = [bytes([TOK_ROW])]
    for (name, ti), v in zip(cols, row):
        out.append(encode_value(ti, cell_value(ti, v)))
    return b"".join(out)


# ------------------------------------------------------------------ T-SQL scanning and translation

_STMT_START = re.compile(
    r"(BEGIN\s+TRAN|COMMIT\b|ROLLBACK\b|INSERT\b|DELETE\b|UPDATE\b|CREATE\b|DROP\b|ALTER\b|IF\b|EXEC\b|"
    r"EXECUTE\b|USE\b|RAISERROR\b|THROW\b|PRINT\b|DECLARE\b|TRUNCATE\b|SELECT\b|SET\b|SAVE\s+TRAN|WITH\b)",
    re.I)
_BODY_KW = re.compile(r"\b(CREATE|DROP|ROLLBACK|COMMIT|INSERT|UPDATE|DELETE|SELECT|EXEC|EXECUTE|RAISERROR|THROW|"
                      r"SET|PRINT|BEGIN|ALTER|TRUNCATE)\b", re.I)


def scan_segments(sql):
    """Splits sql into ('code'|'str'|'ident', text) segments; drops comments.

    'str' keeps its quotes (an N prefix is dropped), 'ident' is a bracketed or
    double-quoted name without its quotes."""
    segs = []
    i, n, code = 0, len(sql), []

    def flush():
        if code:
            segs.append(("code", "".join(code)))
            code.clear()

    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            code.append(" ")
            continue
        if c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            code.append(" ")
            continue
        if c in "Nn" and i + 1 < n and sql[i + 1] == "'" and \
                (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_@#")):
            i += 1
            continue
        if c == "'":
            j = i + 1
            while True:
                k = sql.find("'", j)
                if k < 0:
                    k = n - 1
                    break
                if k + 1 < n and sql[k + 1] == "'":
                    j = k + 2
                    continue
                break
            flush()
            segs.append(("str", sql[i:k + 1]))
            i = k + 1
            continue
        if c in "[\"":
            close = "]" if c == "[" else "\""
            k = sql.find(close, i + 1)
            if k < 0:
                k = n
            flush()
            segs.append(("ident", sql[i + 1:k]))
            i = k + 1
            continue
        code.append(c)
        i += 1
    flush()
    return segs


def join_segments(segs):
    out = []
    for kind, text in segs:
        if kind == "ident":
            out.append('"' + text.replace('"', '""') + '"')
        else:
            out.append(text)
    return "".join(out)


def split_batch(sql):
    """Splits a T-SQL batch into statements: at ';' and at line breaks before
    a statement keyword (T-SQL needs no separator), never inside quotes or
    parentheses."""
    stmts, cur = [], []
    depth = 0

    def cur_text():
        return join_segments(cur).strip()

    def push():
        t = cur_text()
        if t:
            stmts.append(t)
        cur.clear()

    for kind, text in scan_segments(sql):
        if kind != "code":
            cur.append((kind, text))
            continue
        buf = []
        i = 0
        while i < len(text):
            c = text[i]
            if c == "(":
                depth += 1
            elif c == ")":
                depth = max(0, depth - 1)
            if c == ";" and depth == 0:
                cur.append(("code", "".join(buf)))
                buf = []
                push()
                i += 1
                continue
            if c == "\n" and depth == 0:
                rest = text[i + 1:].lstrip()
                m = _STMT_START.match(rest)
                if m and _split_here(join_segments(cur + [("code", "".join(buf))]).strip(), m.group(1)):
                    cur.append(("code", "".join(buf)))
                    buf = []
                    push()
                    i += 1
                    continue
            buf.append(c)
            i += 1
        cur.append(("code", "".join(buf)))
    push()
    return stmts


def _split_here(before, kw):
    if not before:
        return False
    kw = kw.upper().split()[0]
    first = before.split(None, 1)[0].upper()
    if first == "IF":
        flat = re.sub(r"\([^()]*\)", "", re.sub(r"\([^()]*\)", "", before))
        if not _BODY_KW.search(flat[2:]):
            return False  # the IF's statement is on the next line
    if kw == "SELECT":
        if first == "INSERT" and not re.search(r"\b(VALUES|DEFAULT\s+VALUES|SELECT)\b", before, re.I):
            return False  # INSERT INTO t <newline> SELECT ...
        if first in ("CREATE", "WITH", "DECLARE") or re.search(r"\b(UNION|ALL|EXCEPT|INTERSECT)\s*$", before, re.I):
            return False
    if kw == "SET" and first == "UPDATE":
        return False
    if kw == "WITH" and first in ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE"):
        return False
    return True


_TYPE_SUBS = [
    (re.compile(r"\bN?VARCHAR\s*\(\s*MAX\s*\)", re.I), "text"),
    (re.compile(r"\bVARBINARY\s*\(\s*(MAX|\d+)\s*\)", re.I), "bytea"),
    (re.compile(r"\bBINARY\s*\(\s*\d+\s*\)", re.I), "bytea"),
    (re.compile(r"\bVARBINARY\b", re.I), "bytea"),
    (re.compile(r"\bNVARCHAR\b", re.I), "varchar"),
    (re.compile(r"\bNCHAR\b", re.I), "char"),
    (re.compile(r"\bNTEXT\b", re.I), "text"),
    (re.compile(r"\bDATETIME2\s*(\(\s*\d+\s*\))?", re.I), "timestamp"),
    (re.compile(r"\bDATETIME\b", re.I), "timestamp"),
    (re.compile(r"\bTINYINT\b", re.I), "smallint"),
    (re.compile(r"\bUNIQUEIDENTIFIER\b", re.I), "uuid"),
    (re.compile(r"\bIDENTITY\s*(\(\s*\d+\s*,\s*\d+\s*\))?", re.I), "GENERATED BY DEFAULT AS IDENTITY"),
]
_DDL_SUBS = [
    (re.compile(r"\bBIT\b", re.I), "smallint"),  # T-SQL writes bits as 0/1 integers
    (re.compile(r"\bFLOAT\b", re.I), "double precision"),
    (re.compile(r"\bIMAGE\b", re.I), "bytea"),
]
_FUNC_SUBS = [
    (re.compile(r"\bGETDATE\s*\(\s*\)", re.I), "LOCALTIMESTAMP"),
    (re.compile(r"\bSYSDATETIME\s*\(\s*\)", re.I), "LOCALTIMESTAMP"),
    (re.compile(r"\b(GETUTCDATE|SYSUTCDATETIME)\s*\(\s*\)", re.I), "(now() AT TIME ZONE 'utc')"),
    (re.compile(r"\bDB_NAME\s*\(\s*\)", re.I), "current_database()"),
    (re.compile(r"\bAS\s+BIT\b", re.I), "AS smallint"),
    (re.compile(r"\bdbo\s*\.\s*", re.I), ""),
    (re.compile(r"\bISNULL\s*\(", re.I), "COALESCE("),
    (re.compile(r"\bLEN\s*\(", re.I), "length("),
]


def translate_sql(stmt, session, params=None):
    """Turns one T-SQL statement into PostgreSQL text (and the order of @params used).

    params: names (lower case, with @) that are bound; each occurrence becomes %s."""
    segs = scan_segments(stmt)
    first_code = next((t for k, t in segs if k == "code" and t.strip()), "")
    ddl = re.match(r"\s*(CREATE|ALTER)\s+TABLE\b", first_code, re.I) is not None
    order = []
    out = []
    for kind, text in segs:
        if kind == "code":
            for rx, rep in _TYPE_SUBS + _FUNC_SUBS + (_DDL_SUBS if ddl else []):
                text = rx.sub(rep, text)
            text = re.sub(r"(?<![\w.])0[xX]([0-9A-Fa-f]*)(?![\w.])", r"'\\x\1'::bytea", text)
            text = re.sub(r"@@TRANCOUNT\b", str(session.trancount_value()), text, flags=re.I)
            text = re.sub(r"@@SPID\b", str(session.spid), text, flags=re.I)
            text = re.sub(r"@@SERVERNAME\b", "'%s'" % SERVER_NAME, text, flags=re.I)
            text = re.sub(r"@@VERSION\b", "'%s (TDS stand-in over PostgreSQL)'" % PRODUCT_NAME, text, flags=re.I)
            text = re.sub(r"@@ROWCOUNT\b", str(session.last_rowcount), text, flags=re.I)
            if params is not None:
                text = text.replace("%", "%%")

                def sub(m):
                    name = m.group(0).lower()
                    if name in params:
                        order.append(name)
                        return "%s"
                    return m.group(0)

                text = re.sub(r"(?<![@\w])@\w+", sub, text)
            out.append(("code", text))
        elif kind == "str":
            out.append(("str", text.replace("%", "%%") if params is not None else text))
        else:
            out.append((kind, text))
    sql = join_segments(out).strip()
    m = re.match(r"(?is)^SELECT\s+(DISTINCT\s+)?TOP\s*\(?\s*(\d+)\s*\)?\s+(.*)$", sql)
    if m:
        sql = "SELECT %s%s LIMIT %s" % (m.group(1) or "", m.group(3), m.group(2))
    return sql, order


def unquote_literal(s):
    s = s.strip()
    if s[:1] in "Nn" and s[1:2] == "'":
        s = s[1:]
    if len(s) >= 2 and s[0] == "'" and s[-1] == "'":
        return s[1:-1].replace("''", "'")
    return s


RX_BEGIN = re.compile(r"(?is)^BEGIN\s+TRAN(SACTION)?(\s+\w+)?$")
RX_COMMIT = re.compile(r"(?is)^COMMIT(\s+(TRAN(SACTION)?|WORK))?(\s+\w+)?$")
RX_ROLLBACK = re.compile(r"(?is)^ROLLBACK(\s+(TRAN(SACTION)?|WORK))?(\s+\w+)?$")
RX_IF_TRANCOUNT = re.compile(r"(?is)^IF\s+@@TRANCOUNT\s*>\s*0\s+(COMMIT|ROLLBACK)(\s+(TRAN(SACTION)?|WORK))?(\s+\w+)?$")
RX_IF_OBJ = re.compile(r"(?is)^IF\s+OBJECT_ID\s*\(\s*(N?'(?:[^']|'')*')\s*(?:,\s*N?'(?:[^']|'')*'\s*)?\)\s+IS\s+"
                       r"(NOT\s+)?NULL\s+(.*)$")
RX_SET = re.compile(r"(?is)^SET\s+(\w+)(?:\s+(.*))?$")
RX_USE = re.compile(r'(?is)^USE\s+[\["]?([\w$#@-]+)[\]"]?$')
RX_RAISERROR = re.compile(r"(?is)^RAISERROR\s*\(\s*(N?'(?:[^']|'')*')\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,[^)]*)?\)"
                          r"(\s+WITH\s+[\w, ]+)?$")
RX_THROW = re.compile(r"(?is)^THROW\s+(\d+)\s*,\s*(N?'(?:[^']|'')*')\s*,\s*(\d+)$")
RX_PRINT = re.compile(r"(?is)^PRINT\s+(N?'(?:[^']|'')*')$")


# ------------------------------------------------------------------ PostgreSQL error mapping


def map_pg_error(e, conn, sql, spid=0):
    """A psycopg2 error as SQL Server would report it (number, message, class, state, abort)."""
    code = getattr(e, "pgcode", None) or ""
    diag = getattr(e, "diag", None)
    prim = (diag.message_primary if diag is not None else None) or str(e).strip().splitlines()[0]
    table = (diag.table_name if diag is not None else None) or "?"
    cons = (diag.constraint_name if diag is not None else None) or "?"
    column = (diag.column_name if diag is not None else None) or "?"
    detail = (diag.message_detail if diag is not None else None) or ""
    dbname = conn.info.dbname if conn is not None and not conn.closed else "?"
    if code == "23505":
        m = re.search(r"=\((.*)\) already exists", detail)
        keyval = m.group(1) if m else "?"
        kind = constraint_kind(conn, cons)
        if kind == "p":
            return SqlError(2627, "Violation of PRIMARY KEY constraint '%s'. Cannot insert duplicate key in object "
                            "'dbo.%s'. The duplicate key value is (%s)." % (cons, table, keyval), 14, 1)
        if kind == "u":
            return SqlError(2627, "Violation of UNIQUE KEY constraint '%s'. Cannot insert duplicate key in object "
                            "'dbo.%s'. The duplicate key value is (%s)." % (cons, table, keyval), 14, 1)
        return SqlError(2601, "Cannot insert duplicate key row in object 'dbo.%s' with unique index '%s'. "
                        "The duplicate key value is (%s)." % (table, cons, keyval), 14, 1)
    if code in ("23503", "23514"):
        verb = (sql.split(None, 1)[0].upper() if sql.strip() else "INSERT")
        what = "FOREIGN KEY" if code == "23503" else "CHECK"
        return SqlError(547, "The %s statement conflicted with the %s constraint \"%s\". The conflict occurred in "
                        "database \"%s\", table \"dbo.%s\"." % (verb, what, cons, dbname, table), 16, 0)
    if code == "23502":
        return SqlError(515, "Cannot insert the value NULL into column '%s', table '%s.dbo.%s'; column does not "
                        "allow nulls. INSERT fails." % (column, dbname, table), 16, 2)
    if code in ("40P01", "40001"):
        return SqlError(1205, "Transaction (Process ID %d) was deadlocked on lock resources with another process "
                        "and has been chosen as the deadlock victim. Rerun the transaction." % spid, 13, 51,
                        abort_batch=True, abort_tx=True)
    if code == "42P01":
        m = re.search(r'relation "([^"]+)" does not exist', prim)
        return SqlError(208, "Invalid object name '%s'." % (m.group(1) if m else prim), 16, 1, abort_batch=True)
    if code == "42703":
        m = re.search(r'column "?([^" ]+)"? does not exist', prim)
        return SqlError(207, "Invalid column name '%s'." % (m.group(1) if m else prim), 16, 1, abort_batch=True)
    if code == "42601":
        m = re.search(r'at or near "([^"]*)"', prim)
        return SqlError(102, "Incorrect syntax near '%s'." % (m.group(1) if m else prim), 15, 1, abort_batch=True)
    if code == "55P03":
        return SqlError(1222, "Lock request time out period exceeded.", 16, 56)
    if code == "42P07":
        return SqlError(2714, "There is already an object named '%s' in the database." %
                        (re.sub(r'^relation "([^"]+)".*$', r"\1", prim)), 16, 6)
    return SqlError(50000, "%s (PostgreSQL %s)" % (prim, code or "error"), 16, 1)


def pg_lost(e, conn):
    """Whether psycopg2 error e means the connection to the store is gone (no SQLSTATE)."""
    if conn is None or conn.closed:
        return True
    return isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)) and not getattr(e, "pgcode", None)


def constraint_kind(conn, name):
    try:
        cur = conn.cursor()
        cur.execute("SELECT contype FROM pg_constraint WHERE conname = %s LIMIT 1", (name,))
        row = cur.fetchone()
        return row[0] if row else "i"
    except psycopg2.Error:
        return "p"


# ------------------------------------------------------------------ XA branches


def xid_gid(fid, gtrid, bqual):
    return "tds:%d.%s.%s" % (fid, gtrid.hex(), bqual.hex())


RX_GID = re.compile(r"^tds:(-?\d+)\.([0-9a-f]*)\.([0-9a-f]*)$")  # lower-case hex, as xid_gid writes


class Branch:
    """An XA branch between xa_start and xa_prepare/commit/rollback: its own
    PostgreSQL connection and transaction (the work of the sessions bound to it)."""

    def __init__(self, xid, db, conn, cookie):
        self.xid, self.db, self.conn, self.cookie = xid, db, conn, cookie
        self.gid = xid_gid(*xid)
        self.rollback_only = False
        self.bound = None  # the Session bound by TM_PROPAGATE_XACT
        self.owner = None  # the Session that started it (rolls it back if it vanishes)
        self.lock = threading.RLock()


# ------------------------------------------------------------------ the server


class Server:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.branches = {}  # xid -> Branch
        self.cookies = {}  # cookie -> Branch
        self.sessions = set()
        self.next_spid = 51
        self.next_desc = 1
        self.db_lock = threading.Lock()
        self.known_dbs = set()
        self.stopping = False

    def new_spid(self):
        with self.lock:
            s = self.next_spid
            self.next_spid = 51 if self.next_spid >= 32000 else self.next_spid + 1
            return s

    def new_descriptor(self):
        with self.lock:
            d = self.next_desc
            self.next_desc += 1
            return struct.pack("<Q", d)

    def pg_connect(self, db):
        conn = psycopg2.connect(self.args.pg, dbname=db, connect_timeout=10,
                                application_name="tds-standin")
        conn.autocommit = True
        return conn

    def ensure_db(self, db):
        if db in self.known_dbs:
            return
        with self.db_lock:
            admin = self.pg_connect(self.args.admin_db)
            try:
                cur = admin.cursor()
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if cur.fetchone() is None:
                    cur.execute('CREATE DATABASE "%s"' % db.replace('"', '""'))
                    LOG.info("created PostgreSQL database %s", db)
            finally:
                admin.close()
            self.known_dbs.add(db)

    def prepared_gids(self):
        """Every tds: gid in pg_prepared_xacts: {gid: database}."""
        admin = self.pg_connect(self.args.admin_db)
        try:
            cur = admin.cursor()
            cur.execute("SELECT gid, database FROM pg_prepared_xacts WHERE gid LIKE 'tds:%' ORDER BY prepared")
            return {g: d for g, d in cur.fetchall()}
        finally:
            admin.close()

    def serve(self):
        fam = socket.AF_INET6 if ":" in self.args.host else socket.AF_INET
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.args.host, self.args.port))
        ls.listen(128)
        self.listener = ls
        LOG.info("listening on %s:%d, store %s", self.args.host, self.args.port, redact(self.args.pg))
        if self.args.pid_file:
            with open(self.args.pid_file + ".tmp", "w") as f:
                f.write("%d\n" % os.getpid())
            os.rename(self.args.pid_file + ".tmp", self.args.pid_file)
        try:
            while not self.stopping:
                try:
                    cs, addr = ls.accept()
                except OSError:
                    if self.stopping:
                        break
                    raise
                s = Session(self, cs, addr)
                with self.lock:
                    self.sessions.add(s)
                threading.Thread(target=s.run, daemon=True, name="tds-%d" % s.spid).start()
        finally:
            self.shutdown()

    def shutdown(self):
        with self.lock:
            sessions = list(self.sessions)
            branches = list(self.branches.values())
        for s in sessions:
            s.abort()
        for b in branches:
            try:
                b.conn.close()
            except Exception:
                pass
        LOG.info("stopped (%d sessions closed)", len(sessions))


def redact(dsn):
    return re.sub(r"password=\S+", "password=***", dsn)


class Session:
    def __init__(self, server, sock, addr):
        self.server, self.sock, self.addr = server, sock, addr
        self.spid = server.new_spid()
        self.tdsver = 0x74000004
        self.packet_size = 4096
        self.out_pkt_id = 1
        self.user = ""
        self.db = ""
        self.pg = None
        self.trancount = 0
        self.tx_desc = b"\x00" * 8
        self.bound = None
        self.xact_abort = False
        self.nocount = False
        self.last_rowcount = 0
        self.enc_required = False
        self.attention = False
        self.exec_lock = threading.Lock()
        self.closed = False
        self.scan_open = False

    # ---------------------------------------------------------- framing

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise SessionClosed("client closed the connection")
            buf += chunk
        return bytes(buf)

    def read_message(self):
        """One client message (all packets up to EOM): (type, status, payload)."""
        payload = bytearray()
        first_type = first_status = None
        while True:
            hdr = self.recv_exact(8)
            ptype, status, length = hdr[0], hdr[1], struct.unpack(">H", hdr[2:4])[0]
            if ptype not in (PKT_SQLBATCH, PKT_RPC, PKT_ATTN, PKT_TM, PKT_LOGIN7, PKT_PRELOGIN, 0x02, 0x07, 0x11):
                raise ProtocolError("unknown packet type 0x%02X" % ptype)
            if length < 8:
                raise ProtocolError("bad packet length %d" % length)
            body = self.recv_exact(length - 8)
            if first_type is None:
                first_type, first_status = ptype, status
            elif ptype == PKT_ATTN:
                # attention in the middle of a multi-packet message: drop the message
                self.attention = True
                return PKT_ATTN, status, b""
            elif ptype != first_type:
                raise ProtocolError("packet type changed from 0x%02X to 0x%02X inside a message" %
                                    (first_type, ptype))
            payload += body
            if len(payload) > MAX_MESSAGE:
                raise ProtocolError("message larger than %d bytes" % MAX_MESSAGE)
            if status & ST_EOM:
                return first_type, first_status, bytes(payload)

    def send_message(self, payload, ptype=PKT_REPLY):
        maxbody = self.packet_size - 8
        pos = 0
        out = []
        while True:
            chunk = payload[pos:pos + maxbody]
            pos += len(chunk)
            last = pos >= len(payload)
            hdr = struct.pack(">BBHHBB", ptype, ST_EOM if last else 0, len(chunk) + 8, self.spid & 0xFFFF,
                              self.out_pkt_id, 0)
            self.out_pkt_id = (self.out_pkt_id + 1) & 0xFF
            out.append(hdr + chunk)
            if last:
                break
        self.sock.sendall(b"".join(out))

    def send_tokens(self, items):
        """Serializes tokens; the last DONE-type item loses its MORE bit."""
        last_done = None
        for i, it in enumerate(items):
            if isinstance(it, Done):
                last_done = i
        parts = []
        for i, it in enumerate(items):
            if isinstance(it, Done):
                st = it.status
                if i == last_done:
                    st &= ~DONE_MORE
                else:
                    st |= DONE_MORE
                if self.trancount > 0 or self.bound is not None:
                    st |= DONE_INXACT
                parts.append(tok_done(it.token, st, it.curcmd, it.count, self.tdsver))
            else:
                parts.append(it)
        self.send_message(b"".join(parts))

    # ---------------------------------------------------------- life cycle

    def abort(self):
        """Called by the server at shutdown: drop the client and the PG side."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self):
        self.peer = peer = "%s:%s" % (self.addr[0], self.addr[1])
        reason = "closed"
        try:
            # a client that connects and never logs in must not hold a thread forever
            self.sock.settimeout(LOGIN_TIMEOUT)
            self.login()
            self.sock.settimeout(None)
            while not self.closed:
                ptype, status, payload = self.read_message()
                if status & ST_RESET and ptype != PKT_ATTN:
                    self.reset_session()
                self.dispatch(ptype, payload)
        except SessionClosed as e:
            reason = str(e)
        except ProtocolError as e:
            reason = "protocol error: %s" % e
        except (ConnectionError, OSError) as e:
            reason = "socket error: %s" % e
        except Exception as e:  # never let one session take the server down
            reason = "internal error: %r" % e
            LOG.exception("spid %d: internal error", self.spid)
        finally:
            self.cleanup()
            LOG.info("spid %d: %s disconnected (%s)%s", self.spid, peer, " ".join(reason.split()),
                     " user %s db %s" % (self.user, self.db) if self.user else "")

    def cleanup(self):
        with self.server.lock:
            self.server.sessions.discard(self)
            owned = [b for b in self.server.branches.values() if b.owner is self or b.bound is self]
        for b in owned:
            if b.bound is self:
                b.bound = None
            if b.owner is self:
                # like a DTC branch whose enlisted connection died before prepare
                self.drop_branch(b, rollback=True)
                LOG.info("spid %d: rolled back unprepared XA branch %s (session ended)", self.spid, b.gid)
        if self.pg is not None:
            if self.trancount > 0:
                LOG.info("spid %d: rolling back the open transaction (session ended)", self.spid)
            try:
                self.pg.close()  # PostgreSQL rolls back whatever was open
            except Exception:
                pass
            self.pg = None
        try:
            self.sock.close()
        except OSError:
            pass

    def reset_session(self):
        if self.trancount > 0 and self.pg is not None:
            try:
                self.pg.cursor().execute("ROLLBACK")
            except psycopg2.Error:
                pass
        self.trancount = 0
        self.bound = None
        self.xact_abort = False
        self.nocount = False

    # ---------------------------------------------------------- login

    def login(self):
        ptype, status, payload = self.read_message()
        if ptype == PKT_PRELOGIN:
            self.prelogin(payload)
            ptype, status, payload = self.read_message()
        if ptype != PKT_LOGIN7:
            raise ProtocolError("expected LOGIN7, got packet type 0x%02X" % ptype)
        self.login7(payload)

    def prelogin(self, payload):
        r = Reader(payload)
        enc = 2
        while True:
            tok = r.u8()
            if tok == 0xFF:
                break
            off, ln = r.u16be(), r.u16be()
            if off + ln > len(payload):
                raise ProtocolError("PRELOGIN option outside the message")
            if tok == 1 and ln >= 1:
                enc = payload[off]
        self.enc_required = enc in (1, 3)
        if self.enc_required:
            LOG.info("spid %d: the client requires encryption; answering ENCRYPT_NOT_SUP (no TLS here)", self.spid)
        opts = [(0, bytes([16, 0, 0x0F, 0xA0, 0, 0])), (1, bytes([2])), (2, b"\x00"), (3, b""), (4, b"\x00")]
        hdr_len = 5 * len(opts) + 1
        hdr, data = bytearray(), bytearray()
        for tok, val in opts:
            hdr += struct.pack(">BHH", tok, hdr_len + len(data), len(val))
            data += val
        self.send_message(bytes(hdr) + b"\xff" + bytes(data))

    def login_fail(self, number, msg, state=1):
        self.send_tokens([tok_message(TOK_ERROR, number, state, 14, msg, self.tdsver),
                          Done(TOK_DONE, DONE_ERROR)])
        raise SessionClosed("login failed: %s" % msg)

    def login7(self, p):
        if len(p) < 94:
            raise ProtocolError("LOGIN7 too short (%d bytes)" % len(p))
        r = Reader(p)
        r.u32()
        ver = r.u32()
        pkt = r.u32()
        # Reply with the version the client asked for (7.1 .. 7.4), as SQL Server does.
        known = {0x71000000: 0x71000001, 0x71000001: 0x71000001, 0x72090002: 0x72090002,
                 0x730A0003: 0x730A0003, 0x730B0003: 0x730B0003, 0x74000004: 0x74000004}
        if ver in known:
            self.tdsver = known[ver]
        elif ver > 0x74000004:
            self.tdsver = 0x74000004
        else:
            self.tdsver = 0x71000001
        r.pos = 36

        def field():
            off, ln = r.u16(), r.u16()
            if off + 2 * ln > len(p):
                raise ProtocolError("LOGIN7 field outside the message")
            return off, ln

        fields = [field() for _ in range(9)]  # host user pass app server ext lib lang db
        host = p[fields[0][0]:fields[0][0] + 2 * fields[0][1]].decode("utf-16-le", "replace")
        user = p[fields[1][0]:fields[1][0] + 2 * fields[1][1]].decode("utf-16-le", "replace")
        raw = p[fields[2][0]:fields[2][0] + 2 * fields[2][1]]
        # LOGIN7 scrambles each password byte: nibbles swapped, then XOR 0xA5
        pw = bytes(((((b ^ 0xA5) << 4) & 0xF0) | (((b ^ 0xA5) >> 4) & 0x0F)) for b in raw)
        pw = pw.decode("utf-16-le", "replace")
        app = p[fields[3][0]:fields[3][0] + 2 * fields[3][1]].decode("utf-16-le", "replace")
        db = p[fields[8][0]:fields[8][0] + 2 * fields[8][1]].decode("utf-16-le", "replace")
        self.packet_size = pkt if 512 <= pkt <= 32767 else 4096
        self.user = user
        LOG.info("spid %d: login from %s user %s app %s host %s db %s tds 0x%08X packet %d", self.spid, self.peer,
                 user, app, host, db or "(default)", self.tdsver, self.packet_size)
        if self.enc_required:
            self.login_fail(18456, "Login failed for user '%s'. The client requires encryption, which the TDS test "
                                   "stand-in does not support (no TLS)." % user)
        if user != self.server.args.user or pw != self.server.args.password:
            self.login_fail(18456, "Login failed for user '%s'." % user, 1)
        db = db or self.server.args.default_db
        try:
            self.open_db(db)
        except psycopg2.Error as e:
            self.login_fail(4060, "Cannot open database \"%s\" requested by the login. The login failed. (%s)" %
                            (db, str(e).strip().splitlines()[0] if str(e).strip() else "PostgreSQL"), 1)
        items = [tok_envchange(ENV_DATABASE, db, "master"),
                 tok_message(TOK_INFO, 5701, 2, 0, "Changed database context to '%s'." % db, self.tdsver),
                 tok_envchange(ENV_COLLATION, COLLATION, b""),
                 tok_envchange(ENV_LANGUAGE, "us_english", ""),
                 tok_message(TOK_INFO, 5703, 1, 0, "Changed language setting to us_english.", self.tdsver),
                 tok_loginack(self.tdsver),
                 tok_envchange(ENV_PACKETSIZE, str(self.packet_size), str(self.packet_size)),
                 Done(TOK_DONE, DONE_FINAL)]
        self.send_tokens(items)

    def open_db(self, db):
        if not re.match(r"^[A-Za-z0-9_$#@-]{1,63}$", db):
            raise psycopg2.OperationalError("bad database name")
        self.server.ensure_db(db)
        conn = self.server.pg_connect(db)
        if self.pg is not None:
            try:
                self.pg.close()
            except Exception:
                pass
        self.pg = conn
        self.db = db

    # ---------------------------------------------------------- dispatch

    def dispatch(self, ptype, payload):
        if ptype == PKT_ATTN:
            self.attention = False
            self.send_tokens([Done(TOK_DONE, DONE_ATTN)])
            return
        r = Reader(payload)
        if ptype == PKT_SQLBATCH:
            skip_all_headers(r, self.tdsver)
            if r.remaining() % 2:
                raise ProtocolError("odd SQL batch length")
            text = r.take(r.remaining()).decode("utf-16-le", errors="replace")
            LOG.debug("spid %d: batch %r", self.spid, text[:500])
            items = []
            self.run_batch(text, items, TOK_DONE, None)
            self.finish(items)
        elif ptype == PKT_RPC:
            skip_all_headers(r, self.tdsver)
            items = []
            while r.remaining():
                self.rpc_one(r, items)
                if r.remaining():
                    sep = r.u8()
                    if sep not in (0x80, 0xFF):
                        raise ProtocolError("bad RPC batch separator 0x%02X" % sep)
            self.finish(items)
        elif ptype == PKT_TM:
            skip_all_headers(r, self.tdsver)
            items = []
            self.tm_request(r, items)
            self.finish(items)
        else:
            raise ProtocolError("unexpected packet type 0x%02X after login" % ptype)

    def finish(self, items):
        if self.attention:
            # the client sent an attention while we worked: consume it and ack it
            self.attention = False
            ptype, _, _ = self.read_message()  # SessionClosed if the client just went away
            if ptype != PKT_ATTN:
                raise ProtocolError("expected an attention packet")
            items.append(Done(TOK_DONE, DONE_ATTN))
        if not any(isinstance(i, Done) for i in items):
            items.append(Done(TOK_DONE, DONE_FINAL))
        self.send_tokens(items)

    # ---------------------------------------------------------- PostgreSQL execution

    def trancount_value(self):
        return self.trancount

    def active_conn(self):
        b = self.bound
        return b.conn if b is not None else self.pg

    def pg_execute(self, conn, sql, params):
        """Runs one statement; an attention or a vanished client cancels it."""
        cur = conn.cursor()
        stop_r, stop_w = os.pipe()

        def watch():
            try:
                rl, _, _ = select.select([self.sock, stop_r], [], [])
                if self.sock in rl:
                    self.attention = True
                    conn.cancel()
            except Exception:
                pass

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        try:
            cur.execute(sql, params)
            desc = cur.description
            rows = cur.fetchall() if desc is not None else None
            return desc, rows, cur.statusmessage or "", cur.rowcount
        finally:
            os.write(stop_w, b"x")
            w.join()
            os.close(stop_r)
            os.close(stop_w)

    def in_tx(self):
        return self.trancount > 0 or self.bound is not None

    def run_pg(self, sql, params):
        conn = self.active_conn()
        if conn is None or conn.closed:
            raise SessionClosed("PostgreSQL connection lost")
        sp = self.in_tx()
        try:
            if sp:
                conn.cursor().execute("SAVEPOINT tds_stmt")
            try:
                res = self.pg_execute(conn, sql, params)
            except psycopg2.Error as e:
                if pg_lost(e, conn):
                    raise
                if sp:
                    conn.cursor().execute("ROLLBACK TO SAVEPOINT tds_stmt")
                if e.pgcode == "57014" and self.attention:
                    raise SqlError(0, "cancelled", 0, 0, abort_batch=True)
                raise map_pg_error(e, conn, sql, self.spid)
            if sp:
                conn.cursor().execute("RELEASE SAVEPOINT tds_stmt")
            return res
        except psycopg2.Error as e:
            if pg_lost(e, conn):
                raise self.store_lost(conn, e)
            raise SqlError(50000, "%s (PostgreSQL %s)" % (str(e).strip(), e.pgcode or "error"), 16, 1,
                           abort_batch=True)

    def store_lost(self, conn, e):
        """The store went away under this session: drop the client, like a crashed SQL Server would."""
        try:
            conn.close()
        except Exception:
            pass
        return SessionClosed("PostgreSQL connection lost: %s" % ((str(e).strip().splitlines() or [type(e).__name__])[0]))

    # ---------------------------------------------------------- batches

    def run_batch(self, text, items, done_tok, params):
        """Runs the statements of a batch, appending tokens to items.

        params: {'@name': value} for sp_executesql, else None."""
        try:
            stmts = split_batch(text)
        except Exception as e:
            raise ProtocolError("cannot split batch: %r" % e)
        had_error = False
        for stmt in stmts:
            if self.attention:
                break
            try:
                self.run_statement(stmt, items, done_tok, params)
            except SqlError as e:
                if e.number == 0:  # cancelled by an attention
                    break
                had_error = True
                abort_tx = e.abort_tx or (self.xact_abort and self.in_tx())
                LOG.info("spid %d: error %d: %s", self.spid, e.number, e.message)
                items.append(tok_message(TOK_ERROR, e.number, e.state, e.cls, e.message, self.tdsver,
                                         "", 1))
                if abort_tx:
                    self.abort_transaction(items)
                items.append(Done(done_tok, DONE_ERROR))
                if e.abort_batch or abort_tx or self.xact_abort:
                    break
        return had_error

    def abort_transaction(self, items):
        """What SQL Server does on a deadlock or with XACT_ABORT: the transaction is gone."""
        if self.bound is not None:
            b = self.bound
            b.rollback_only = True
            try:
                b.conn.cursor().execute("ROLLBACK")
                b.conn.cursor().execute("BEGIN")
            except psycopg2.Error:
                pass
            return
        if self.trancount > 0:
            try:
                self.pg.cursor().execute("ROLLBACK")
            except psycopg2.Error:
                pass
            self.trancount = 0
            items.append(tok_envchange(ENV_ROLLBACKTRAN, b"", self.tx_desc))

    def begin_tx(self, items):
        if self.bound is not None:
            raise SqlError(3910, "Transaction context in use by another session (this session is enlisted in an XA "
                                 "branch; the stand-in does not nest local transactions in it).", 16, 1)
        if self.trancount == 0:
            try:
                self.pg.cursor().execute("BEGIN")
            except psycopg2.Error as e:
                if pg_lost(e, self.pg):
                    raise self.store_lost(self.pg, e)
                raise map_pg_error(e, self.pg, "BEGIN", self.spid)
            self.tx_desc = self.server.new_descriptor()
            items.append(tok_envchange(ENV_BEGINTRAN, self.tx_desc, b""))
        self.trancount += 1

    def commit_tx(self, items):
        if self.trancount == 0:
            raise SqlError(3902, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.", 16, 1)
        if self.trancount > 1:
            self.trancount -= 1
            return
        self.trancount = 0
        try:
            self.pg.cursor().execute("COMMIT")
        except psycopg2.Error as e:
            if pg_lost(e, self.pg):
                raise self.store_lost(self.pg, e)  # outcome unknown to the client, as with a real crash
            items.append(tok_envchange(ENV_ROLLBACKTRAN, b"", self.tx_desc))
            raise map_pg_error(e, self.pg, "COMMIT", self.spid)
        items.append(tok_envchange(ENV_COMMITTRAN, b"", self.tx_desc))

    def rollback_tx(self, items):
        if self.trancount == 0:
            raise SqlError(3903, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.", 16, 1)
        self.trancount = 0
        try:
            self.pg.cursor().execute("ROLLBACK")
        except psycopg2.Error as e:
            if pg_lost(e, self.pg):
                raise self.store_lost(self.pg, e)
        items.append(tok_envchange(ENV_ROLLBACKTRAN, b"", self.tx_desc))

    def run_statement(self, stmt, items, done_tok, params):
        s = stmt.strip()
        if RX_BEGIN.match(s):
            self.begin_tx(items)
            items.append(Done(done_tok, DONE_FINAL, 0xD4))
            return
        m = RX_IF_TRANCOUNT.match(s)
        if m:
            if self.trancount > 0:
                if m.group(1).upper() == "COMMIT":
                    self.commit_tx(items)
                else:
                    self.rollback_tx(items)
            items.append(Done(done_tok, DONE_FINAL))
            return
        if RX_COMMIT.match(s):
            self.commit_tx(items)
            items.append(Done(done_tok, DONE_FINAL, 0xD5))
            return
        if RX_ROLLBACK.match(s):
            self.rollback_tx(items)
            items.append(Done(done_tok, DONE_FINAL, 0xD6))
            return
        m = RX_SET.match(s)
        if m:
            opt = m.group(1).upper()
            val = (m.group(2) or "").strip().upper()
            if opt == "XACT_ABORT":
                self.xact_abort = val == "ON"
            elif opt == "NOCOUNT":
                self.nocount = val == "ON"
            elif opt == "LOCK_TIMEOUT" and re.match(r"^-?\d+$", val):
                ms = int(val)
                self.run_pg("SET lock_timeout = %d" % (ms if ms > 0 else (1 if ms == 0 else 0)), None)
            items.append(Done(done_tok, DONE_FINAL))
            return
        m = RX_USE.match(s)
        if m:
            db = m.group(1)
            if self.in_tx():
                raise SqlError(226, "USE statement not allowed within multi-statement transaction.", 16, 1)
            try:
                self.open_db(db)
            except psycopg2.Error:
                raise SqlError(911, "Database '%s' does not exist. Make sure that the name is entered correctly." % db,
                               16, 1, abort_batch=True)
            items.append(tok_envchange(ENV_DATABASE, db, db))
            items.append(tok_message(TOK_INFO, 5701, 1, 0, "Changed database context to '%s'." % db, self.tdsver))
            items.append(Done(done_tok, DONE_FINAL))
            return
        m = RX_RAISERROR.match(s)
        if m:
            msg, sev, st = unquote_literal(m.group(1)), int(m.group(2)), int(m.group(3))
            if sev <= 10:
                items.append(tok_message(TOK_INFO, 50000, st, 0, msg, self.tdsver))
                items.append(Done(done_tok, DONE_FINAL))
                return
            raise SqlError(50000, msg, min(sev, 18), st)
        m = RX_THROW.match(s)
        if m:
            num = int(m.group(1))
            # THROW 1205 is the test hook for a deadlock: it ends the transaction like a real one
            raise SqlError(num, unquote_literal(m.group(2)), 13 if num == 1205 else 16, int(m.group(3)),
                           abort_batch=True, abort_tx=num == 1205)
        m = RX_PRINT.match(s)
        if m:
            items.append(tok_message(TOK_INFO, 0, 1, 0, unquote_literal(m.group(1)), self.tdsver))
            items.append(Done(done_tok, DONE_FINAL))
            return
        m = RX_IF_OBJ.match(s)
        if m:
            body = m.group(3).strip()
            if m.group(2):  # IS NOT NULL
                bm = re.match(r"(?is)^DROP\s+TABLE\s+(.*)$", body)
                if not bm:
                    raise SqlError(50000, "stand-in: only IF OBJECT_ID(..) IS NOT NULL DROP TABLE is supported", 16, 1)
                s = "DROP TABLE IF EXISTS " + bm.group(1)
            else:
                bm = re.match(r"(?is)^CREATE\s+TABLE\s+(.*)$", body)
                if not bm:
                    raise SqlError(50000, "stand-in: only IF OBJECT_ID(..) IS NULL CREATE TABLE is supported", 16, 1)
                s = "CREATE TABLE IF NOT EXISTS " + bm.group(1)
        if re.match(r"(?is)^(EXEC|EXECUTE)\b", s):
            name = s.split(None, 2)[1] if len(s.split()) > 1 else "?"
            raise SqlError(2812, "Could not find stored procedure '%s'. (the stand-in runs procedures only as RPC)" %
                           name, 16, 62)
        if re.match(r"(?is)^DECLARE\b", s):
            raise SqlError(50000, "stand-in: DECLARE is not supported (use RPC for procedures)", 16, 1,
                           abort_batch=True)
        sql, order = translate_sql(s, self, set(params) if params is not None else None)
        values = tuple(params[n] for n in order) if params is not None else None
        if values is not None and not order:
            values = None
            sql = sql.replace("%%", "%")
        if values is not None:
            values = tuple(psycopg2.Binary(v) if isinstance(v, (bytes, bytearray)) else
                           int(v) if isinstance(v, bool) else v for v in values)
        desc, rows, status, rowcount = self.run_pg(sql, values)
        verb = status.split(" ", 1)[0].upper() if status else ""
        if desc is not None:
            cols = result_columns(desc, rows, self.tdsver)
            if cols:
                items.append(tok_colmetadata(cols, self.tdsver))
                for row in rows:
                    items.append(tok_row(cols, row))
            self.last_rowcount = len(rows)
            items.append(Done(done_tok, DONE_FINAL if self.nocount else DONE_COUNT, 0xC1, len(rows)))
            return
        curcmd = {"INSERT": 0xC3, "DELETE": 0xC4, "UPDATE": 0xC5, "MERGE": 0x117}.get(verb, 0)
        if curcmd:
            self.last_rowcount = max(rowcount, 0)
            items.append(Done(done_tok, DONE_FINAL if self.nocount else DONE_COUNT, curcmd, max(rowcount, 0)))
        else:
            items.append(Done(done_tok, DONE_FINAL, 0xC6 if verb == "CREATE" else 0))

    # ---------------------------------------------------------- RPC

    def rpc_one(self, r, items):
        n = r.u16()
        if n == 0xFFFF:
            pid = r.u16()
            name = PROC_IDS.get(pid, "procid %d" % pid)
        else:
            name = r.ucs2(n)
        r.u16()  # option flags
        params = []
        while r.remaining() and r.peek() not in (0x80, 0xFF):
            pname = r.b_varchar()
            pstatus = r.u8()
            ti = parse_typeinfo(r)
            val = read_value(r, ti)
            params.append((pname, pstatus, ti, val))
        short = name.strip().lower().replace("[", "").replace("]", "").split(".")[-1]
        LOG.debug("spid %d: rpc %s (%d params)", self.spid, name, len(params))
        outs = {}
        status = 0
        status_error = False
        try:
            if short == "sp_executesql":
                status_error, outs = self.sp_executesql(params, items)
            elif short.startswith("xp_sqljdbc_xa_"):
                outs = self.xa_proc(short[len("xp_sqljdbc_xa_"):], params)
            else:
                raise SqlError(2812, "Could not find stored procedure '%s'." % name, 16, 62)
        except SqlError as e:
            LOG.info("spid %d: rpc %s error %d: %s", self.spid, name, e.number, e.message)
            items.append(tok_message(TOK_ERROR, e.number, e.state, e.cls, e.message, self.tdsver, short, 1))
            items.append(Done(TOK_DONEPROC, DONE_ERROR))
            return
        items.append(struct.pack("<Bi", TOK_RETURNSTATUS, status))
        for idx, (pname, pstatus, ti, val) in enumerate(params):
            if pstatus & 0x01:
                v = outs.get(idx, val)
                rti = reply_type_for(ti, v, self.tdsver)
                items.append(tok_returnvalue(idx, pname, rti, coerce_for(rti, v), self.tdsver))
        items.append(Done(TOK_DONEPROC, DONE_ERROR if status_error else DONE_FINAL))

    def sp_executesql(self, params, items):
        stmt, decl = None, ""
        rest = []
        for i, p in enumerate(params):
            pname = p[0].lower()
            if pname == "@stmt" or (i == 0 and not pname):
                stmt = p[3]
            elif pname == "@params" or (i == 1 and not pname):
                decl = p[3] or ""
            else:
                rest.append((i, p))
        if not isinstance(stmt, str):
            raise SqlError(214, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.", 16, 2)
        names = []
        for part in split_decl(decl):
            m = re.match(r"^\s*(@\w+)\s+(.*?)\s*$", part)
            if not m:
                raise SqlError(102, "Incorrect syntax near '%s'." % part.strip(), 15, 1)
            names.append(m.group(1).lower())
        values = {}
        pos = 0
        for idx, (pname, pstatus, ti, val) in rest:
            if pname:
                key = pname.lower()
            else:
                if pos >= len(names):
                    raise SqlError(8144, "Procedure or function has too many arguments specified.", 16, 2)
                key = names[pos]
            pos += 1
            values[key] = val
        for n in names:
            if n not in values:
                raise SqlError(8178, "The parameterized query '(%s)' expects the parameter '%s', which was not "
                                     "supplied." % (decl[:100], n), 16, 1)
        had_error = self.run_batch(stmt, items, TOK_DONEINPROC, values)
        return had_error, {}

    # ---------------------------------------------------------- XA procedures

    def xa_proc(self, op, params):
        """master..xp_sqljdbc_xa_<op>: returns {param index: output value}."""
        if op.endswith("_ex") and op != "init_ex":
            op = op[:-3]
        vals = [p[3] for p in params]

        def arg(i, default=None):
            return vals[i] if i < len(vals) else default

        def xid_at(gi, bi, fi):
            g, b, f = arg(gi), arg(bi), arg(fi)
            if b is None:
                b = b""  # db-lib sends an empty varbinary as NULL
            if not isinstance(g, (bytes, bytearray)) or not isinstance(b, (bytes, bytearray)) or f is None:
                return None
            if len(g) < 1 or len(g) > 64 or len(b) > 64:
                return None
            return (int(f), bytes(g), bytes(b))

        res = {}
        try:
            if op == "init_ex":
                st, msg = XA_OK, ""
                res[2] = "XACTDS 1.0"
            elif op == "start":
                xid = xid_at(2, 3, 7)
                st, msg, cookie = self.xa_start(xid, int(arg(4) or 0)) if xid else (XAER_INVAL, "bad XID", b"")
                res[5] = cookie
                res[8] = 0x0A000000 if params and len(params) > 8 and params[8][2].ttype in (
                    T_INTN, T_INT4) else "XACTDS 1.0"
                res[15] = (cookie + bytes(16))[:16]
            elif op == "end":
                xid = xid_at(2, 3, 5)
                st, msg = self.xa_end(xid, int(arg(4) or 0)) if xid else (XAER_INVAL, "bad XID")
                res[6] = bytes(16)
            elif op == "prepare":
                xid = xid_at(2, 3, 4)
                st, msg = self.xa_prepare(xid) if xid else (XAER_INVAL, "bad XID")
            elif op == "commit":
                xid = xid_at(2, 3, 5)
                st, msg = self.xa_commit(xid, int(arg(4) or 0)) if xid else (XAER_INVAL, "bad XID")
            elif op == "rollback":
                xid = xid_at(2, 3, 4)
                st, msg = self.xa_rollback(xid) if xid else (XAER_INVAL, "bad XID")
            elif op == "forget":
                xid = xid_at(2, 3, 4)
                st, msg = self.xa_forget(xid) if xid else (XAER_INVAL, "bad XID")
            elif op == "recover":
                st, msg, data = self.xa_recover(int(arg(2) or 0))
                res[3] = data
            else:
                raise SqlError(2812, "Could not find stored procedure 'master..xp_sqljdbc_xa_%s'." % op, 16, 62)
        except psycopg2.Error as e:
            st, msg = XAER_RMFAIL, "PostgreSQL: %s" % str(e).strip().splitlines()[0] if str(e).strip() else "error"
        res[0] = st
        res[1] = msg if st != XA_OK else ""
        LOG.info("spid %d: xa_%s -> %d %s", self.spid, op, st, msg)
        return res

    def find_branch(self, xid):
        with self.server.lock:
            return self.server.branches.get(xid)

    def drop_branch(self, b, rollback):
        with self.server.lock:
            self.server.branches.pop(b.xid, None)
            self.server.cookies.pop(b.cookie, None)
        if b.bound is not None:
            b.bound.bound = None
            b.bound = None
        if rollback:
            try:
                b.conn.cursor().execute("ROLLBACK")
            except psycopg2.Error:
                pass
        try:
            b.conn.close()
        except Exception:
            pass

    def xa_start(self, xid, flags):
        b = self.find_branch(xid)
        if b is not None:
            if flags & (TMJOIN | TMRESUME):
                return XA_OK, "", b.cookie
            return XAER_DUPID, "XID already active", b""
        if flags & (TMJOIN | TMRESUME):
            return XAER_NOTA, "unknown XID", b""
        gid = xid_gid(*xid)
        if gid in self.server.prepared_gids():
            return XAER_DUPID, "XID already prepared", b""
        conn = self.server.pg_connect(self.db)
        conn.cursor().execute("BEGIN")
        cookie = b"XACTDS" + os.urandom(10)
        b = Branch(xid, self.db, conn, cookie)
        b.owner = self
        with self.server.lock:
            if xid in self.server.branches:
                conn.close()
                return XAER_DUPID, "XID already active", b""
            self.server.branches[xid] = b
            self.server.cookies[cookie] = b
        return XA_OK, "", cookie

    def xa_end(self, xid, flags):
        b = self.find_branch(xid)
        if b is None:
            return XAER_NOTA, "unknown XID"
        if b.bound is not None:
            b.bound.bound = None
            b.bound = None
        if flags & TMFAIL:
            b.rollback_only = True
        return XA_OK, ""

    def xa_prepare(self, xid):
        b = self.find_branch(xid)
        if b is None:
            return XAER_NOTA, "unknown XID (not active on this server)"
        with b.lock:
            if b.rollback_only:
                self.drop_branch(b, rollback=True)
                return XA_RBROLLBACK, "branch was marked rollback-only"
            try:
                b.conn.cursor().execute("PREPARE TRANSACTION %s", (b.gid,))
            except psycopg2.Error as e:
                self.drop_branch(b, rollback=True)
                return XA_RBROLLBACK, "prepare failed: %s" % str(e).strip().splitlines()[0]
            b.owner = None
            self.drop_branch(b, rollback=False)
        return XA_OK, ""

    def finish_prepared(self, xid, verb):
        gid = xid_gid(*xid)
        gids = self.server.prepared_gids()
        if gid not in gids:
            return XAER_NOTA, "unknown XID"
        conn = self.server.pg_connect(gids[gid])
        try:
            conn.cursor().execute("%s PREPARED %%s" % verb, (gid,))
        except psycopg2.Error as e:
            if getattr(e, "pgcode", None) == "42704":
                return XAER_NOTA, "unknown XID"
            return XAER_RMERR, "%s PREPARED failed: %s" % (verb, str(e).strip().splitlines()[0])
        finally:
            conn.close()
        return XA_OK, ""

    def xa_commit(self, xid, flags):
        b = self.find_branch(xid)
        if b is not None:
            if not flags & TMONEPHASE:
                return XAER_PROTO, "branch is not prepared (commit without TMONEPHASE)"
            with b.lock:
                if b.rollback_only:
                    self.drop_branch(b, rollback=True)
                    return XA_RBROLLBACK, "branch was marked rollback-only"
                try:
                    b.conn.cursor().execute("COMMIT")
                except psycopg2.Error as e:
                    self.drop_branch(b, rollback=True)
                    return XA_RBROLLBACK, "commit failed: %s" % str(e).strip().splitlines()[0]
                self.drop_branch(b, rollback=False)
            return XA_OK, ""
        return self.finish_prepared(xid, "COMMIT")

    def xa_rollback(self, xid):
        b = self.find_branch(xid)
        if b is not None:
            with b.lock:
                self.drop_branch(b, rollback=True)
            return XA_OK, ""
        return self.finish_prepared(xid, "ROLLBACK")

    def xa_forget(self, xid):
        if self.find_branch(xid) is not None:
            return XAER_PROTO, "branch is active"
        if xid_gid(*xid) in self.server.prepared_gids():
            return XAER_PROTO, "branch is prepared, not heuristically completed"
        return XAER_NOTA, "unknown XID"

    def xa_recover(self, flags):
        if not flags & TMSTARTRSCAN and self.scan_open:
            if flags & TMENDRSCAN:
                self.scan_open = False
            return XA_OK, "", b""
        self.scan_open = not flags & TMENDRSCAN
        data = bytearray()
        for gid in self.server.prepared_gids():
            m = RX_GID.match(gid)
            if not m:
                continue
            g, b = bytes.fromhex(m.group(2)), bytes.fromhex(m.group(3))
            data += struct.pack("<iBB", int(m.group(1)), len(g), len(b)) + g + b
        return XA_OK, "", bytes(data)

    # ---------------------------------------------------------- transaction manager requests

    def tm_request(self, r, items):
        kind = r.u16()
        if kind == 0:  # TM_GET_DTC_ADDRESS
            if r.remaining() >= 2:
                r.take(r.u16())
            cols = [("", TypeInfo(T_BIGVARBIN, 8000))]
            items.append(tok_colmetadata(cols, self.tdsver))
            items.append(tok_row(cols, [b""]))
            items.append(Done(TOK_DONE, DONE_COUNT, 0xC1, 1))
        elif kind == 1:  # TM_PROPAGATE_XACT
            cookie = r.take(r.u16()) if r.remaining() >= 2 else b""
            if not cookie:
                if self.bound is not None:
                    self.bound.bound = None
                    self.bound = None
                items.append(Done(TOK_DONE, DONE_FINAL))
                return
            with self.server.lock:
                b = self.server.cookies.get(bytes(cookie))
            if b is None or (b.bound is not None and b.bound is not self) or self.trancount > 0:
                why = "unknown transaction cookie" if b is None else "cannot enlist: session busy"
                items.append(tok_message(TOK_ERROR, 8525, 1, 16, "Distributed transaction enlistment failed (%s)." %
                                         why, self.tdsver))
                items.append(Done(TOK_DONE, DONE_ERROR))
                return
            b.bound = self
            self.bound = b
            items.append(tok_envchange(ENV_ENLISTDTC, self.server.new_descriptor(), b""))
            items.append(Done(TOK_DONE, DONE_FINAL))
        elif kind == 5:  # TM_BEGIN_XACT
            r.u8()
            r.b_varchar()
            self.tm_wrap(items, lambda: self.begin_tx(items))
        elif kind in (7, 8):  # TM_COMMIT_XACT / TM_ROLLBACK_XACT
            r.b_varchar()
            again = r.u8() & 0x01 if r.remaining() else 0

            def op():
                if self.trancount == 0:
                    raise SqlError(3902 if kind == 7 else 3903, "The %s TRANSACTION request has no corresponding "
                                   "BEGIN TRANSACTION." % ("COMMIT" if kind == 7 else "ROLLBACK"), 16, 1)
                self.trancount = 1
                (self.commit_tx if kind == 7 else self.rollback_tx)(items)
                if again:
                    self.begin_tx(items)

            self.tm_wrap(items, op)
        else:
            items.append(tok_message(TOK_ERROR, 50000, 1, 16, "stand-in: transaction manager request %d is not "
                                     "supported" % kind, self.tdsver))
            items.append(Done(TOK_DONE, DONE_ERROR))

    def tm_wrap(self, items, fn):
        try:
            fn()
            items.append(Done(TOK_DONE, DONE_FINAL))
        except SqlError as e:
            items.append(tok_message(TOK_ERROR, e.number, e.state, e.cls, e.message, self.tdsver))
            items.append(Done(TOK_DONE, DONE_ERROR))


def split_decl(decl):
    parts, depth, cur = [], 0, []
    for c in decl:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description="TDS 7.4 (SQL Server) stand-in backed by PostgreSQL; a test fixture.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1433)
    ap.add_argument("--pg", required=True, help="libpq DSN of the PostgreSQL store (its dbname is the admin db)")
    ap.add_argument("--user", default="sa")
    ap.add_argument("--password", default="Xac_test_1")
    ap.add_argument("--default-db", default="master", help="database of a login that names none")
    ap.add_argument("--log", help="log file (default: stderr)")
    ap.add_argument("--pid-file", help="written once the port listens")
    ap.add_argument("--debug", action="store_true", help="log every batch and RPC")
    args = ap.parse_args(argv)
    m = re.search(r"dbname=(\S+)", args.pg)
    args.admin_db = m.group(1) if m else "postgres"
    handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s tds[%(process)d] %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG if args.debug else logging.INFO)
    server = Server(args)

    def on_term(signum, frame):
        server.stopping = True
        LOG.info("signal %d: stopping", signum)
        try:
            server.listener.close()
        except Exception:
            pass
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        server.serve()
    except SystemExit:
        pass
    except OSError as e:
        LOG.error("cannot serve: %s", e)
        return 1
    finally:
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
