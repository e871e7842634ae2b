"""Runtime flags survive a restart: the flags in force at stop come back
from the durable history (SIGTERM and SIGKILL alike); a flag changed in the
config file while the proxy was stopped takes the file's value; and
--reset-flags starts from the file on purpose. The log says where each
value came from."""

import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import pgt_bin, raise_nofile
from test_admin import flags, psql

pytestmark = pytest.mark.proxy_only


def restart(p, sig=signal.SIGTERM, args=()):
    """Stops P with SIG and starts the same binary again on the same config,
    port and journal_dir (the fixture stops the new process at teardown)."""
    p.stop(sig)
    with open(p.log_path, "a") as logf:
        p.proc = subprocess.Popen([pgt_bin(), "-c", p.config_path, "-v"] + list(args),
                                  stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=p.dir, preexec_fn=raise_nofile)
    p.pid = p.proc.pid
    p.expect_exit = False
    deadline = time.time() + 15
    while True:
        assert p.proc.poll() is None, "pgturnout exited at restart:\n" + p.log()[-4000:]
        try:
            socket.create_connection((p.host, p.port), timeout=1).close()
            return
        except OSError:
            assert time.time() < deadline, "no restart:\n" + p.log()[-4000:]
            time.sleep(0.05)


def values(p):
    return {name: row["value"] for name, row in flags(p).items()}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_runtime_flags_survive_a_restart(proxy_factory, sig):
    p = proxy_factory()
    psql(p, "SET dual_write = on")
    psql(p, "SET canary_percent = 7")
    restart(p, sig)
    v = values(p)
    assert v["dual_write"] == "on"
    assert v["canary_percent"] == "7"
    f = flags(p)
    assert f["dual_write"]["changed_by"] == "admin"
    assert re.search(r"flag dual_write = on \(restored from the flag history: set by admin "
                     r"via console at [0-9T:.Z-]+; the config file says off\)", p.log())
    # nothing was appended at start: the history still ends with the console's changes
    hist = psql(p, "SHOW HISTORY")[1]
    assert [(r[1], r[3], r[5]) for r in hist] == [("admin", "dual_write", "on"),
                                                 ("admin", "canary_percent", "7")]
    # and it holds for a second restart too
    restart(p, sig)
    assert values(p)["dual_write"] == "on"
    assert values(p)["canary_percent"] == "7"


def test_file_change_while_stopped_wins_for_that_flag(proxy_factory):
    p = proxy_factory(extra="\n[flags]\ncanary_percent = 2\n")
    psql(p, "SET dual_write = on")
    psql(p, "SET canary_percent = 7")
    p.stop()
    with open(p.config_path) as f:
        text = f.read()
    p.write_config(text.replace("canary_percent = 2", "canary_percent = 12"))
    restart(p)
    v = values(p)
    assert v["canary_percent"] == "12"      # the file changed it: the file wins
    assert v["dual_write"] == "on"          # the file did not: the runtime value stays
    assert re.search(r"flag canary_percent = 12 \(from the config file: changed there from 2 "
                     r"since the last start; the history says 7\)", p.log())
    hist = psql(p, "SHOW HISTORY")[1]
    assert (hist[-1][1], hist[-1][2], hist[-1][3], hist[-1][4], hist[-1][5]) == (
        "config file", "startup", "canary_percent", "7", "12")
    # a later restart without a file change keeps 12 (the history ends with it)
    restart(p)
    assert values(p)["canary_percent"] == "12"


def test_reload_records_the_files_values_for_the_next_start(proxy_factory):
    p = proxy_factory(extra="\n[flags]\ncanary_percent = 2\n")
    with open(p.config_path) as f:
        text = f.read()
    p.write_config(text.replace("canary_percent = 2", "canary_percent = 4"))
    p.reload()
    p.wait_log(r"configuration reloaded")
    assert values(p)["canary_percent"] == "4"
    psql(p, "SET canary_percent = 9")
    restart(p)
    # the file (4) did not change since the reload: the runtime value wins
    assert values(p)["canary_percent"] == "9"


def test_reset_flags_starts_from_the_file(proxy_factory):
    p = proxy_factory()
    psql(p, "SET dual_write = on")
    psql(p, "SET canary_percent = 7")
    restart(p, args=["--reset-flags"])
    v = values(p)
    assert v["dual_write"] == "off"
    assert v["canary_percent"] == "0"
    assert re.search(r"flag dual_write = off \(from the config file: --reset-flags; "
                     r"the history says on\)", p.log())
    hist = psql(p, "SHOW HISTORY")[1]
    assert [(r[1], r[2], r[3], r[5]) for r in hist[-2:]] == [
        ("--reset-flags", "startup", "canary_percent", "0"),
        ("--reset-flags", "startup", "dual_write", "off")]
    # the next plain start keeps the file's values (the history ends with them)
    restart(p)
    assert values(p)["dual_write"] == "off"
