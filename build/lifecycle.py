#!/usr/bin/env python3
"""The life of a backup on production-shaped pools, as a table of exit codes:
`target/test-venv/bin/python build/lifecycle.py --cbr PATH [--cbr-baseline PATH]`.

It runs the steps of tests/lifecycle.rs (same arguments, same damage, same killed restore),
but where the test asserts, this script records: each step's exit code, and for the reruns
the number of writes the AWS-like layer saw (every op that is not List*, Describe*, Get*,
AdminGet* or AdminList*). For each pool shape (`--shapes`, default all six) and each binary
(`--cbr`, the build under test, and optionally `--cbr-baseline`), it makes fresh pools in
moto (tests/support/moto_server.py's `POST /_test/production-pool`, same seeds as the test:
1 to 6 in the order of the shapes), a fresh layer in front of moto
(tests/support/aws_layer.py --op-latency AdminCreateUser=150) and a fresh working
directory, then runs:

  backup -p SOURCE; restore -p FIRST (empty); the rerun (restore --update-existing);
  verify / diff backup.json on FIRST and on SOURCE; a restore into SECOND with
  --concurrency 4 killed (SIGKILL) 0-1.5 s after its first user creation, then run again; its
  rerun; verify SECOND; then for FIRST and for SECOND: damage (through the layer, with
  boto3, as the test's `damage` does it), verify (the test expects 3: the damage is seen),
  restore --update-existing, verify, diff, and the rerun.

Reading the table: one row per step, one column per shape. A cell is the exit code
(`0` success, `3` differences found, anything else a failure; `timeout` if the step ran
longer than --timeout), `0 (0 writes)` for a rerun (the test wants exit 0 and no write),
`killed after N of M created (W writes)` for the killed restore (N: AdminCreateUser calls
the layer received before the kill, M: the backup's native users, W: all its writes) and
`N touched` for the damage (the test wants at least 8). With --cbr-baseline a cell reads
`new / old` (build under test first), in bold when the two differ. Two things differ from
run to run whatever the binary: in the sign-in shapes the restored users' usernames are
generated, so which users the damage picks (and so N touched) varies; and N created is 0
when the kill lands while the restore is still creating the pool's 30 groups (about 5 a
second), which is where the test's 0-1.5 s puts it on this layer. Every expectation of
the test that did not hold is listed below the table, with the last lines of stderr of
each step that exited other than expected (each step's whole stdout and stderr are in
WORKDIR/logs/, kept with --keep). The script never depends on the sub map's file
name (`backup.sub-map.jsonl` in older builds, `backup.sub-map.<pool id>.jsonl` in newer).

Standard library and boto3. cbr runs with only PATH, HOME (its working directory) and dummy
AWS credentials in its environment, and `--endpoint-url LAYER --region us-east-1`.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUPPORT = os.path.join(ROOT, "tests", "support")
REGION = "us-east-1"
SHAPES = ["username", "case_insensitive", "email_sign_in", "phone_sign_in", "email_alias",
          "preferred_username_alias"]
READ_PREFIXES = ("List", "Describe", "Get", "AdminGet", "AdminList")


# ---------------------------------------------------------------------------------------
# Helper processes: moto and the layer


class Server:
    """A helper that prints `LISTENING host:port` when ready; stdin kept open, killed on stop."""

    def __init__(self, what, args):
        self.what = what
        self.errfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.errfile)
        line = [b""]
        reader = threading.Thread(target=lambda: line.__setitem__(0, self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(60)
        text = line[0].decode().strip()
        if not text.startswith("LISTENING "):
            self.stop()
            self.errfile.seek(0)
            sys.exit(f"{what} did not start:\n{self.errfile.read().decode(errors='replace')}")
        self.url = "http://" + text[len("LISTENING "):]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read() or b"null")


class Layer(Server):
    def __init__(self, moto_url, options):
        super().__init__("aws_layer.py", [os.path.join(SUPPORT, "aws_layer.py"),
                                          "--upstream", moto_url] + options)

    def post(self, path):
        http("POST", self.url + path)

    def stats(self):
        return http("GET", self.url + "/_layer/stats")

    def writes(self):
        return sum(v["calls"] for op, v in self.stats()["ops"].items()
                   if not op.startswith(READ_PREFIXES))

    def calls(self, op):
        return self.stats()["ops"].get(op, {}).get("calls", 0)


_pool_names = [0]


def production_pool(moto_url, shape, count, seed):
    """A pool made by moto_server.py's test endpoint: (pool id, users as seeded)."""
    _pool_names[0] += 1
    answer = http("POST", moto_url + "/_test/production-pool", {
        "shape": shape, "count": count, "seed": seed, "region": REGION,
        "name": f"production-{shape}-{_pool_names[0]}"})
    return answer["pool_id"], answer["users"]


# ---------------------------------------------------------------------------------------
# Running cbr


class Run:
    def __init__(self, code, out="", err=""):
        self.code, self.out, self.err = code, out, err


def cbr_command(cbr, layer_url, workdir, args):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": workdir, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}
    return dict(args=[cbr] + list(args) + ["--endpoint-url", layer_url, "--region", REGION],
                cwd=workdir, env=env)


def run_cbr(cbr, layer_url, workdir, args, timeout):
    try:
        p = subprocess.run(**cbr_command(cbr, layer_url, workdir, args), capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return Run("timeout", (e.stdout or b"").decode(errors="replace"),
                   (e.stderr or b"").decode(errors="replace"))
    return Run(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# The damage of tests/lifecycle.rs, with boto3


def damage(c, pool, seed):
    """Damage as a bad script would do it, to native users of `pool` (tests/lifecycle.rs's
    `damage`): an attribute changed, one added, one removed, enabled flags flipped,
    memberships removed and added, users deleted. Returns how many users were touched."""
    users, token = [], None
    while True:
        kw = {"UserPoolId": pool}
        if token:
            kw["PaginationToken"] = token
        page = c.list_users(**kw)
        users.extend(page.get("Users", []))
        token = page.get("PaginationToken")
        if not token:
            break
    users.sort(key=lambda u: u.get("Username", ""))
    natives = [u for u in users if u.get("UserStatus") != "EXTERNAL_PROVIDER"]
    groups = [g["GroupName"] for g in c.list_groups(UserPoolId=pool).get("Groups", [])]

    def has(u, name):
        return any(a["Name"] == name for a in u.get("Attributes", []))

    touched = 0
    for i, u in list(enumerate(natives))[seed % 3::5][:12]:
        name = u["Username"]
        k = i % 6
        if k == 0:
            c.admin_update_user_attributes(UserPoolId=pool, Username=name, UserAttributes=[
                {"Name": "name", "Value": "changed by a script"}])
        elif k == 1 and not has(u, "given_name"):
            c.admin_update_user_attributes(UserPoolId=pool, Username=name, UserAttributes=[
                {"Name": "given_name", "Value": "added by a script"}])
        elif k == 2 and has(u, "family_name"):
            c.admin_delete_user_attributes(UserPoolId=pool, Username=name,
                                           UserAttributeNames=["family_name"])
        elif k == 3 and u.get("Enabled", False):
            c.admin_disable_user(UserPoolId=pool, Username=name)
        elif k == 3:
            c.admin_enable_user(UserPoolId=pool, Username=name)
        elif k == 4 and groups:
            group = groups[i % len(groups)]
            member = any(g.get("GroupName") == group for g in
                         c.admin_list_groups_for_user(UserPoolId=pool, Username=name)
                         .get("Groups", []))
            if member:
                c.admin_remove_user_from_group(UserPoolId=pool, Username=name, GroupName=group)
            else:
                c.admin_add_user_to_group(UserPoolId=pool, Username=name, GroupName=group)
        elif k == 5:
            c.admin_delete_user(UserPoolId=pool, Username=name)
        else:
            continue
        touched += 1
    return touched


# ---------------------------------------------------------------------------------------
# One life


class Life:
    """The steps of one life (one binary, one shape): rows of (step, cell, failed, detail)."""

    def __init__(self, cbr, layer, workdir, timeout):
        self.cbr, self.layer, self.dir, self.timeout = cbr, layer, workdir, timeout
        self.rows = {}       # step -> cell
        self.notes = []      # expectations of the test that did not hold, with stderr tails
        self.logs = 0        # each step's stdout and stderr go to logs/NN-step.out / .err

    def note(self, step, what, run=None):
        text = f"{step}: {what}"
        if run is not None:
            for stream, lines in (("stdout", 2), ("stderr", 4)):
                tail = getattr(run, stream[3:]).strip().splitlines()[-lines:]
                if tail:
                    text += f"\n  {stream} (last lines):\n" + "\n".join("    " + line.strip()[:240]
                                                                         for line in tail)
        self.notes.append(text)

    def step(self, name, args, expect=0):
        run = run_cbr(self.cbr, self.layer.url, self.dir, args, self.timeout)
        self.logs += 1
        log = os.path.join(self.dir, "logs", f"{self.logs:02d}-{name.replace(' ', '_')}")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        for ext, text in (("out", run.out), ("err", run.err)):
            with open(f"{log}.{ext}", "w", encoding="utf-8") as f:
                f.write(text)
        self.rows[name] = str(run.code)
        if run.code != expect:
            self.note(name, f"`cbr {' '.join(args)}` exited {run.code}, expected {expect}", run)
        return run

    def rerun(self, name, pool, natives):
        self.layer.post("/_layer/reset-stats")
        report_path = os.path.join(self.dir, "rerun.json")
        if os.path.exists(report_path):
            os.remove(report_path)
        self.step(name, ["restore", "-p", pool, "--update-existing", "--report", "rerun.json"])
        writes = self.layer.writes()
        self.rows[name] += f" ({writes} writes)"
        if writes:
            ops = {op: v["calls"] for op, v in self.layer.stats()["ops"].items()
                   if not op.startswith(READ_PREFIXES)}
            self.note(name, f"{writes} writes: {ops}")
        report = read_json(report_path)
        if report is None:
            self.note(name, "no report rerun.json")
        elif report.get("unchanged") != natives or report.get("created") != 0:
            self.note(name, f"report: unchanged {report.get('unchanged')} (expected {natives}), "
                            f"created {report.get('created')} (expected 0)")

    def killed_restore(self, name, pool, seed, natives):
        """A restore into `pool` killed (SIGKILL) at a point while it creates users (after its
        groups, which come first at a few a second)."""
        self.layer.post("/_layer/reset-stats")
        proc = subprocess.Popen(**cbr_command(self.cbr, self.layer.url, self.dir,
                                              ["restore", "-p", pool, "--concurrency", "4"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        wrote = True
        while self.layer.calls("AdminCreateUser") == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                wrote = self.layer.calls("AdminCreateUser") > 0
                break
            time.sleep(0.01)
        if wrote:
            time.sleep(seed * 277 % 1500 / 1000)
        exited_first = proc.poll() is not None
        if not exited_first:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        created, writes = self.layer.calls("AdminCreateUser"), self.layer.writes()
        cell = f"killed after {created} of {natives} created ({writes} writes)"
        if not wrote:
            cell = f"never wrote (exit {proc.returncode})"
            self.note(name, "the restore never wrote")
        elif exited_first:
            cell = f"exited {proc.returncode} before the kill, {created} of {natives} created"
        if created >= natives:
            self.note(name, f"not killed part way: {created} of {natives} created")
        self.rows[name] = cell


def life(cbr, moto_url, shape, seed, count, workdir, timeout):
    layer = Layer(moto_url, ["--op-latency", "AdminCreateUser=150"])
    try:
        L = Life(cbr, layer, workdir, timeout)
        c = boto3.client("cognito-idp", endpoint_url=layer.url, region_name=REGION,
                         aws_access_key_id="test", aws_secret_access_key="test",
                         config=Config(retries={"mode": "standard", "max_attempts": 3}))
        source, users = production_pool(moto_url, shape, count, seed)
        first, _ = production_pool(moto_url, shape, 0, seed)
        second, _ = production_pool(moto_url, shape, 0, seed)
        layer.post("/_layer/forget")  # the pools were made behind the layer's back
        federated = sum(1 for u in users if u.get("UserStatus") == "EXTERNAL_PROVIDER")
        natives = len(users) - federated

        L.step("backup", ["backup", "-p", source])
        backup = read_json(os.path.join(workdir, "backup.json"))
        if backup is None or len(backup) != len(users):
            L.note("backup", f"backup.json holds {None if backup is None else len(backup)} "
                             f"users, expected {len(users)}")

        L.step("restore (empty pool)", ["restore", "-p", first, "--report", "first.json"])
        report = read_json(os.path.join(workdir, "first.json"))
        if report is None or report.get("created") != natives or report.get("failed") != []:
            L.note("restore (empty pool)", "report: " + (
                "missing" if report is None else
                f"created {report.get('created')} (expected {natives}), "
                f"failed {json.dumps(report.get('failed'), ensure_ascii=False)[:300]}"))
        L.rerun("rerun after the restore", first, natives)

        out = L.step("verify restored", ["verify", "-p", first])
        text = out.out + out.err
        if "compared as restored" not in text or f"{federated} federated users" not in text:
            L.note("verify restored", f"output lacks \"compared as restored\" or "
                                      f"\"{federated} federated users\"")
        out = L.step("diff restored", ["diff", "backup.json", "-p", first])
        if "compared as restored" not in out.out + out.err:
            L.note("diff restored", "output lacks \"compared as restored\"")
        out = L.step("verify source", ["verify", "-p", source])
        if "compared literally" not in out.out + out.err:
            L.note("verify source", "output lacks \"compared literally\"")
        L.step("diff source", ["diff", "backup.json", "-p", source])

        L.killed_restore("killed restore (second pool)", second, seed, natives)
        L.step("restore after the kill", ["restore", "-p", second])
        L.rerun("rerun after the kill", second, natives)
        L.step("verify second pool", ["verify", "-p", second])

        for pool, n, label in [(first, 1, "first"), (second, 2, "second")]:
            try:
                touched = damage(c, pool, n)
                L.rows[f"{label}: damage"] = f"{touched} touched"
                if touched < 8:
                    L.note(f"{label}: damage", f"only {touched} users damaged")
            except Exception as e:  # noqa: BLE001 - recorded, the life goes on
                L.rows[f"{label}: damage"] = "failed"
                L.note(f"{label}: damage", f"{type(e).__name__}: {e}")
            layer.post("/_layer/forget")
            L.step(f"{label}: verify after damage (expect 3)", ["verify", "-p", pool], expect=3)
            repair = os.path.join(workdir, "repair.json")
            if os.path.exists(repair):
                os.remove(repair)
            L.step(f"{label}: restore --update-existing",
                   ["restore", "-p", pool, "--update-existing", "--report", "repair.json"])
            report = read_json(repair)
            if report is None or report.get("conflicts") != [] or report.get("withheld") != []:
                L.note(f"{label}: restore --update-existing", "report: " + (
                    "missing" if report is None else
                    f"conflicts {json.dumps(report.get('conflicts'), ensure_ascii=False)[:200]}, "
                    f"withheld {json.dumps(report.get('withheld'), ensure_ascii=False)[:200]}"))
            L.step(f"{label}: verify after repair", ["verify", "-p", pool])
            L.step(f"{label}: diff after repair", ["diff", "backup.json", "-p", pool])
            L.rerun(f"{label}: rerun after repair", pool, natives)
        return L
    finally:
        layer.stop()


STEPS = [
    "backup", "restore (empty pool)", "rerun after the restore", "verify restored",
    "diff restored", "verify source", "diff source", "killed restore (second pool)",
    "restore after the kill", "rerun after the kill", "verify second pool",
] + [f"{p}: {s}" for p in ("first", "second") for s in (
    "damage", "verify after damage (expect 3)", "restore --update-existing",
    "verify after repair", "diff after repair", "rerun after repair")]


# ---------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cbr", default=os.path.join(ROOT, "target", "release", "cbr"),
                   help="the cbr under test (default: target/release/cbr)")
    p.add_argument("--cbr-baseline", help="a cbr to compare with (e.g. the build before)")
    p.add_argument("--shapes", default=",".join(SHAPES),
                   help="comma-separated pool shapes (default: all six)")
    p.add_argument("--count", type=int, default=80, help="users of the source pool (default 80)")
    p.add_argument("--timeout", type=float, default=600, help="seconds a cbr step may take")
    p.add_argument("--keep", action="store_true", help="keep the working directories")
    args = p.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            p.error(f"unknown shape {s!r} (one of {', '.join(SHAPES)})")
    binaries = [("new", os.path.abspath(args.cbr))]
    if args.cbr_baseline:
        binaries.append(("old", os.path.abspath(args.cbr_baseline)))
    for _, path in binaries:
        if not os.access(path, os.X_OK):
            p.error(f"{path} is not an executable")

    base = tempfile.mkdtemp(prefix="cbr-lifecycle-")
    moto = Server("moto", [os.path.join(SUPPORT, "moto_server.py")])
    results = {}  # (label, shape) -> Life
    try:
        for label, path in binaries:
            for shape in shapes:
                seed = SHAPES.index(shape) + 1  # as tests/lifecycle.rs numbers them
                workdir = os.path.join(base, label, shape)
                os.makedirs(workdir)
                t0 = time.monotonic()
                print(f"{label} ({path}), {shape}...", file=sys.stderr, flush=True)
                results[(label, shape)] = life(path, moto.url, shape, seed, args.count, workdir,
                                               args.timeout)
                print(f"  {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        moto.stop()
        if args.keep:
            print(f"working directories kept in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    labels = [label for label, _ in binaries]
    print(f"Lifecycle on production-shaped pools ({args.count} users): "
          + ", ".join(f"{label} = `{path}`" for label, path in binaries))
    print()
    if len(labels) == 2:
        print("Cells: new / old (bold where they differ).")
        print()
    print("| step | " + " | ".join(shapes) + " |")
    print("|---" * (len(shapes) + 1) + "|")
    for step in STEPS:
        cells = []
        for shape in shapes:
            values = [results[(label, shape)].rows.get(step, "-") for label in labels]
            cell = " / ".join(values)
            if len(values) == 2 and values[0] != values[1]:
                cell = f"**{cell}**"
            cells.append(cell)
        print(f"| {step} | " + " | ".join(cells) + " |")
    for label, path in binaries:
        notes = [(shape, n) for shape in shapes for n in results[(label, shape)].notes]
        print()
        print(f"Expectations of tests/lifecycle.rs that did not hold, {label} (`{path}`): "
              + ("none." if not notes else ""))
        if notes:
            print()
            print("```")
            for shape, n in notes:
                print(f"[{shape}] {n}")
            print("```")


if __name__ == "__main__":
    main()
