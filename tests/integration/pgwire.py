"""Minimal PostgreSQL v3 protocol client over a raw socket, for tests.

libpq and psycopg2 do not expose the SQLSTATE of an error raised during
connection start-up, and they refuse to send malformed bytes; this module
does both. It knows startup, SSLRequest, authentication (cleartext, md5,
SCRAM-SHA-256), simple query, and reading ErrorResponse fields.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103


class WireError(Exception):
    """An ErrorResponse from the server; fields by their one-letter code."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s %s: %s" % (fields.get("S"), fields.get("C"), fields.get("M")))

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M", "")


class Closed(Exception):
    """The server closed the connection."""


def startup_packet(params, version=PROTOCOL_3_0):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def message(kind, body=b""):
    return kind + struct.pack("!I", len(body) + 4) + body


def parse_data_row(body):
    """A DataRow's values: a tuple of str (text format) or None."""
    (n,) = struct.unpack("!H", body[:2])
    pos, row = 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", body[pos:pos + 4])
        pos += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(body[pos:pos + ln].decode())
            pos += ln
    return tuple(row)


def parse_error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


class Conn:
    """One raw connection. Use recv_message() / send() directly for bad input,
    or login() + query() for the happy path."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.backend_pid = None
        self.secret = None
        self.params = {}
        self.sasl_empty_initial = False  # SASLInitialResponse without data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("connection closed by server")
            self.buf += chunk

    def recv_bytes(self, n):
        self._fill(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_message(self):
        """Returns (type byte, body)."""
        self._fill(5)
        kind = self.buf[:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 100 * 1024 * 1024:
            raise ValueError("bad message length %d" % length)
        self._fill(1 + length)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return kind, body

    def read_until_closed(self, limit=1 << 20):
        """Reads until EOF (or error); returns everything received."""
        data = self.buf
        self.buf = b""
        while len(data) < limit:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            data += chunk
        return data

    def startup(self, user, database, password=None, **params):
        """Sends StartupMessage and completes authentication. Returns when
        ReadyForQuery arrives; raises WireError on an ErrorResponse."""
        p = {"user": user, "database": database}
        p.update(params)
        self.send(startup_packet(p))
        self.auth_codes = []
        while True:
            kind, body = self.recv_message()
            if kind == b"E":
                raise WireError(parse_error_fields(body))
            if kind == b"R":
                (code,) = struct.unpack("!I", body[:4])
                self.auth_codes.append(code)
                if code == 0:
                    continue
                if code == 3:
                    self.send(message(b"p", password.encode() + b"\0"))
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(message(b"p", b"md5" + outer.encode() + b"\0"))
                elif code == 10:
                    self._scram(password, body[4:])
                else:
                    raise ValueError("unsupported auth request %d" % code)
            elif kind == b"K":
                self.backend_pid, self.secret = struct.unpack("!II", body[:8])
            elif kind == b"S":
                k, v = body.split(b"\0")[:2]
                self.params[k.decode()] = v.decode()
            elif kind == b"Z":
                return
            # NoticeResponse and others: ignore

    def _scram(self, password, mechs):
        if b"SCRAM-SHA-256" not in mechs.split(b"\0"):
            raise ValueError("server offers no SCRAM-SHA-256: %r" % mechs)
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=,r=" + nonce
        first = ("n,," + first_bare).encode()
        if self.sasl_empty_initial:
            # no initial response (length -1): the server asks for it with an
            # empty SASLContinue, and the client-first comes as a SASLResponse
            self.send(message(b"p", b"SCRAM-SHA-256\0\xff\xff\xff\xff"))
            kind, body = self.recv_message()
            if kind == b"E":
                raise WireError(parse_error_fields(body))
            if (kind, body) != (b"R", struct.pack("!I", 11)):
                raise ValueError("expected an empty SASLContinue, got %r %r" % (kind, body))
            self.send(message(b"p", first))
        else:
            self.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        kind, body = self.recv_message()
        if kind == b"E":
            raise WireError(parse_error_fields(body))
        server_first = body[4:].decode()
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = "c=biws,r=" + attrs["r"]
        auth_msg = ",".join([first_bare, server_first, final_bare]).encode()
        sig = hmac.new(stored_key, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        final = final_bare + ",p=" + base64.b64encode(proof).decode()
        self.send(message(b"p", final.encode()))
        kind, body = self.recv_message()
        if kind == b"E":
            raise WireError(parse_error_fields(body))

    def query(self, sql):
        """Simple query; returns list of rows (tuples of str/None) of the
        last result; raises WireError on error (after ReadyForQuery)."""
        self.send(message(b"Q", sql.encode() + b"\0"))
        rows, err = [], None
        while True:
            kind, body = self.recv_message()
            if kind == b"T":
                rows = []
            elif kind == b"D":
                rows.append(parse_data_row(body))
            elif kind == b"E":
                err = WireError(parse_error_fields(body))
            elif kind == b"Z":
                if err:
                    raise err
                return rows

    def terminate(self):
        try:
            self.send(message(b"X"))
        except OSError:
            pass
        self.close()


def first_error(data):
    """Fields of the first ErrorResponse in a raw byte stream, or None."""
    pos = 0
    while pos + 5 <= len(data):
        kind = data[pos:pos + 1]
        (length,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if length < 4:
            return None
        body = data[pos + 5:pos + 1 + length]
        if kind == b"E":
            return parse_error_fields(body)
        pos += 1 + length
    return None


def cancel_request(host, port, pid, secret):
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(struct.pack("!IIII", 16, 80877102, pid, secret))
        s.recv(1)
    finally:
        s.close()


def scram_verifier(password, iterations=4096, salt=None):
    """A SCRAM-SHA-256 verifier as PostgreSQL stores it (and userlist.txt accepts)."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


# ---- extended-protocol messages, and reading their answers ----------------

def msg_parse(name, sql):
    return message(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def msg_bind(stmt, params, portal=""):
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!HH", 0, len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            v = str(p).encode()
            body += struct.pack("!I", len(v)) + v
    return message(b"B", body + struct.pack("!H", 0))


def msg_execute(portal=""):
    return message(b"E", portal.encode() + b"\0" + struct.pack("!I", 0))


def msg_sync():
    return message(b"S")


def read_results(conn, syncs):
    """Reads answers up to SYNCS ReadyForQuery; returns a list with, per
    request, (command tags, error sqlstate or None, transaction status)."""
    out, tags, err = [], [], None
    while len(out) < syncs:
        kind, body = conn.recv_message()
        if kind == b"C":
            tags.append(body.rstrip(b"\0").decode())
        elif kind == b"E":
            err = parse_error_fields(body)
        elif kind == b"Z":
            out.append((tags, err, body.decode()))
            tags, err = [], None
    return out
