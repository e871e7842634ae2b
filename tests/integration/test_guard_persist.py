"""A tripped guard survives a restart and holds the fleet (SPEC §12, §13).

The guard is shadow_read_mismatch_rate on test_shadow_read's schema with
its deliberately wrong rule: reads of name differ on new, so a few rounds of
reads trip it, and the canary is rolled back.

Covered: one instance SIGKILLed after the trip starts tripped
(journal_dir/guard_state.json): SHOW GUARDS, /metrics, raising the canary
refused (console and PUT /flags) until RESET GUARD, and a reset survives the
next restart too. A fleet of two on one flag store: the trip of one instance
is written to the store; the other shows it tripped ("tripped on instance
i0") and refuses to raise the canary; the tripping instance, SIGKILLed and
restarted, is still tripped; RESET GUARD on the other instance reaches both,
and the canary can be raised again anywhere.
"""

import json
import os
import re
import signal

import psycopg2
import pytest

from conftest import free_port
from test_flag_restore import restart
from test_fleet import fleet_dsn, start_fleet, store_db  # noqa: F401 (store_db is a fixture)
from test_http import call
from test_shadow_read import NOT_READING_NAME, READING_NAME, WRONG, Layout, run_all
from twopaths import Admin as BaseAdmin, created, wait_for

pytestmark = pytest.mark.proxy_only

GUARD = "shadow_read_mismatch_rate = 10% rollback\nwindow = 10s\nmin_sample = 20\n"
TOKEN = "guard-persist-token"


@pytest.fixture
def layout(pg):
    yield from created(Layout(pg))


class Admin(BaseAdmin):
    def guard(self):
        return {r["guard"]: r for r in self.run("SHOW GUARDS")}["shadow_read_mismatch_rate"]

    def flag(self, name):
        return {r["name"]: r["value"] for r in self.run("SHOW FLAGS")}[name]

    def error(self, command):
        with pytest.raises(psycopg2.Error) as ei:
            self.run(command)
        return str(ei.value)


def extra(salt="persist"):
    return ("\n[migration]\nold = old\nnew = new\nsalt = %s\n"
            "\n[rewrite]\ntable.users = users_v2\n%s\n"
            "\n[flags]\nshadow_reads = 100\ncanary_percent = 50\n"
            "\n[guard]\n%s\n" % (salt, WRONG, GUARD))


def trip(p):
    """Reads on P until its guard trips; returns SHOW GUARDS' row."""
    conns = [p.connect(application_name="reader%d" % i) for i in range(4)]
    admin = Admin(p)
    try:
        for _ in range(10):
            for c in conns:
                run_all(c, READING_NAME[:1] + NOT_READING_NAME[:1])
        return wait_for(lambda: (lambda g: g if g["state"] == "tripped" else None)(admin.guard()),
                        "the guard to trip", 10)
    finally:
        for c in conns:
            c.close()
        admin.close()


def put_canary(p, value):
    return call(p, "PUT", "/flags", {"canary_percent": value}, token=TOKEN)


def test_a_trip_survives_sigkill_and_holds_until_reset(proxy_factory, layout, tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    port = free_port()
    p = proxy_factory(settings={"http_listen": "127.0.0.1:%d" % port,
                                "http_token_file": str(token)},
                      paths=layout.paths, extra=extra())
    p.http = "http://127.0.0.1:%d" % port
    g = trip(p)
    tripped_by = g["tripped_by"]
    admin = Admin(p)
    wait_for(lambda: admin.flag("canary_percent") == "0", "the rollback", 20)
    admin.close()
    state = os.path.join(p.dir, "journal", "guard_state.json")
    saved = json.load(open(state))["guards"]["shadow_read_mismatch_rate"]
    assert saved["tripped"] and saved["hold"] and saved["figures"] == tripped_by, saved

    restart(p, signal.SIGKILL)
    assert "guard shadow_read_mismatch_rate is tripped since" in p.log()
    admin = Admin(p)
    try:
        g = admin.guard()
        assert g["state"] == "tripped" and g["tripped_by"] == tripped_by, g
        assert admin.flag("canary_percent") == "0"
        err = admin.error("SET canary_percent = 10 FORCE")
        assert "guard shadow_read_mismatch_rate rolled the canary back" in err, err
        assert "RESET GUARD shadow_read_mismatch_rate" in err
        status, _, body = put_canary(p, 10)
        assert status == 400 and "RESET GUARD" in body, (status, body)
        status, _, text = call(p, "GET", "/metrics")
        assert 'pgturnout_guard_tripped{guard="shadow_read_mismatch_rate"} 1' in text
        # an operator re-arms it; the reset is kept too
        admin.run("RESET GUARD shadow_read_mismatch_rate")
        admin.close()
        restart(p, signal.SIGKILL)
        admin = Admin(p)
        assert admin.guard()["state"] != "tripped"
        admin.run("SET canary_percent = 10")
        assert admin.flag("canary_percent") == "10"
    finally:
        admin.close()


def test_a_trip_holds_the_fleet_across_a_restart(proxy_factory, layout, tmp_path, pg,
                                                 store_db):  # noqa: F811
    ps = start_fleet(proxy_factory, tmp_path, fleet_dsn(pg.host, pg.port, store_db), n=2,
                     paths=layout.paths, extra=extra())
    a, b = ps
    g = trip(a)
    tripped_by = g["tripped_by"]
    adm_b = Admin(b)
    try:
        # the other instance holds too, saying where it tripped
        gb = wait_for(lambda: (lambda g: g if g["state"] == "tripped" else None)(adm_b.guard()),
                      "the trip on the other instance", 20)
        assert gb["tripped_by"] == tripped_by, gb
        assert gb["action_taken"].startswith("tripped on instance i0"), gb
        wait_for(lambda: adm_b.flag("canary_percent") == "0", "the rollback on i1", 20)
        err = adm_b.error("SET canary_percent = 20")
        assert "on instance i0" in err and "RESET GUARD shadow_read_mismatch_rate" in err, err
        rows = pg.sql("SELECT name, new_value, instance FROM pgturnout.flag_changes "
                      "WHERE name LIKE 'guard.%' ORDER BY epoch", dbname=store_db)
        assert len(rows) == 1 and rows[0][0] == "guard.shadow_read_mismatch_rate", rows
        assert rows[0][1].startswith("tripped ") and rows[0][2] == "i0", rows

        # the tripping instance killed and restarted: still tripped, still refusing
        restart(a, signal.SIGKILL)
        adm_a = Admin(a)
        try:
            assert adm_a.guard()["state"] == "tripped"
            assert "RESET GUARD" in adm_a.error("SET canary_percent = 20")
            # a reset on the other instance re-arms the whole fleet
            adm_b.run("RESET GUARD shadow_read_mismatch_rate")
            wait_for(lambda: adm_a.guard()["state"] != "tripped", "the reset on i0", 20)
            assert "guard shadow_read_mismatch_rate reset in the fleet" in a.log()
            adm_a.run("SET canary_percent = 20")
            wait_for(lambda: adm_b.flag("canary_percent") == "20", "canary 20 on i1", 20)
        finally:
            adm_a.close()
        rows = pg.sql("SELECT new_value FROM pgturnout.flag_changes "
                      "WHERE name LIKE 'guard.%' ORDER BY epoch", dbname=store_db)
        assert [r[0].split()[0] for r in rows] == ["tripped", "reset"], rows
        # and a restart of the reset instance does not bring the trip back
        restart(a, signal.SIGKILL)
        adm_a = Admin(a)
        try:
            wait_for(lambda: re.search(r"fleet: flag store reached", a.log()), "the store", 20)
            assert adm_a.guard()["state"] != "tripped"
        finally:
            adm_a.close()
    finally:
        adm_b.close()
