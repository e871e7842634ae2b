"""TLS on both sides: clients to pgturnout (tls_mode, the harness's
certificate for CN/SAN localhost) and pgturnout to the server (path sslmode
up to verify-full against the test CA)."""

import os
import subprocess

import psycopg2
import pytest

import pgwire


def tls_proxy(proxy_factory, pg, mode="require", **paths):
    return proxy_factory(settings={
        "tls_mode": mode,
        "tls_cert_file": os.path.join(pg.ca_dir, "proxy.crt"),
        "tls_key_file": os.path.join(pg.ca_dir, "proxy.key"),
    }, paths=paths or None)


def verify_full_dsn(proxy, pg, **kw):
    return proxy.dsn(host="localhost", hostaddr="127.0.0.1", sslmode="verify-full",
                     sslrootcert=pg.ca, **kw)


def test_client_tls_verify_full(proxy_factory, pg):
    proxy = tls_proxy(proxy_factory, pg)
    conn = psycopg2.connect(verify_full_dsn(proxy, pg))
    assert conn.info.ssl_in_use
    assert conn.info.ssl_attribute("protocol") in ("TLSv1.2", "TLSv1.3")
    with conn.cursor() as cur:
        cur.execute("SELECT repeat('z', 100000)")
        assert cur.fetchone()[0] == "z" * 100000
    conn.close()


@pytest.mark.proxy_only
def test_client_tls_required_refuses_plaintext(proxy_factory, pg):
    proxy = tls_proxy(proxy_factory, pg)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(proxy.dsn(sslmode="disable"))
    conn = psycopg2.connect(verify_full_dsn(proxy, pg))
    conn.close()


@pytest.mark.proxy_only
def test_client_tls_allow_serves_both(proxy_factory, pg):
    proxy = tls_proxy(proxy_factory, pg, mode="allow")
    plain = psycopg2.connect(proxy.dsn(sslmode="disable"))
    assert not plain.info.ssl_in_use
    secure = psycopg2.connect(verify_full_dsn(proxy, pg))
    assert secure.info.ssl_in_use
    plain.close()
    secure.close()


@pytest.mark.proxy_only
def test_client_tls_disabled_answers_N(proxy_factory):
    proxy = proxy_factory(settings={"tls_mode": "disable"})
    with proxy.wire() as c:
        c.send(pgwire.ssl_request())
        assert c.recv_bytes(1) == b"N"
        c.startup("app", "app", "app")
        assert c.query("SELECT 1") == [("1",)]


def test_client_tls_with_psql(proxy_factory, pg):
    proxy = tls_proxy(proxy_factory, pg)
    r = subprocess.run(["psql", "-X", "-At", "-c", "SELECT 'over tls'",
                        verify_full_dsn(proxy, pg)], capture_output=True, text=True,
                       env=proxy.env(), timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "over tls"


def server_ssl(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return cur.fetchone()[0]


@pytest.mark.proxy_only
@pytest.mark.parametrize("sslmode,expect", [("disable", False), ("prefer", True),
                                            ("require", True), ("verify-full", True)])
def test_server_side_sslmode(proxy_factory, pg, sslmode, expect):
    path = {"sslmode": sslmode}
    if sslmode == "verify-full":
        path["sslrootcert"] = pg.ca
    proxy = proxy_factory(paths={"old": path})
    conn = proxy.connect(user="scramuser")
    assert server_ssl(conn) is expect
    conn.close()


def test_server_side_verify_full_direct(pg):
    """The server's certificate verifies with the test CA (the recipe the
    proxy tests rely on)."""
    conn = psycopg2.connect(pg.dsn(host="localhost", hostaddr="127.0.0.1",
                                   sslmode="verify-full", sslrootcert=pg.ca))
    assert server_ssl(conn) is True
    conn.close()


def make_other_ca(tmp_path):
    """A CA certificate that did not sign the server's."""
    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=other CA", "-keyout", str(tmp_path / "other-ca.key"),
                    "-out", str(other_ca)], check=True, capture_output=True)
    return other_ca


@pytest.mark.proxy_only
def test_server_side_verify_full_wrong_ca_fails(proxy_factory, tmp_path):
    other_ca = make_other_ca(tmp_path)
    proxy = proxy_factory(paths={"old": {"sslmode": "verify-full", "sslrootcert": str(other_ca)}})
    with proxy.wire() as c:
        with pytest.raises((pgwire.WireError, pgwire.Closed)) as exc:
            c.startup("app", "app", "app")
        if isinstance(exc.value, pgwire.WireError):
            assert exc.value.sqlstate.startswith("08"), exc.value.fields
    assert proxy.alive()


@pytest.mark.proxy_only
def test_server_side_verify_failure_says_which_check_failed(proxy_factory, tmp_path):
    """A certificate that does not verify is reported with OpenSSL's reason,
    not as an unknown TLS error."""
    other_ca = make_other_ca(tmp_path)
    proxy = proxy_factory(paths={"old": {"sslmode": "verify-full", "sslrootcert": str(other_ca)}})
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
    msg = exc.value.message
    assert "certificate verify failed: " in msg, msg
    assert "unknown TLS error" not in msg
    assert "issuer" in msg or "self-signed" in msg or "self signed" in msg, msg


@pytest.mark.proxy_only
def test_server_side_hostname_mismatch_is_named(proxy_factory, pg):
    """verify-full to a name the certificate does not carry (it has
    localhost and 127.0.0.1) says so."""
    import socket
    name = socket.gethostname()
    try:
        addr = socket.gethostbyname(name)
    except OSError:
        addr = None
    if name == "localhost" or addr != "127.0.0.1":
        pytest.skip("no other host name for 127.0.0.1 here")
    proxy = proxy_factory(paths={"old": {"host": name, "sslmode": "verify-full",
                                         "sslrootcert": pg.ca}})
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
    assert "certificate verify failed: hostname mismatch" in exc.value.message, \
        exc.value.message


# ---- client certificates, cert authentication, channel binding --------------

def client_cert(pg, tmp_path, cn, ca_dir=None):
    """A client certificate for CN signed by the test CA (or CA_DIR's
    ca.crt/ca.key); returns (cert, key) paths."""
    ca_dir = ca_dir or pg.ca_dir
    key, csr, crt = (str(tmp_path / ("%s.%s" % (cn, ext))) for ext in ("key", "csr", "crt"))
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % cn,
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(ca_dir, "ca.crt"),
                    "-CAkey", os.path.join(ca_dir, "ca.key"), "-CAcreateserial", "-days", "1",
                    "-out", crt], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return crt, key


def other_ca_dir(tmp_path):
    d = tmp_path / "other-ca"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=other CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt")],
                   check=True, capture_output=True)
    return str(d)


def cert_proxy(proxy_factory, pg, mode, auth_type="scram-sha-256", **paths):
    return proxy_factory(settings={
        "tls_mode": mode,
        "tls_cert_file": os.path.join(pg.ca_dir, "proxy.crt"),
        "tls_key_file": os.path.join(pg.ca_dir, "proxy.key"),
        "client_tls_ca_file": pg.ca,
        "auth_type": auth_type,
    }, paths=paths or None)


def login_error(dsn):
    with pytest.raises(psycopg2.OperationalError) as exc:
        psycopg2.connect(dsn).close()
    return str(exc.value)


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


@pytest.mark.proxy_only
def test_verify_full_client_certificate_and_channel_binding(proxy_factory, pg, tmp_path):
    """libpq with sslmode=verify-full, a client certificate and
    channel_binding=require connects through tls_mode = verify-full."""
    proxy = cert_proxy(proxy_factory, pg, "verify-full")
    crt, key = client_cert(pg, tmp_path, "app")
    conn = psycopg2.connect(verify_full_dsn(proxy, pg, sslcert=crt, sslkey=key,
                                            channel_binding="require"))
    assert one(conn, "SELECT 'bound'") == "bound"
    conn.close()
    # without a certificate, with another user's, or one of another CA: refused
    assert "certificate" in login_error(verify_full_dsn(proxy, pg, sslcert=str(tmp_path / "none"),
                                                        sslkey=str(tmp_path / "none")))
    crt_admin, key_admin = client_cert(pg, tmp_path, "admin")
    err = login_error(verify_full_dsn(proxy, pg, sslcert=crt_admin, sslkey=key_admin))
    assert "CN mismatch" in err, err
    crt_other, key_other = client_cert(pg, tmp_path, "app2", ca_dir=other_ca_dir(tmp_path))
    login_error(verify_full_dsn(proxy, pg, sslcert=crt_other, sslkey=key_other))
    assert proxy.alive()


@pytest.mark.proxy_only
def test_verify_ca_needs_a_certificate_of_the_ca_whatever_its_name(proxy_factory, pg, tmp_path):
    proxy = cert_proxy(proxy_factory, pg, "verify-ca")
    crt, key = client_cert(pg, tmp_path, "someone-else")
    conn = psycopg2.connect(verify_full_dsn(proxy, pg, sslcert=crt, sslkey=key))
    assert one(conn, "SELECT current_user") == "app"
    conn.close()
    login_error(verify_full_dsn(proxy, pg, sslcert=str(tmp_path / "none"),
                                sslkey=str(tmp_path / "none")))
    crt_other, key_other = client_cert(pg, tmp_path, "app", ca_dir=other_ca_dir(tmp_path))
    login_error(verify_full_dsn(proxy, pg, sslcert=crt_other, sslkey=key_other))


@pytest.mark.proxy_only
def test_auth_type_cert_logs_in_the_certificates_user_without_a_password(proxy_factory, pg, tmp_path):
    # the server side still needs a secret: the path gives app's password
    proxy = cert_proxy(proxy_factory, pg, "require", auth_type="cert",
                       old={"user": "app", "password": "app"})
    crt, key = client_cert(pg, tmp_path, "app")
    conn = psycopg2.connect(verify_full_dsn(proxy, pg, sslcert=crt, sslkey=key, password=""))
    assert one(conn, "SELECT current_user") == "app"
    conn.close()
    err = login_error(verify_full_dsn(proxy, pg, sslcert=str(tmp_path / "none"),
                                      sslkey=str(tmp_path / "none")))
    assert "requires a valid client certificate" in err, err
    crt_admin, key_admin = client_cert(pg, tmp_path, "admin")
    err = login_error(verify_full_dsn(proxy, pg, sslcert=crt_admin, sslkey=key_admin))
    assert "certificate authentication failed" in err and "CN mismatch" in err, err


@pytest.mark.proxy_only
def test_scram_plus_is_offered_on_tls_only(proxy_factory, pg):
    proxy = tls_proxy(proxy_factory, pg, mode="allow")
    conn = psycopg2.connect(verify_full_dsn(proxy, pg, channel_binding="require"))
    assert one(conn, "SELECT 1") == 1
    conn.close()
    # a plain connection cannot bind: libpq refuses to go on
    err = login_error(proxy.dsn(sslmode="disable", channel_binding="require"))
    assert "channel binding" in err, err
    # channel_binding=disable on TLS still logs in with plain SCRAM
    conn = psycopg2.connect(verify_full_dsn(proxy, pg, channel_binding="disable"))
    conn.close()


@pytest.mark.proxy_only
def test_path_client_certificate_is_shown_to_the_server(proxy_factory, pg, tmp_path):
    """The test server logs certuser in by certificate only (hostssl … cert)."""
    crt, key = client_cert(pg, tmp_path, "certuser")
    proxy = proxy_factory(settings={"auth_type": "trust"},
                          paths={"old": {"user": "certuser", "sslmode": "require",
                                         "sslcert": crt, "sslkey": key}})
    conn = proxy.connect(user="app")
    assert one(conn, "SELECT current_user") == "certuser"
    conn.close()
    bare = proxy_factory(settings={"auth_type": "trust"},
                         paths={"old": {"user": "certuser", "sslmode": "require"}})
    with pytest.raises(psycopg2.OperationalError):
        bare.connect(user="app")
