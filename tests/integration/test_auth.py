"""Authentication: pgturnout to its clients (trust, md5, SCRAM-SHA-256 against
userlist entries written as plain passwords, md5 hashes and SCRAM
verifiers) and to the servers (trust, cleartext, md5, SCRAM-SHA-256)."""

import struct

import psycopg2
import pytest

import pgwire

# Client users; the proxy logs them in to the server as trustuser, so only
# the client side of authentication is under test.
CLIENT_USERS = {
    "cl_plain": "pw-plain",
    "cl_md5": "pw-md5",
    "cl_scram": "pw-scram",
}


def client_userlist():
    return {
        "cl_plain": CLIENT_USERS["cl_plain"],
        "cl_md5": pgwire.md5_secret("cl_md5", CLIENT_USERS["cl_md5"]),
        "cl_scram": pgwire.scram_verifier(CLIENT_USERS["cl_scram"]),
        "admin": "admin",
    }


def client_auth_proxy(proxy_factory, auth_type):
    return proxy_factory(settings={"auth_type": auth_type}, users=client_userlist(),
                         paths={"old": {"user": "trustuser"}})


# (auth_type, user, expected first authentication request code)
#   0 = AuthenticationOk at once, 5 = MD5Password, 10 = SASL
CLIENT_CASES = [
    ("trust", "cl_plain", 0),
    ("trust", "cl_md5", 0),
    ("trust", "cl_scram", 0),
    ("md5", "cl_plain", 5),
    ("md5", "cl_md5", 5),
    ("scram-sha-256", "cl_plain", 10),
    ("scram-sha-256", "cl_scram", 10),
]


@pytest.mark.proxy_only
@pytest.mark.parametrize("auth_type,user,code", CLIENT_CASES)
def test_client_auth_methods_against_userlist_forms(proxy_factory, auth_type, user, code):
    proxy = client_auth_proxy(proxy_factory, auth_type)
    c = proxy.wire()
    c.startup(user, "app", CLIENT_USERS[user])
    assert c.auth_codes[0] == code
    assert c.auth_codes[-1] == 0
    assert c.query("SELECT current_user") == [("trustuser",)]
    c.terminate()
    # and libpq agrees
    conn = psycopg2.connect(proxy.dsn(user=user, password=CLIENT_USERS[user]))
    conn.close()


@pytest.mark.proxy_only
@pytest.mark.parametrize("auth_type,user", [("md5", "cl_plain"), ("md5", "cl_md5"),
                                            ("scram-sha-256", "cl_plain"),
                                            ("scram-sha-256", "cl_scram")])
def test_client_wrong_password_is_28P01(proxy_factory, auth_type, user):
    proxy = client_auth_proxy(proxy_factory, auth_type)
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup(user, "app", "wrong-password")
        assert exc.value.sqlstate == "28P01"
        assert exc.value.fields.get("S") == "FATAL"
    # the proxy keeps serving
    c = proxy.wire()
    c.startup(user, "app", CLIENT_USERS[user])
    c.terminate()


@pytest.mark.proxy_only
@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_client_unknown_user_is_rejected(proxy_factory, auth_type):
    proxy = client_auth_proxy(proxy_factory, auth_type)
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("nobody_here", "app", "whatever")
        assert exc.value.sqlstate in ("28P01", "28000")


def test_wrong_password_is_28P01(proxy):
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "not-the-password")
        assert exc.value.sqlstate == "28P01"
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(proxy.dsn(password="not-the-password"))
    conn = proxy.connect()
    conn.close()


def test_unknown_user_is_rejected(proxy):
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("no_such_role", "app", "x")
        assert exc.value.sqlstate in ("28P01", "28000")


@pytest.mark.parametrize("user", ["trustuser", "pwuser", "md5user", "scramuser", "app"])
def test_backend_auth_methods(proxy, user):
    """The server asks trust / password / md5 / scram-sha-256 (pg_hba of the
    test server); the proxy answers with the password from auth_file."""
    conn = proxy.connect(user=user)
    with conn.cursor() as cur:
        cur.execute("SELECT current_user, 40 + 2")
        assert cur.fetchone() == (user, 42)
    conn.close()


@pytest.mark.proxy_only
def test_backend_auth_with_path_credentials(proxy_factory):
    """[path] user/password override the client's own."""
    proxy = proxy_factory(paths={"old": {"user": "scramuser", "password": "scrampass"}})
    conn = proxy.connect(user="app")
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ("scramuser",)
    conn.close()


@pytest.mark.proxy_only
def test_backend_wrong_password_fails_cleanly(proxy_factory):
    """The client passed the proxy's check, the server refuses the path's
    password: the client gets an error, the proxy stays up."""
    proxy = proxy_factory(paths={"old": {"user": "scramuser", "password": "wrong"}})
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("app", "app", "app")
        assert exc.value.sqlstate in ("28P01", "08006")
    assert proxy.alive()


# -- framing of the client's SASL messages ------------------------------------

def sasl_initial(mech, length, data):
    """A SASLInitialResponse whose length word is LENGTH (-1 for none),
    whatever DATA really holds."""
    return pgwire.message(b"p", mech + b"\0" + struct.pack("!i", length) + data)


def start_sasl(proxy, user="app"):
    c = proxy.wire()
    c.send(pgwire.startup_packet({"user": user, "database": "app"}))
    kind, body = c.recv_message()
    assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 10, (kind, body)
    return c


@pytest.mark.proxy_only
def test_sasl_initial_response_without_data_gets_empty_continue(proxy):
    """Length -1 means no initial response: an empty SASLContinue asks for
    the client-first-message, which then comes as a SASLResponse (as
    PostgreSQL does)."""
    for user in ("x", "app"):    # unknown user: the mock exchange; known: a real one
        c = start_sasl(proxy, user)
        c.send(sasl_initial(b"SCRAM-SHA-256", -1, b""))
        assert c.recv_message() == (b"R", struct.pack("!I", 11))
        c.close()
    c = proxy.wire()
    c.sasl_empty_initial = True
    c.startup("app", "app", "app")
    assert c.query("SELECT 1") == [("1",)]
    c.terminate()


@pytest.mark.proxy_only
@pytest.mark.parametrize("length,data", [(-2, b"n,,n=,r=abc"), (100, b"n,,n=,r=abc"),
                                         (3, b"n,,n=,r=abc"), (-1, b"n,,n=,r=abc"),
                                         (0x7fffffff, b"")])
def test_sasl_initial_response_with_inconsistent_length_is_08P01(proxy, length, data):
    c = start_sasl(proxy)
    c.send(sasl_initial(b"SCRAM-SHA-256", length, data))
    fields = pgwire.first_error(c.read_until_closed())
    c.close()
    assert fields is not None and fields.get("C") == "08P01", fields
    c = proxy.wire()
    c.startup("app", "app", "app")
    c.terminate()


@pytest.mark.proxy_only
@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_client_with_empty_password_in_userlist_is_refused(proxy_factory, auth_type):
    """An empty secret in auth_file refuses the login (as PgBouncer), even
    to a client that sends an empty password; the log says why."""
    users = client_userlist()
    users["cl_empty"] = ""
    proxy = proxy_factory(settings={"auth_type": auth_type}, users=users,
                          paths={"old": {"user": "trustuser"}})
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("cl_empty", "app", "")
        assert exc.value.sqlstate == "28P01"
    proxy.wait_log(r'user "cl_empty" has an empty password')
    c = proxy.wire()
    c.startup("cl_plain", "app", CLIENT_USERS["cl_plain"])
    c.terminate()


@pytest.mark.proxy_only
@pytest.mark.parametrize("mech,first,sqlstate", [
    (b"SCRAM-SHA-1", b"n,,n=,r=abc", "08P01"),          # invalid mechanism
    (b"SCRAM-SHA-256", b"n,,m=ext,n=,r=abc", "0A000"),  # mandatory extension
    (b"SCRAM-SHA-256", b"n,a=other,n=,r=abc", "0A000"),  # authorization identity
])
def test_sasl_refusals_have_postgresql_sqlstates(proxy, mech, first, sqlstate):
    c = start_sasl(proxy)
    c.send(sasl_initial(mech, len(first), first))
    fields = pgwire.first_error(c.read_until_closed())
    c.close()
    assert fields is not None and fields.get("C") == sqlstate, fields
    assert fields.get("S") == "FATAL", fields


def server_first_attrs(proxy, user):
    """Starts a SCRAM exchange as USER; returns the attributes of the
    server-first-message (r, s, i)."""
    c = start_sasl(proxy, user)
    first = b"n,,n=,r=clientnonce"
    c.send(sasl_initial(b"SCRAM-SHA-256", len(first), first))
    kind, body = c.recv_message()
    c.close()
    assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 11, (kind, body)
    return dict(a.split("=", 1) for a in body[4:].decode().split(","))


@pytest.mark.proxy_only
def test_scram_salts_do_not_tell_listed_users_from_unknown_ones(proxy_factory):
    """A plain password's verifier is made once at load, with a salt stable
    per user; an unknown user gets the same kind of salt, as stable, and the
    same iteration count. Nothing in the server-first-message tells them
    apart."""
    import base64
    proxy = client_auth_proxy(proxy_factory, "scram-sha-256")
    seen = {}
    for user in ("cl_plain", "nobody", "admin", "nobody_either"):
        a, b = server_first_attrs(proxy, user), server_first_attrs(proxy, user)
        assert a["s"] == b["s"], user          # stable across attempts
        assert a["r"] != b["r"], user          # the nonce is not
        assert a["i"] == "4096", user
        assert len(base64.b64decode(a["s"])) == 16, user
        seen[user] = a["s"]
    assert len(set(seen.values())) == len(seen)
    # and the plain password still logs in
    c = proxy.wire()
    c.startup("cl_plain", "app", CLIENT_USERS["cl_plain"])
    c.terminate()


@pytest.mark.proxy_only
def test_sasl_initial_response_in_the_startup_write_is_answered(proxy):
    """The client-first-message needs nothing from the server, so a client
    may send it in the same write as the startup packet: it is answered at
    once, as PostgreSQL does."""
    for user in ("app", "nobody"):
        c = proxy.wire()
        first = b"n,,n=,r=clientnonce"
        c.send(pgwire.startup_packet({"user": user, "database": "app"}) +
               sasl_initial(b"SCRAM-SHA-256", len(first), first))
        kind, body = c.recv_message()
        assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 10, (kind, body)
        kind, body = c.recv_message()
        assert kind == b"R" and struct.unpack("!I", body[:4])[0] == 11, (kind, body)
        assert body[4:].startswith(b"r=clientnonce"), body
        c.close()


# ---- auth_query / auth_user ---------------------------------------------------

AQ_FUNC = """
CREATE OR REPLACE FUNCTION public.pgturnout_test_lookup(u text)
RETURNS TABLE (usename name, passwd text) LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog AS
$$ SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = u $$;
REVOKE ALL ON FUNCTION public.pgturnout_test_lookup(text) FROM PUBLIC;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aq_lookup') THEN
    CREATE ROLE aq_lookup LOGIN PASSWORD 'aq-lookup-pw';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aq_scram') THEN
    SET password_encryption = 'scram-sha-256';
    CREATE ROLE aq_scram LOGIN PASSWORD 'aq-scram-pw';
  END IF;
END $$;
GRANT EXECUTE ON FUNCTION public.pgturnout_test_lookup(text) TO aq_lookup;
"""


@pytest.fixture
def auth_query_db(pg):
    conn = pg.superuser("app")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(AQ_FUNC)
    conn.close()


def auth_query_proxy(proxy_factory, auth_type="scram-sha-256", ttl="60s", lookup_pw="aq-lookup-pw"):
    # auth_file knows only the lookup user (and the console's admin)
    return proxy_factory(settings={"auth_type": auth_type, "auth_user": "aq_lookup",
                                   "auth_query": "SELECT * FROM public.pgturnout_test_lookup($1)",
                                   "auth_cache_ttl": ttl},
                         users={"aq_lookup": lookup_pw, "admin": "admin"})


def lookups(proxy, user):
    return proxy.log().count('user "%s" is not in auth_file' % user)


@pytest.mark.proxy_only
def test_auth_query_logs_in_a_user_not_in_auth_file(proxy_factory, auth_query_db):
    proxy = auth_query_proxy(proxy_factory)
    for _ in range(3):
        conn = psycopg2.connect(proxy.dsn(user="aq_scram", password="aq-scram-pw"))
        with conn.cursor() as cur:
            # logged in to the server as itself, with the keys of its own proof
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == "aq_scram"
        conn.close()
    # the answer is kept auth_cache_ttl: one lookup for three logins
    assert lookups(proxy, "aq_scram") == 1
    with pytest.raises(psycopg2.OperationalError) as exc:
        psycopg2.connect(proxy.dsn(user="aq_scram", password="wrong")).close()
    assert "password authentication failed" in str(exc.value)
    # a user the server does not have fails like a wrong password
    with pytest.raises(psycopg2.OperationalError) as exc:
        psycopg2.connect(proxy.dsn(user="aq_nobody", password="x")).close()
    assert "password authentication failed" in str(exc.value)
    assert proxy.alive()


@pytest.mark.proxy_only
def test_auth_query_md5_secret_works_both_ways(proxy_factory, auth_query_db):
    """md5user's md5 hash from pg_shadow checks the client and logs in to
    the server (which asks md5 for it)."""
    proxy = auth_query_proxy(proxy_factory, auth_type="md5")
    conn = psycopg2.connect(proxy.dsn(user="md5user", password="md5pass"))
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == "md5user"
    conn.close()


@pytest.mark.proxy_only
def test_auth_query_without_cache_asks_every_time(proxy_factory, auth_query_db):
    proxy = auth_query_proxy(proxy_factory, ttl="0")
    for _ in range(2):
        psycopg2.connect(proxy.dsn(user="aq_scram", password="aq-scram-pw")).close()
    assert lookups(proxy, "aq_scram") == 2


@pytest.mark.proxy_only
def test_auth_query_failure_is_08006_and_others_go_on(proxy_factory, auth_query_db):
    proxy = auth_query_proxy(proxy_factory, lookup_pw="not-the-password")
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("aq_scram", "app", password="aq-scram-pw")
    assert exc.value.sqlstate == "08006"
    assert "auth_query" in exc.value.message
    # the failure is not kept, and the console still works
    with proxy.wire() as c:
        c.startup("admin", "pgturnout", password="admin")
    assert proxy.alive()


# ---- auth_type = hba ----------------------------------------------------------

HBA_RULES = """\
# TYPE  DATABASE   USER      ADDRESS        METHOD
local   all        all                      trust
host    app        cl_plain  127.0.0.1/32   trust
host    app        cl_md5    127.0.0.1/32   md5
host    app        cl_scram  127.0.0.0/8    scram-sha-256
host    pgturnout  admin     127.0.0.1/32   scram-sha-256
host    all        cl_plain  all            reject
"""


def hba_proxy(proxy_factory, tmp_path):
    hba = tmp_path / "hba.conf"
    hba.write_text(HBA_RULES)
    return proxy_factory(settings={"auth_type": "hba", "auth_hba_file": str(hba),
                                   "unix_socket_dir": str(tmp_path)},
                         users=client_userlist(), paths={"old": {"user": "trustuser"}})


@pytest.mark.proxy_only
@pytest.mark.parametrize("user,code", [("cl_plain", 0), ("cl_md5", 5), ("cl_scram", 10)])
def test_hba_picks_the_method_per_client(proxy_factory, tmp_path, user, code):
    proxy = hba_proxy(proxy_factory, tmp_path)
    c = proxy.wire()
    c.startup(user, "app", CLIENT_USERS[user])
    assert c.auth_codes[0] == code
    assert c.query("SELECT current_user") == [("trustuser",)]
    c.terminate()


@pytest.mark.proxy_only
def test_hba_rejects_and_refuses_what_no_rule_allows(proxy_factory, tmp_path):
    proxy = hba_proxy(proxy_factory, tmp_path)
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("cl_plain", "otherdb", "x")
    assert exc.value.sqlstate == "28000"
    assert exc.value.message == ('pg_hba.conf rejects connection for host "127.0.0.1", '
                                 'user "cl_plain", database "otherdb", no encryption')
    with proxy.wire() as c:
        with pytest.raises(pgwire.WireError) as exc:
            c.startup("cl_md5", "otherdb", CLIENT_USERS["cl_md5"])
    assert exc.value.sqlstate == "28000"
    assert exc.value.message.startswith('no pg_hba.conf entry for host "127.0.0.1", user "cl_md5"')
    # the console by its own rule; the unix socket by the local rule (trust)
    conn = psycopg2.connect(proxy.dsn(user="admin", dbname="pgturnout"))
    conn.close()
    conn = psycopg2.connect(host=str(tmp_path), port=proxy.port, user="cl_scram", dbname="app",
                            password="", sslmode="disable")
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
