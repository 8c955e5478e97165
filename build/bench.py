#!/usr/bin/env python3
"""Benchmark `cbr` against moto behind an AWS-like layer (latency, quotas): `python3 build/bench.py`.

Everything runs on this machine: a moto server holds the pools, and
tests/support/aws_layer.py in front of it adds a network round trip (`--latency-ms`),
Cognito's request-rate quotas (ListUsers: 30/s, so at most 30 × 60 = 1,800 users/s) and
an in-memory ListUsers index (so that moto's O(pool size) pages do not dominate).

A scenario is a set of runs on the same pools in one go; each run is one child process
whose wall time, peak RSS (os.wait4) and output are measured, with the layer's counters
(throttled calls) reset in between. Scenarios:

  backup   cbr backup (default concurrency), cbr backup --concurrency 1 (one request in
           flight, as the original Go tool works) and `aws cognito-idp list-users` (the
           AWS CLI's own pagination) on a --users pool, plus cbr on a 1,000-user pool to
           compare peak memory at two pool sizes.
  restore  cbr restore (default concurrency) and cbr restore --concurrency 1 (one user at a
           time, one call at a time, as the original tool works) of a --restore-users backup,
           each into a fresh empty pool. Restore has no single ceiling: each Cognito quota
           category is its own bucket, so the fastest any client can go is the time the
           busiest category needs alone (its calls / its quota per second). Each run is
           checked against the source pool: users, enabled flags, statuses and groups.
  quotas2x the backup and the restore above, each through a layer at the default quotas
           and through one at twice them (`--quota-scale 2`, whose GetProvisionedLimit
           answers the raised rates), side by side: % of the raised ceiling (backup:
           2 × 1,800 users/s; restore: busiest category's calls / (2 × its quota)).
  rerun    a --rerun-users pool as it is in production (--shape; see below) is backed up;
           the target is another pool holding the same users as a finished restore leaves
           them (production_pool.as_restored: new subs, federated users absent, statuses as
           restore sets them, new usernames in sign-in shapes). `cbr backup` of the target
           (the listing, the baseline), then `cbr restore` into it: AdminGetUser calls and
           writes (both should be 0), wall time against the listing's; with --cbr-baseline,
           that binary's restore as the "before" column.
  rollback --damage-pct % of a --rollback-users pool as it is in production (--shape)
           damaged directly on moto after its backup, users of every status cbr writes
           (federated users are left alone: no restore can write them), then
           `cbr restore --update-existing`: writes sent against writes needed (per
           operation), wall time against the busiest category's ceiling, messages Cognito
           would have sent (none expected), and `cbr verify` afterwards (exit 0); with
           --cbr-baseline, that binary's rollback of the same damage first.
  scale    a pool of --users (default 1,000,000) users that only the layer holds (a
           synthetic pool, tests/support/layer/synthetic.py: generated on demand,
           production-shaped, 20 groups); for this build and --cbr-baseline side by side:
           `cbr backup` (to a .json, a .json.gz and moto's S3), a backup killed at about
           half way and rerun with --resume (n/a for a build without it), and
           `cbr restore --dry-run` into the same pool (a restore's
           reading of the pool). Wall time against the ListUsers ceiling (users / (1,800 ×
           --quota-scale); --no-quotas for cbr's own costs), the child's CPU seconds per
           100,000 users, peak RSS, and the peak of the bytes it held on disk (a fresh
           TMPDIR, the output's folder, spools it unlinked) beyond its final output, per user.
  shards   n = 1, 2, 3 and 8 shards of one synthetic pool (--shards-users) started together
           with default flags against one account's quota, this build and --cbr-baseline:
           wall time against the quota's ceiling for the UserList calls made and for one
           whole backup's, % of UserList calls throttled, and UserList calls against one
           whole backup's (memberships listed once or n times).
  all      every scenario but scale and shards, one after the other, on the same moto and
           layers.

The rerun and rollback pools are written straight into moto's backend by
tests/support/moto_server.py (`POST /_test/production-pool`, tests/support/production_pool.py):
every status at once (UNCONFIRMED, RESET_REQUIRED, COMPROMISED, EXTERNAL_PROVIDER and linked
users, which moto's admin API cannot make), disabled users, 30 groups, names in many scripts
and emoji, values at the schema's limits, in one of the pool shapes (`--shape`, default
case_insensitive: usernames, the console's default pool).

`--only aws-cli` (or any subset of run names) checks parts without a `cbr` binary.
"""

import argparse
import gzip
import importlib.util
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYER = os.path.join(ROOT, "tests", "support", "aws_layer.py")
MOTO_SERVER = os.path.join(ROOT, "tests", "support", "moto_server.py")
PRODUCTION_POOL = os.path.join(ROOT, "tests", "support", "production_pool.py")
REGION = "us-east-1"
CEILING_USERS_PER_S = 30 * 60  # ListUsers quota × page size
SMALL_POOL = 1_000


def load_module(name, path):
    """A module of tests/support (standard library only at import)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Cognito's quota categories, as the layer enforces them: category -> (requests/s, ops).
QUOTAS = load_module("aws_layer", LAYER).QUOTAS
# Pools as they are in production: SHAPES, as_restored, sign_in_attribute.
PRODUCTION = load_module("production_pool", PRODUCTION_POOL)
CATEGORY_OF = {op: cat for cat, (_, ops) in QUOTAS.items() for op in ops}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def child_env(tmp):
    """Environment for every child: dummy credentials, no profile, no instance metadata."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k in ("AWS_CA_BUNDLE",)}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION,
               AWS_CONFIG_FILE=os.path.join(tmp, "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "no-aws-credentials"),
               AWS_PAGER="", NO_COLOR="1")
    return env


# ---------------------------------------------------------------------------------------
# Services: moto, the layer, pools

def post(url, op, body, timeout=300):
    """One raw AWS JSON call (dummy signature: moto reads the region from it)."""
    req = urllib.request.Request(url + "/", data=json.dumps(body).encode(), headers={
        "X-Amz-Target": "AWSCognitoIdentityProviderService." + op,
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20240101/{REGION}/cognito-idp/"
                         "aws4_request, SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


class Environment:
    """moto on a free port and the layer in front of it; stops both on exit."""

    def __init__(self, args, tmp):
        self.args, self.tmp, self.procs = args, tmp, []

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self):
        # tests/support/moto_server.py: moto plus POST /_test/production-pool; it serves
        # until its standard input closes.
        with open(os.path.join(self.tmp, "moto.log"), "w") as moto_log:
            moto = subprocess.Popen([sys.executable, MOTO_SERVER], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=moto_log, text=True)
        self.procs.append(moto)
        line = moto.stdout.readline()
        if not line.startswith("LISTENING "):
            raise SystemExit("bench: moto did not start (see moto.log)")
        self.moto_url = "http://" + line.split()[1]
        post(self.moto_url, "ListUserPools", {"MaxResults": 1}, timeout=10)
        self.layer_options = ["--latency-ms", str(self.args.latency_ms), "--quotas",
                              "--index-listings"]
        self.url = self.start_layer()
        self.layers = {1.0: self.url}  # quota scale -> layer URL

    def start_layer(self, *extra):
        """Another layer in front of the same moto (e.g. `--quota-scale 2`); returns its URL."""
        layer = subprocess.Popen([sys.executable, LAYER, "--upstream", self.moto_url,
                                  *self.layer_options, *extra], stdout=subprocess.PIPE, text=True)
        self.procs.append(layer)
        line = layer.stdout.readline()
        if not line.startswith("LISTENING "):
            raise SystemExit("bench: the layer did not start")
        url = "http://" + line.split()[1]
        log(f"moto at {self.moto_url}, layer at {url} "
            f"({' '.join([*self.layer_options, *extra])})")
        return url

    def layer(self, scale):
        """The layer enforcing the quotas × `scale` (started on first use)."""
        if scale not in self.layers:
            self.layers[scale] = self.start_layer("--quota-scale", f"{scale:g}")
        return self.layers[scale]

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            if proc.stdin:
                proc.stdin.close()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()

    def stats(self, url=None):
        with urllib.request.urlopen((url or self.url) + "/_layer/stats") as r:
            return json.load(r)

    def reset_stats(self, url=None):
        urllib.request.urlopen(urllib.request.Request(
            (url or self.url) + "/_layer/reset-stats", data=b"", method="POST")).read()

    def forget(self):
        """Make every layer drop its indexes: pools were written directly on moto."""
        for url in self.layers.values():
            urllib.request.urlopen(urllib.request.Request(
                url + "/_layer/forget", data=b"", method="POST")).read()

    def warm(self, pool_id, url=None):
        """Build the layer's index of the pool before any timed run."""
        post(url or self.url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})


FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
        "Perlman", "Torvalds"]


def moto_client(moto_url):
    """A boto3 Cognito client talking to moto directly (not through the layer)."""
    import boto3
    import botocore.config
    return boto3.client("cognito-idp", endpoint_url=moto_url, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=botocore.config.Config(max_pool_connections=32,
                                                      retries={"total_max_attempts": 3}))


def create_tenant_pool(client, name):
    """An empty pool whose schema has the custom attribute `custom:tenant`. Returns its id."""
    return client.create_user_pool(PoolName=name, Schema=[
        {"Name": "tenant", "AttributeDataType": "String", "Mutable": True,
         "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "64"}}])["UserPool"]["Id"]


def random_user(rng, i):
    """The username and attributes of the i-th generated user."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    username = f"{first.lower()}.{last.lower()}.{i:06d}"
    attrs = [{"Name": "email", "Value": f"{username}@example.com"},
             {"Name": "email_verified", "Value": rng.choice(["true", "false"])},
             {"Name": "given_name", "Value": first}, {"Name": "family_name", "Value": last},
             {"Name": "name", "Value": f"{first} {last}"},
             {"Name": "custom:tenant", "Value": f"tenant-{rng.randrange(12):02d}"}]
    if rng.random() < 0.3:
        attrs.append({"Name": "phone_number", "Value": f"+1555{rng.randrange(10**7):07d}"})
    return username, attrs


def shared_pool(env, n_users):
    """The varied `n_users` pool of populate_pool(), made once per Environment (the backup
    and quotas2x scenarios only read it)."""
    shared = env.__dict__.setdefault("shared_pools", {})
    if n_users not in shared:
        shared[n_users] = populate_pool(env.moto_url, f"bench-{n_users}", n_users)
    return shared[n_users]


def populate_pool(moto_url, name, n_users, seed=1):
    """A pool with `n_users` varied users, created directly on moto. Returns its id."""
    client = moto_client(moto_url)
    pool_id = create_tenant_pool(client, name)
    rng = random.Random(seed)
    plans = []
    for i in range(n_users):
        username, attrs = random_user(rng, i)
        plans.append((username, attrs, rng.random() < 0.05))

    def create(plan):
        username, attrs, disabled = plan
        client.admin_create_user(UserPoolId=pool_id, Username=username, UserAttributes=attrs,
                                 MessageAction="SUPPRESS")
        if disabled:
            client.admin_disable_user(UserPoolId=pool_id, Username=username)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(create, plans), 1):
            if done % 2000 == 0:
                log(f"  {name}: {done}/{n_users} users")
    estimated = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]["EstimatedNumberOfUsers"]
    if estimated != n_users:
        raise SystemExit(f"bench: pool {name} has {estimated} users, wanted {n_users}")
    log(f"pool {name} ({pool_id}): {n_users} users, "
        f"{sum(p[2] for p in plans)} disabled, in {time.monotonic() - started:.1f} s")
    return pool_id


RESTORE_GROUPS = [{"GroupName": "admins", "Description": "People who run the place",
                   "Precedence": 1},
                  {"GroupName": "editors"}]
SOURCE_PASSWORD = "Bench-Passw0rd!"


def populate_restore_source(moto_url, name, n_users, seed=2):
    """The pool a restore starts from, created directly on moto: groups `admins` (with a
    description and precedence) and `editors`; about half the users CONFIRMED (a permanent
    password), every 7th disabled, about 40 % in one group and 10 % in both. Returns its id
    and its state as pool_state() reads it."""
    client = moto_client(moto_url)
    pool_id = create_tenant_pool(client, name)
    for group in RESTORE_GROUPS:
        client.create_group(UserPoolId=pool_id, **group)
    names = [g["GroupName"] for g in RESTORE_GROUPS]
    rng = random.Random(seed)
    plans = []
    for i in range(n_users):
        username, attrs = random_user(rng, i)
        confirmed = rng.random() < 0.5
        r = rng.random()
        groups = [rng.choice(names)] if r < 0.4 else names if r < 0.5 else []
        plans.append((username, attrs, confirmed, i % 7 == 0, groups))

    def create(plan):
        username, attrs, confirmed, disabled, groups = plan
        client.admin_create_user(UserPoolId=pool_id, Username=username, UserAttributes=attrs,
                                 MessageAction="SUPPRESS")
        if confirmed:
            client.admin_set_user_password(UserPoolId=pool_id, Username=username,
                                           Password=SOURCE_PASSWORD, Permanent=True)
        if disabled:
            client.admin_disable_user(UserPoolId=pool_id, Username=username)
        for group in groups:
            client.admin_add_user_to_group(UserPoolId=pool_id, Username=username,
                                           GroupName=group)

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(create, plans), 1):
            if done % 2000 == 0:
                log(f"  {name}: {done}/{n_users} users")
    state = pool_state(client, pool_id)
    planned = {u: (not d, "CONFIRMED" if c else "FORCE_CHANGE_PASSWORD", frozenset(g))
               for u, _, c, d, g in plans}
    if state != planned:
        raise SystemExit(f"bench: pool {name} does not hold the users it was given")
    log(f"pool {name} ({pool_id}): {n_users} users, {sum(p[2] for p in plans)} confirmed, "
        f"{sum(p[3] for p in plans)} disabled, {sum(len(p[4]) == 1 for p in plans)} in one "
        f"group, {sum(len(p[4]) == 2 for p in plans)} in both, "
        f"in {time.monotonic() - started:.1f} s")
    return pool_id, state


def pool_state(client, pool_id):
    """{username: (enabled, status, frozenset of groups)}, read with ListUsers and
    ListUsersInGroup (moto directly)."""
    users = {}
    for page in client.get_paginator("list_users").paginate(UserPoolId=pool_id):
        for u in page["Users"]:
            users[u["Username"]] = [u["Enabled"], u["UserStatus"], set()]
    for page in client.get_paginator("list_groups").paginate(UserPoolId=pool_id):
        for group in page["Groups"]:
            for members in client.get_paginator("list_users_in_group").paginate(
                    UserPoolId=pool_id, GroupName=group["GroupName"]):
                for u in members["Users"]:
                    users.setdefault(u["Username"], [None, None, set()])[2].add(
                        group["GroupName"])
    return {name: (enabled, status, frozenset(groups))
            for name, (enabled, status, groups) in users.items()}


def expected_state(users):
    """pool_state()'s answer for a pool holding exactly `users` (records with Groups)."""
    return {u["Username"]: (u["Enabled"], u["UserStatus"], frozenset(u.get("Groups") or []))
            for u in users}


def kind_of(user):
    """The user's status, or "CONFIRMED (linked)" for a native user linked to a provider."""
    linked = any(a["Name"] == "identities" for a in user["Attributes"])
    return "CONFIRMED (linked)" if linked and user["UserStatus"] == "CONFIRMED" \
        else user["UserStatus"]


def seed_production_pool(moto_url, name, shape, n_users=0, seed=0, users=None):
    """POST /_test/production-pool to tests/support/moto_server.py: a pool of `shape` with
    production_users(shape, n_users, seed), or with `users`, written straight into moto's
    backend. Returns (pool id, the users as seeded, with their Groups)."""
    body = {"shape": shape, "count": n_users, "seed": seed, "name": name, "region": REGION}
    if users is not None:
        body["users"] = users
    req = urllib.request.Request(moto_url + "/_test/production-pool",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=900) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"bench: seeding {name} failed: HTTP {e.code}: "
                         f"{e.read().decode(errors='replace')}") from None
    return answer["pool_id"], answer["users"]


def populate_production(moto_url, name, n_users, seed, shape, users=None):
    """A pool as it is in production (tests/support/production_pool.py): every status,
    federated and linked users, disabled ones, 30 groups, names in many scripts. Checked
    with pool_state() against what was seeded. Returns (pool id, users, pool_state())."""
    started = time.monotonic()
    pool_id, users = seed_production_pool(moto_url, name, shape, n_users, seed, users)
    seeded_s = time.monotonic() - started
    state = pool_state(moto_client(moto_url), pool_id)
    if state != expected_state(users):
        raise SystemExit(f"bench: pool {name} does not hold the users it was given")
    kinds = {}
    for u in users:
        kinds[kind_of(u)] = kinds.get(kind_of(u), 0) + 1
    log(f"pool {name} ({pool_id}, {shape}): {len(users):,} users ("
        + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        + f"), {sum(not u['Enabled'] for u in users):,} disabled, "
        f"{sum(not u['Groups'] for u in users):,} in no group, "
        f"{sum(len(u['Groups']) for u in users):,} memberships; seeded in {seeded_s:.1f} s, "
        f"checked in {time.monotonic() - started - seeded_s:.1f} s")
    return pool_id, users, state


# ---------------------------------------------------------------------------------------
# Running one child and measuring it

@dataclass
class Measurement:
    wall_s: float
    exit_code: int
    peak_rss_kib: int
    timed_out: bool


# Runs in a fresh `python3 -S` and forks the measured child itself. The child must not be
# forked from this process: on exec Linux records the old address space's peak into the
# new program's ru_maxrss, so a child of a 100 MB benchmark process would report at least
# 100 MB. Forked from this small helper, the floor is its own heap, about 5 MB (the
# summary prints it, measured on /bin/true).
MEASURE_HELPER = r"""
import os, sys, time
out, err, timeout, argv = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
started = time.monotonic()
pid = os.fork()
if pid == 0:
    fd_in = os.open(os.devnull, os.O_RDONLY)
    fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fd_err = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd_in, 0); os.dup2(fd_out, 1); os.dup2(fd_err, 2)
    try:
        os.execvp(argv[0], argv)
    finally:
        os.write(2, ("cannot run " + argv[0] + "\\n").encode())
        os._exit(127)
import json, signal  # only after the fork: the child's floor is this process's heap then
timed_out = []
signal.signal(signal.SIGALRM, lambda *_: (timed_out.append(1), os.kill(pid, signal.SIGKILL)))
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, rusage = os.wait4(pid, 0)
wall = time.monotonic() - started
signal.setitimer(signal.ITIMER_REAL, 0)
print(json.dumps({"wall_s": wall, "exit_code": os.waitstatus_to_exitcode(status),
                  "peak_rss_kib": rusage.ru_maxrss, "timed_out": bool(timed_out)}))
"""


def measure(argv, env, stdout_path, stderr_path, timeout):
    """Run argv; its wall time and its own peak RSS (os.wait4 on its pid, in a small helper)."""
    helper = subprocess.run([sys.executable, "-S", "-c", MEASURE_HELPER, stdout_path,
                             stderr_path, str(timeout), *argv],
                            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True)
    if helper.returncode != 0:
        raise SystemExit(f"bench: the measuring helper failed: {helper.stderr}")
    return Measurement(**json.loads(helper.stdout))


def count_users(path, tool):
    """(records, distinct usernames) in a backup file (cbr: a JSON array; CLI: {"Users": [...]})."""
    with open(path, "rb") as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("Users") if "Users" in data else data.get("users")
    users = data or []
    names = {u.get("Username", u.get("username")) for u in users if isinstance(u, dict)}
    return len(users), len(names)


# ---------------------------------------------------------------------------------------
# Scenarios

@dataclass
class Run:
    name: str  # as given to --only
    label: str  # for the table
    pool_size: int
    tool: str  # "cbr" or "aws"
    extra: list = field(default_factory=list)
    scale: float = 1.0  # through the layer enforcing the quotas × scale


@dataclass
class Result:
    run: Run
    ok: bool
    note: str = ""
    wall_s: float = 0.0
    users: int = 0
    peak_rss_mib: float = 0.0
    throttled: int = 0
    list_users_calls: int = 0
    ops: dict = field(default_factory=dict)  # the layer's per-op counters for the run
    layer_stats: dict = field(default_factory=dict)  # all of GET /_layer/stats after the run
    extra: dict = field(default_factory=dict)  # what a scenario's check found

    @property
    def users_per_s(self):
        return self.users / self.wall_s if self.wall_s else 0.0

    def to_json(self):
        return {"name": self.run.name, "label": self.run.label, "tool": self.run.tool,
                "pool_size": self.run.pool_size, "ok": self.ok, "note": self.note,
                "wall_s": round(self.wall_s, 3), "users": self.users,
                "users_per_s": round(self.users_per_s, 1),
                "pct_of_ceiling": round(100 * self.users_per_s / CEILING_USERS_PER_S, 1),
                "throttled": self.throttled, "list_users_calls": self.list_users_calls,
                "peak_rss_mib": round(self.peak_rss_mib, 1)}


class Scenario:
    """A set of runs over pools created once. Subclasses say which runs and how to check them."""

    name = ""

    def __init__(self, args):
        self.args = args
        self.tmp = None  # the folder for outputs and logs, once made
        self.env = None  # the Environment, once started
        self.tools = {}  # "cbr" / "aws" -> path
        self.pools = {}  # size -> pool id

    def runs(self):
        raise NotImplementedError

    def prepare(self, runs):
        for size in sorted({r.pool_size for r in runs}):
            self.pools[size] = shared_pool(self.env, size)
            self.env.warm(self.pools[size])

    def argv(self, run, out):
        raise NotImplementedError

    def check(self, run, out, stdout_path):
        """Users found, or raise ValueError saying what is wrong."""
        raise NotImplementedError

    def execute(self, run):
        out = os.path.join(self.tmp, f"{run.name}.json")
        stdout_path = os.path.join(self.tmp, f"{run.name}.stdout")
        stderr_path = os.path.join(self.tmp, f"{run.name}.stderr")
        time.sleep(self.args.settle_s)  # let the quota buckets fill up again
        url = self.env.layer(run.scale)
        self.env.reset_stats(url)
        m = measure(self.argv(run, out), child_env(self.tmp), stdout_path, stderr_path,
                    self.args.timeout)
        stats = self.env.stats(url)
        result = Result(run, ok=False, wall_s=m.wall_s, peak_rss_mib=m.peak_rss_kib / 1024,
                        throttled=stats["total_throttled"],
                        list_users_calls=stats["ops"].get("ListUsers", {}).get("calls", 0),
                        ops=stats["ops"], layer_stats=stats)
        self.current = result
        if m.timed_out or m.exit_code not in self.ok_exit_codes(run):
            with open(stderr_path, errors="replace") as f:
                tail = f.read()[-2000:].strip()
            result.note = ("timed out" if m.timed_out else f"exit code {m.exit_code}") + \
                (f": {tail.splitlines()[-1]}" if tail else "")
            log(f"{run.name} failed ({result.note}); its stderr ends with:\n{tail}")
            return result
        result.extra["exit_code"] = m.exit_code
        try:
            result.users = self.check(run, out, stdout_path)
            result.ok = True
        except (ValueError, OSError) as e:
            result.note = str(e)
            log(f"{run.name}: {e}")
        return result

    def ok_exit_codes(self, run):
        return (0,)

    def summary(self, results):
        return []

    def headline(self):
        raise NotImplementedError

    def table(self, results):
        raise NotImplementedError

    def to_json(self, results):
        """This scenario's part of --json: its settings and runs."""
        raise NotImplementedError


class BackupScenario(Scenario):
    name = "backup"

    def runs(self):
        n = self.args.users
        return [Run("cbr", f"cbr backup (default), {n:,} users", n, "cbr"),
                Run("cbr-c1", f"cbr backup --concurrency 1, {n:,} users", n, "cbr",
                    ["--concurrency", "1"]),
                Run("aws-cli", f"aws cognito-idp list-users, {n:,} users", n, "aws"),
                Run("cbr-1k", f"cbr backup (default), {SMALL_POOL:,} users", SMALL_POOL, "cbr")]

    def argv(self, run, out):
        pool = self.pools[run.pool_size]
        if run.tool == "cbr":
            return [self.tools["cbr"], "backup", "-p", pool, "-o", out, "--endpoint-url",
                    self.env.layer(run.scale), "--region", REGION, "--no-progress", *run.extra]
        return [self.tools["aws"], "cognito-idp", "list-users", "--user-pool-id", pool,
                "--endpoint-url", self.env.url, "--region", REGION, "--output", "json",
                *run.extra]

    def check(self, run, out, stdout_path):
        records, distinct = count_users(stdout_path if run.tool == "aws" else out, run.tool)
        if records != run.pool_size or distinct != run.pool_size:
            raise ValueError(f"{records} records ({distinct} distinct usernames) in the output, "
                             f"the pool has {run.pool_size}")
        return records

    def summary(self, results):
        by_name = {r.run.name: r for r in results if r.ok}
        big, small = by_name.get("cbr"), by_name.get("cbr-1k")
        if not (big and small):
            return []
        ratio = big.peak_rss_mib / small.peak_rss_mib
        return [f"cbr peak memory: {small.peak_rss_mib:.1f} MiB at {SMALL_POOL:,} users, "
                f"{big.peak_rss_mib:.1f} MiB at {big.run.pool_size:,} users "
                f"(× {ratio:.2f} for × {big.run.pool_size / SMALL_POOL:g} users)"]

    def headline(self):
        return (f"scenario backup: latency {self.args.latency_ms:g} ms per request, quotas on "
                f"(ListUsers 30/s: ceiling {CEILING_USERS_PER_S:,} users/s)")

    def table(self, results):
        header = ["run", "users", "wall s", "users/s", "% ceiling", "ListUsers", "throttled",
                  "peak RSS MiB", "ok"]
        rows = [[r.run.label, f"{r.users:,}", f"{r.wall_s:.2f}", f"{r.users_per_s:,.0f}",
                 f"{100 * r.users_per_s / CEILING_USERS_PER_S:.1f}", str(r.list_users_calls),
                 str(r.throttled), f"{r.peak_rss_mib:.1f}", ok_cell(r)]
                for r in results]
        return format_table(header, rows)

    def to_json(self, results):
        return {"scenario": self.name, "users": self.args.users,
                "ceiling_users_per_s": CEILING_USERS_PER_S,
                "runs": [r.to_json() for r in results],
                "memory": self.memory_json(results)}

    def memory_json(self, results):
        by_name = {r.run.name: r for r in results if r.ok}
        big, small = by_name.get("cbr"), by_name.get("cbr-1k")
        if not (big and small):
            return None
        return {"small_users": SMALL_POOL, "small_peak_rss_mib": round(small.peak_rss_mib, 1),
                "large_users": big.run.pool_size, "large_peak_rss_mib": round(big.peak_rss_mib, 1),
                "ratio": round(big.peak_rss_mib / small.peak_rss_mib, 2)}


class RestoreScenario(Scenario):
    name = "restore"

    def __init__(self, args):
        super().__init__(args)
        self.client = None  # boto3 on moto directly, for setting up and checking
        self.source = None  # the source pool's id
        self.source_state = None  # pool_state() of the source pool
        self.targets = {}  # run name -> the empty pool it restores into

    def runs(self):
        n = self.args.restore_users
        return [Run("cbr-restore", f"cbr restore (default), {n:,} users", n, "cbr"),
                Run("cbr-restore-c1", f"cbr restore --concurrency 1, {n:,} users", n, "cbr",
                    ["--concurrency", "1"])]

    def run_dir(self, run):
        return os.path.join(self.tmp, run.name)

    def prepare(self, runs):
        """The source pool, its backup (straight from moto, not measured), and for each run
        a copy of the backup in its own folder (the sub map goes beside it) and an empty
        target pool with the same schema."""
        n = self.args.restore_users
        self.client = moto_client(self.env.moto_url)
        self.source, self.source_state = populate_restore_source(
            self.env.moto_url, f"bench-restore-{n}", n)
        source_dir = os.path.join(self.tmp, "source")
        os.makedirs(source_dir)
        backup = os.path.join(source_dir, "backup.json")
        started = time.monotonic()
        done = subprocess.run([self.tools["cbr"], "backup", "-p", self.source, "-o", backup,
                               "--endpoint-url", self.env.moto_url, "--region", REGION,
                               "--no-progress"],
                              env=child_env(self.tmp), cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=self.args.timeout)
        if done.returncode != 0:
            raise SystemExit(f"bench: backing up the source pool failed (exit code "
                             f"{done.returncode}): {done.stderr[-2000:].strip()}")
        records, distinct = count_users(backup, "cbr")
        if records != n or distinct != n:
            raise SystemExit(f"bench: the source backup holds {records} records ({distinct} "
                             f"distinct usernames), the pool has {n}")
        log(f"backed up {self.source} to {sorted(os.listdir(source_dir))} "
            f"in {time.monotonic() - started:.1f} s (moto directly)")
        for run in runs:
            os.makedirs(self.run_dir(run))
            for name in os.listdir(source_dir):
                shutil.copy2(os.path.join(source_dir, name), self.run_dir(run))
            self.targets[run.name] = create_tenant_pool(self.client, f"bench-target-{run.name}")

    def argv(self, run, out):
        folder = self.run_dir(run)
        return [self.tools["cbr"], "restore", "-p", self.targets[run.name],
                "-i", os.path.join(folder, "backup.json"), "--endpoint-url",
                self.env.layer(run.scale),
                "--region", REGION, "--no-progress",
                "--report", os.path.join(folder, "report.json"), *run.extra]

    def check(self, run, out, stdout_path):
        """The report says nothing failed, and the target pool holds the source's users with
        the same enabled flags, groups and statuses (CONFIRMED stays CONFIRMED; the rest are
        FORCE_CHANGE_PASSWORD)."""
        with open(os.path.join(self.run_dir(run), "report.json")) as f:
            report = json.load(f)
        problems = []
        if report.get("failed"):
            first = report["failed"][0]
            problems.append(f"{len(report['failed'])} failed in the report (first: "
                            f"{first.get('username')}: {first.get('reason')})")
        if report.get("interrupted"):
            problems.append("the report says it was interrupted")
        target = pool_state(self.client, self.targets[run.name])
        expected = {u: (enabled, "CONFIRMED" if status == "CONFIRMED" else "FORCE_CHANGE_PASSWORD",
                        groups) for u, (enabled, status, groups) in self.source_state.items()}
        if len(target) != len(expected):
            problems.append(f"{len(target)} users in the target pool, {len(expected)} in the source")
        missing = expected.keys() - target.keys()
        if missing:
            problems.append(f"{len(missing)} users missing (e.g. {min(missing)})")
        extra = target.keys() - expected.keys()
        if extra:
            problems.append(f"{len(extra)} users not in the source (e.g. {min(extra)})")
        for i, what in enumerate(["enabled flag", "status", "groups"]):
            wrong = sorted(u for u in expected.keys() & target.keys()
                           if expected[u][i] != target[u][i])
            if wrong:
                problems.append(f"{len(wrong)} users with the wrong {what} (e.g. {wrong[0]}: "
                                f"{target[wrong[0]][i]!r}, not {expected[wrong[0]][i]!r})")
        if problems:
            raise ValueError("; ".join(problems))
        return len(target)

    # -- the ceiling ----------------------------------------------------------------------
    @staticmethod
    def categories(result):
        """{category: {quota_per_s, calls, throttled, seconds_at_quota, ops}}, busiest first.
        `calls` are the calls the layer answered (throttled ones are not work done); ops
        outside every category go under "(no quota)"."""
        cats = {}
        for op, c in sorted(result.ops.items()):
            cat = CATEGORY_OF.get(op, "(no quota)")
            rate = QUOTAS[cat][0] * result.run.scale if cat in QUOTAS else None
            entry = cats.setdefault(cat, {"quota_per_s": rate,
                                          "calls": 0, "throttled": 0, "ops": {}})
            entry["calls"] += c["calls"] - c["throttled"]
            entry["throttled"] += c["throttled"]
            entry["ops"][op] = c["calls"] - c["throttled"]
        for entry in cats.values():
            rate = entry["quota_per_s"]
            entry["seconds_at_quota"] = entry["calls"] / rate if rate else 0.0
        return dict(sorted(cats.items(), key=lambda kv: (-kv[1]["seconds_at_quota"], kv[0])))

    def ceiling(self, result):
        """(seconds, category): the busiest category's calls / its quota — no client can do
        the run faster under the quotas."""
        cats = self.categories(result)
        if not cats:
            return 0.0, None
        cat, entry = next(iter(cats.items()))
        return entry["seconds_at_quota"], cat

    def pct_of_ceiling(self, result):
        seconds, _ = self.ceiling(result)
        return 100 * seconds / result.wall_s if result.wall_s else 0.0

    def headline(self):
        quotas = ", ".join(f"{c} {r}/s" for c, (r, _) in QUOTAS.items()
                           if c in ("UserCreation", "UserAccountRecovery", "UserUpdate"))
        return (f"scenario restore: latency {self.args.latency_ms:g} ms per request, quotas on "
                f"({quotas}, ...); ceiling = the busiest category's calls / its quota, "
                f"% ceiling = ceiling / wall time")

    def table(self, results):
        header = ["run", "users", "wall s", "users/s", "ceiling s", "% ceiling",
                  "busiest category", "calls", "throttled", "peak RSS MiB", "ok"]
        rows = []
        for r in results:
            seconds, cat = self.ceiling(r)
            busiest = self.categories(r).get(cat)
            rows.append([r.run.label, f"{r.users:,}", f"{r.wall_s:.2f}", f"{r.users_per_s:,.0f}",
                         f"{seconds:.2f}", f"{self.pct_of_ceiling(r):.1f}",
                         f"{cat} ({busiest['calls']:,} at {busiest['quota_per_s']:g}/s)"
                         if busiest else "-",
                         f"{sum(c['calls'] - c['throttled'] for c in r.ops.values()):,}",
                         str(r.throttled), f"{r.peak_rss_mib:.1f}", ok_cell(r)])
        main_table = format_table(header, rows, ["<", *">" * 5, "<", *">" * 3, "<"])
        # Calls per category (and per op), for each run: what the ceiling is made of.
        per_run = [self.categories(r) for r in results]
        order = []
        for cats in per_run:
            order += [c for c in cats if c not in order]
        header = ["category / operation", "quota/s", *[r.run.name for r in results]]
        rows = []
        for cat in order:
            rate = QUOTAS[cat][0] if cat in QUOTAS else None
            rows.append([cat, str(rate or "-"), *[
                (f"{cats[cat]['calls']:,} calls = {cats[cat]['seconds_at_quota']:.2f} s"
                 if rate else f"{cats[cat]['calls']:,} calls") if cat in cats else "-"
                for cats in per_run]])
            ops = sorted({op for cats in per_run if cat in cats for op in cats[cat]["ops"]})
            for op in ops:
                rows.append([f"  {op}", "", *[f"{cats[cat]['ops'].get(op, 0):,}"
                                              if cat in cats else "-" for cats in per_run]])
        return (main_table + "\n\ncalls the layer answered, by quota category (throttled ones "
                "not counted):\n\n" + format_table(header, rows, ["<", *">" * (len(header) - 1)]))

    def summary(self, results):
        lines = []
        for r in results:
            seconds, cat = self.ceiling(r)
            if cat is None:
                continue
            entry = self.categories(r)[cat]
            note = "" if cat == "UserUpdate" else " (not UserUpdate, the expected one)"
            lines.append(f"{r.run.name}: busiest category {cat}{note}: {entry['calls']:,} calls "
                         f"at {entry['quota_per_s']:g}/s = {seconds:.2f} s; the run took "
                         f"{r.wall_s:.2f} s ({self.pct_of_ceiling(r):.1f} % of the ceiling)")
        return lines

    def to_json(self, results):
        runs = []
        for r in results:
            seconds, cat = self.ceiling(r)
            doc = r.to_json()
            doc.update(pct_of_ceiling=round(self.pct_of_ceiling(r), 1),
                       ceiling_s=round(seconds, 3), busiest_category=cat,
                       total_calls=sum(c["calls"] - c["throttled"] for c in r.ops.values()),
                       categories={c: dict(e, seconds_at_quota=round(e["seconds_at_quota"], 3))
                                   for c, e in self.categories(r).items()},
                       ops=r.ops)
            runs.append(doc)
        return {"scenario": self.name, "restore_users": self.args.restore_users,
                "quotas_per_s": {c: rate for c, (rate, _) in QUOTAS.items()},
                "runs": runs}


# Calls that change a pool: none of them may be sent by a rerun of a finished restore.
WRITE_OPS = ("AdminCreateUser", "AdminUpdateUserAttributes", "AdminDeleteUserAttributes",
             "AdminDisableUser", "AdminEnableUser", "AdminAddUserToGroup",
             "AdminRemoveUserFromGroup", "AdminSetUserPassword", "AdminResetUserPassword",
             "AdminDeleteUser", "CreateGroup", "UpdateGroup", "DeleteGroup",
             "AdminLinkProviderForUser", "AdminSetUserMFAPreference")


def answered(ops, op):
    """Calls of `op` the layer let through (throttled ones are retried, not work done)."""
    c = ops.get(op, {})
    return c.get("calls", 0) - c.get("throttled", 0)


def backup_directly(scenario, pool, folder):
    """`cbr backup` of a pool straight from moto (not measured); the backup's path."""
    os.makedirs(folder, exist_ok=True)
    backup = os.path.join(folder, "backup.json")
    started = time.monotonic()
    done = subprocess.run([scenario.tools["cbr"], "backup", "-p", pool, "-o", backup,
                           "--endpoint-url", scenario.env.moto_url, "--region", REGION,
                           "--no-progress"],
                          env=child_env(scenario.tmp), cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=scenario.args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"bench: backing up {pool} failed (exit code {done.returncode}): "
                         f"{done.stderr[-2000:].strip()}")
    log(f"backed up {pool} to {backup} in {time.monotonic() - started:.1f} s (moto directly)")
    return backup


def read_report(path):
    """The restore report, with today's and the new key names both understood."""
    with open(path) as f:
        report = json.load(f)
    updated = report.get("updated")
    return {"created": report.get("created", 0),
            "unchanged": report.get("unchanged", report.get("already_present", 0)),
            "updated": sum(updated.values()) if isinstance(updated, dict) else (updated or 0),
            "conflicts": len(report.get("conflicts") or []),
            "failed": report.get("failed") or [], "raw": report}


class QuotasScenario(RestoreScenario):
    """Backup and restore through a layer at 1× and at 2× the default quotas, side by side."""

    name = "quotas2x"
    SCALES = (1.0, 2.0)

    def runs(self):
        n, r = self.args.users, self.args.restore_users
        runs = []
        for scale in self.SCALES:
            runs.append(Run(f"backup-{scale:g}x", f"cbr backup, {n:,} users, quotas ×{scale:g}",
                            n, "cbr", scale=scale))
        for scale in self.SCALES:
            runs.append(Run(f"restore-{scale:g}x", f"cbr restore, {r:,} users, quotas ×{scale:g}",
                            r, "cbr", scale=scale))
        return runs

    def prepare(self, runs):
        if any(r.name.startswith("backup") for r in runs):
            self.pools[self.args.users] = shared_pool(self.env, self.args.users)
            for scale in self.SCALES:
                self.env.warm(self.pools[self.args.users], self.env.layer(scale))
        restores = [r for r in runs if r.name.startswith("restore")]
        if restores:
            super().prepare(restores)

    def argv(self, run, out):
        if run.name.startswith("backup"):
            return [self.tools["cbr"], "backup", "-p", self.pools[run.pool_size], "-o", out,
                    "--endpoint-url", self.env.layer(run.scale), "--region", REGION,
                    "--no-progress"]
        return super().argv(run, out)

    def check(self, run, out, stdout_path):
        if run.name.startswith("backup"):
            records, distinct = count_users(out, "cbr")
            if records != run.pool_size or distinct != run.pool_size:
                raise ValueError(f"{records} records ({distinct} distinct usernames) in the "
                                 f"backup, the pool has {run.pool_size}")
            return records
        return super().check(run, out, stdout_path)

    def pct(self, result):
        """% of the raised ceiling: users/s against 1,800 × scale for a backup; the busiest
        category's seconds at quota × scale against the wall time for a restore."""
        if result.run.name.startswith("backup"):
            return 100 * result.users_per_s / (CEILING_USERS_PER_S * result.run.scale)
        return self.pct_of_ceiling(result)

    def headline(self):
        return (f"scenario quotas2x: latency {self.args.latency_ms:g} ms per request, the same "
                f"pools through a layer at the default quotas (×1) and at twice them (×2, "
                f"GetProvisionedLimit answers the raised rates); backup ceiling 1,800 × scale "
                f"users/s, restore ceiling = busiest category's calls / (scale × its quota)")

    def table(self, results):
        header = ["run", "scale", "users", "wall s", "users/s", "ceiling", "% ceiling",
                  "throttled", "GetProvisionedLimit", "ok"]
        rows = []
        for r in results:
            if r.run.name.startswith("backup"):
                ceiling = f"{CEILING_USERS_PER_S * r.run.scale:,.0f} users/s"
            else:
                seconds, cat = self.ceiling(r)
                ceiling = f"{seconds:.2f} s ({cat})"
            rows.append([r.run.label, f"×{r.run.scale:g}", f"{r.users:,}", f"{r.wall_s:.2f}",
                         f"{r.users_per_s:,.0f}", ceiling, f"{self.pct(r):.1f}",
                         str(r.throttled), str(answered(r.ops, "GetProvisionedLimit")),
                         ok_cell(r)])
        return format_table(header, rows, ["<", *">" * 8, "<"])

    def summary(self, results):
        lines = []
        by = {r.run.name: r for r in results if r.ok}
        for kind in ("backup", "restore"):
            cells = [f"×{s:g}: {self.pct(by[f'{kind}-{s:g}x']):.1f} %" for s in self.SCALES
                     if f"{kind}-{s:g}x" in by]
            if cells:
                met = all(self.pct(by[f"{kind}-{s:g}x"]) >= 90 for s in self.SCALES
                          if f"{kind}-{s:g}x" in by)
                lines.append(f"{kind}: % of the ceiling at each scale: {', '.join(cells)} "
                             f"(target: at least 90 % at ×2: {'met' if met else 'NOT met'})")
        return lines

    def to_json(self, results):
        runs = []
        for r in results:
            doc = r.to_json()
            doc.update(scale=r.run.scale, pct_of_ceiling=round(self.pct(r), 1), ops=r.ops,
                       get_provisioned_limit_calls=answered(r.ops, "GetProvisionedLimit"))
            runs.append(doc)
        return {"scenario": self.name, "users": self.args.users,
                "restore_users": self.args.restore_users, "scales": list(self.SCALES),
                "runs": runs}


class RerunScenario(Scenario):
    """A restore into a pool that already holds every user of the backup, as a finished
    restore's rerun would find it: no per-user read and no write should be sent, and it
    should take about as long as listing the pool."""

    name = "rerun"

    def __init__(self, args):
        super().__init__(args)
        self.client = None
        self.target = None
        self.state = None
        self.backup = None

    def runs(self):
        n = self.args.rerun_users
        runs = [Run("rerun-list", f"cbr backup of the target (the listing), {n:,} users", n, "cbr"),
                Run("rerun", f"cbr restore into the full pool, {n:,} users", n, "cbr")]
        if self.args.cbr_baseline:
            runs.append(Run("rerun-before", f"baseline cbr restore into the full pool, {n:,} "
                            "users", n, "cbr-baseline"))
        return runs

    def prepare(self, runs):
        """The backup comes from a pool as it is in production; the target is another pool,
        seeded directly on moto with the same users as a finished restore leaves them
        (production_pool.as_restored: new subs, federated users absent, CONFIRMED /
        RESET_REQUIRED / COMPROMISED users CONFIRMED, the others FORCE_CHANGE_PASSWORD, no
        `identities`, new usernames in sign-in shapes; groups as they were)."""
        n, shape = self.args.rerun_users, self.args.shape
        self.client = moto_client(self.env.moto_url)
        source, users, _ = populate_production(self.env.moto_url, f"bench-rerun-source-{n}",
                                               n, 4, shape)
        self.backup = backup_directly(self, source, os.path.join(self.tmp, "source"))
        self.target, _, self.state = populate_production(
            self.env.moto_url, f"bench-rerun-target-{n}", n, 4, shape,
            users=PRODUCTION.as_restored(shape, users, seed=4))
        self.env.warm(self.target)

    def argv(self, run, out):
        if run.name == "rerun-list":
            return [self.tools["cbr"], "backup", "-p", self.target, "-o", out, "--endpoint-url",
                    self.env.url, "--region", REGION, "--no-progress"]
        return [self.tools[run.tool], "restore", "-p", self.target, "-i", self.backup,
                "--endpoint-url", self.env.url, "--region", REGION, "--no-progress",
                "--report", os.path.join(self.tmp, f"{run.name}.report.json"),
                "--sub-map", os.path.join(self.tmp, f"{run.name}.submap.json")]

    def check(self, run, out, stdout_path):
        if run.name == "rerun-list":
            records, _ = count_users(out, "cbr")
            if records != len(self.state):  # the target lacks the backup's federated users
                raise ValueError(f"{records} records in the listing, the pool has "
                                 f"{len(self.state)}")
            return records
        result = self.current
        report = read_report(os.path.join(self.tmp, f"{run.name}.report.json"))
        result.extra.update(report={k: v for k, v in report.items() if k != "raw"},
                            admin_get_user=answered(result.ops, "AdminGetUser"),
                            writes={op: answered(result.ops, op) for op in WRITE_OPS
                                    if answered(result.ops, op)},
                            messages=len(result.layer_stats.get("messages", [])))
        problems = []
        if report["failed"]:
            problems.append(f"{len(report['failed'])} failed in the report")
        if pool_state(self.client, self.target) != self.state:
            problems.append("the target pool changed")
        if result.extra["messages"]:
            problems.append(f"{result.extra['messages']} messages Cognito would have sent")
        if problems:
            raise ValueError("; ".join(problems))
        return run.pool_size

    def verdict(self, r, listing):
        writes = sum(r.extra.get("writes", {}).values())
        within = listing and r.wall_s <= 1.3 * listing.wall_s
        return writes == 0 and r.extra.get("admin_get_user", 0) == 0 and bool(within)

    def headline(self):
        n = self.args.rerun_users
        listed = len(self.state) if self.state else n
        return (f"scenario rerun: latency {self.args.latency_ms:g} ms per request, quotas on; "
                f"a {n:,}-user {self.args.shape} pool as it is in production, backed up, and "
                "a pool holding its users as a finished restore leaves them; listing that at "
                f"the quota takes at least {listed / CEILING_USERS_PER_S:.2f} s (users / 1,800); "
                "target: no AdminGetUser, no write, within 1.3 × the listing's wall time")

    def table(self, results):
        listing = next((r for r in results if r.run.name == "rerun-list" and r.ok), None)
        header = ["run", "wall s", "× listing", "AdminGetUser", "writes", "ListUsers",
                  "all calls", "throttled", "report (created/unchanged/updated/conflicts)",
                  "target met", "ok"]
        rows = []
        for r in results:
            rep = r.extra.get("report") or {}
            is_restore = r.run.name != "rerun-list"
            rows.append([
                r.run.label, f"{r.wall_s:.2f}",
                f"{r.wall_s / listing.wall_s:.2f}" if listing and is_restore else "-",
                str(r.extra.get("admin_get_user", "-")) if is_restore else "-",
                str(sum(r.extra.get("writes", {}).values())) if is_restore else "-",
                str(answered(r.ops, "ListUsers")),
                f"{sum(c['calls'] - c['throttled'] for c in r.ops.values()):,}", str(r.throttled),
                (f"{rep.get('created', 0)}/{rep.get('unchanged', 0)}/{rep.get('updated', 0)}/"
                 f"{rep.get('conflicts', 0)}") if rep else "-",
                ("yes" if self.verdict(r, listing) else "no") if is_restore and r.ok and listing
                else "-",
                ok_cell(r)])
        return format_table(header, rows, ["<", *">" * 9, "<"])

    def summary(self, results):
        lines = []
        for r in results:
            if r.run.name != "rerun-list" and r.extra.get("writes"):
                lines.append(f"{r.run.name}: writes sent: " + ", ".join(
                    f"{op} {n:,}" for op, n in r.extra["writes"].items()))
        return lines

    def to_json(self, results):
        listing = next((r for r in results if r.run.name == "rerun-list" and r.ok), None)
        runs = []
        for r in results:
            doc = r.to_json()
            doc.update(ops=r.ops, **{k: v for k, v in r.extra.items()})
            if listing and r.run.name != "rerun-list":
                doc.update(times_listing=round(r.wall_s / listing.wall_s, 2),
                           target_met=self.verdict(r, listing))
            runs.append(doc)
        return {"scenario": self.name, "users": self.args.rerun_users,
                "shape": self.args.shape, "target_users": len(self.state or {}), "runs": runs}


class RollbackScenario(Scenario):
    """Put back 5 % of a pool as it is in production, damaged behind its back: changed, added
    and removed attributes, a changed email, users disabled and enabled, memberships removed
    and added, users deleted; users of every status cbr writes (UNCONFIRMED, CONFIRMED,
    linked, FORCE_CHANGE_PASSWORD, RESET_REQUIRED, COMPROMISED). Federated users are never
    damaged: cbr never writes them (nobody can create them, and their attributes come from
    their provider), so no rollback could undo it. `cbr restore --update-existing` should
    send exactly the calls that undo the damage, about as fast as the busiest category
    allows, and `cbr verify` should then find the pool as the backup has it (a deleted user
    comes back with a new sub and the status restore sets, which is restored, not damage)."""

    name = "rollback"
    # Share of the damaged users per kind of damage (they add up to 1).
    KINDS = [("attr-change", 0.20), ("attr-delete", 0.08), ("attr-add", 0.08), ("email", 0.04),
             ("disable", 0.20), ("enable", 0.10), ("unjoin", 0.16), ("join", 0.10),
             ("delete", 0.04)]
    # Statuses whose users restore confirms with a random permanent password (the default
    # --password-mode): one AdminSetUserPassword after AdminCreateUser.
    CONFIRMED_ON_RESTORE = ("CONFIRMED", "RESET_REQUIRED", "COMPROMISED")
    JOIN_GROUP = "editors"  # one of production_pool.DEFAULT_GROUPS

    def __init__(self, args):
        super().__init__(args)
        self.client = None
        self.pool = None
        self.state = None
        self.backup = None
        self.want = {}  # key -> the user as seeded (and backed up)
        self.expected = {}  # op -> calls needed to undo the damage
        self.damage = {}  # kind -> keys of the damaged users
        self.damage_by_status = {}  # status (or "CONFIRMED (linked)") -> damaged users

    def runs(self):
        n = self.args.rollback_users
        runs = [Run("rollback", f"cbr restore --update-existing, {n:,} users, "
                    f"{self.args.damage_pct:g} % damaged", n, "cbr", ["--update-existing"])]
        if self.args.cbr_baseline:
            runs.insert(0, Run("rollback-before", f"baseline cbr restore --update-existing, "
                               f"{n:,} users", n, "cbr-baseline", ["--update-existing"]))
        return runs

    def execute(self, run):
        """Each run after the first finds the same damage again (the same users, chosen the
        same way from the pool the run before put back)."""
        if getattr(self, "rolled_back", False):
            self.damage_pool()
            self.env.forget()
            self.env.warm(self.pool)
        self.rolled_back = True
        return super().execute(run)

    def key(self, user):
        """Who a user is across a rollback: the email or phone number people sign in with
        (a restored user gets a new generated username there), else the username."""
        sign_in = PRODUCTION.sign_in_attribute(self.args.shape)
        attrs = {a["Name"]: a["Value"] for a in user["Attributes"]}
        return (attrs.get(sign_in) if sign_in else None) or user["Username"]

    def prepare(self, runs):
        n = self.args.rollback_users
        self.client = moto_client(self.env.moto_url)
        self.pool, users, self.state = populate_production(
            self.env.moto_url, f"bench-rollback-{n}", n, 5, self.args.shape)
        self.want = {self.key(u): u for u in users}
        self.backup = backup_directly(self, self.pool, os.path.join(self.tmp, "source"))
        code, tail = self.verify()
        if code != 0:
            raise SystemExit(f"bench: cbr verify of the pool as backed up exited {code}: {tail}")
        self.damage_pool()
        self.env.forget()  # the layer indexed the pool before the damage
        self.verify_before, tail = self.verify()
        log(f"cbr verify of the damaged pool: exit code {self.verify_before} (3 expected: "
            f"differences): {tail}")
        if self.verify_before != 3:
            raise SystemExit("bench: cbr verify does not see the damage")
        self.env.warm(self.pool)

    def damage_pool(self):
        """Damage the pool directly on moto and work out the calls that undo it."""
        current = {}  # key -> the username the pool has for that user now
        for page in self.client.get_paginator("list_users").paginate(UserPoolId=self.pool):
            for u in page["Users"]:
                current[self.key(u)] = u["Username"]
        rng = random.Random(6)
        keys = sorted(k for k in current if k in self.want)
        rng.shuffle(keys)
        writable = [k for k in keys if self.want[k]["UserStatus"] != "EXTERNAL_PROVIDER"]
        total = round(len(keys) * self.args.damage_pct / 100)
        taken = set()

        def attrs(k):
            return {a["Name"]: a["Value"] for a in self.want[k]["Attributes"]}

        def pick(kind, count, fits):
            chosen = [k for k in writable if k not in taken and fits(k)][:count]
            taken.update(chosen)
            self.damage[kind] = chosen
            return chosen

        counts = {kind: round(total * share) for kind, share in self.KINDS}
        counts["delete"] = max(1, counts["delete"])  # a few users deleted, at least one
        counts["attr-change"] = total - sum(n for k, n in counts.items() if k != "attr-change")
        expected = {}

        def expect(op, k=1):
            expected[op] = expected.get(op, 0) + k

        ops = []
        for k in pick("attr-change", counts["attr-change"], lambda k: "custom:tier" in attrs(k)):
            ops.append(("update", k, [{"Name": "custom:tier", "Value": "tier-damaged"}]))
            expect("AdminUpdateUserAttributes")
        for k in pick("attr-delete", counts["attr-delete"], lambda k: "given_name" in attrs(k)):
            ops.append(("delete-attrs", k, ["given_name"]))
            expect("AdminUpdateUserAttributes")
        for k in pick("attr-add", counts["attr-add"], lambda k: "nickname" not in attrs(k)):
            ops.append(("update", k, [{"Name": "nickname", "Value": "damaged"}]))
            expect("AdminDeleteUserAttributes")
        for n, k in enumerate(pick("email", counts["email"],
                                   lambda k: attrs(k).get("email_verified") == "true")):
            # moto keeps email_verified as it was; the rollback must send the backup's email
            # with email_verified=true, or Cognito would send a verification code.
            ops.append(("update", k, [{"Name": "email", "Value": f"damaged.{n}@example.net"}]))
            expect("AdminUpdateUserAttributes")
        for k in pick("disable", counts["disable"], lambda k: self.want[k]["Enabled"]):
            ops.append(("disable", k, None))
            expect("AdminEnableUser")
        for k in pick("enable", counts["enable"], lambda k: not self.want[k]["Enabled"]):
            ops.append(("enable", k, None))
            expect("AdminDisableUser")
        for k in pick("unjoin", counts["unjoin"], lambda k: self.want[k]["Groups"]):
            ops.append(("unjoin", k, sorted(self.want[k]["Groups"])[0]))
            expect("AdminAddUserToGroup")
        for k in pick("join", counts["join"],
                      lambda k: self.JOIN_GROUP not in self.want[k]["Groups"]):
            ops.append(("join", k, self.JOIN_GROUP))
            expect("AdminRemoveUserFromGroup")
        for k in pick("delete", counts["delete"], lambda k: True):
            ops.append(("delete", k, None))
            want = self.want[k]
            expect("AdminCreateUser")
            if want["UserStatus"] in self.CONFIRMED_ON_RESTORE:
                expect("AdminSetUserPassword")  # --password-mode permanent (the default)
            if not want["Enabled"]:
                expect("AdminDisableUser")
            if want["Groups"]:
                expect("AdminAddUserToGroup", len(want["Groups"]))
        self.expected = expected
        self.damage_by_status = {}
        for k in taken:
            kind = kind_of(self.want[k])
            self.damage_by_status[kind] = self.damage_by_status.get(kind, 0) + 1

        c, pool = self.client, self.pool

        def apply(op):
            kind, k, arg = op
            u = current[k]
            if kind == "update":
                c.admin_update_user_attributes(UserPoolId=pool, Username=u, UserAttributes=arg)
            elif kind == "delete-attrs":
                c.admin_delete_user_attributes(UserPoolId=pool, Username=u, UserAttributeNames=arg)
            elif kind == "disable":
                c.admin_disable_user(UserPoolId=pool, Username=u)
            elif kind == "enable":
                c.admin_enable_user(UserPoolId=pool, Username=u)
            elif kind == "unjoin":
                c.admin_remove_user_from_group(UserPoolId=pool, Username=u, GroupName=arg)
            elif kind == "join":
                c.admin_add_user_to_group(UserPoolId=pool, Username=u, GroupName=arg)
            elif kind == "delete":
                c.admin_delete_user(UserPoolId=pool, Username=u)

        with ThreadPoolExecutor(16) as executor:
            list(executor.map(apply, ops))
        log(f"damaged {len(taken):,} of {len(keys):,} users of {pool}: " + ", ".join(
            f"{k} {len(v)}" for k, v in self.damage.items()))
        log("  by status: " + ", ".join(f"{k} {n}" for k, n in sorted(
            self.damage_by_status.items(), key=lambda kv: -kv[1])))
        short = [k for k, n in counts.items() if len(self.damage[k]) < n]
        if short:
            log(f"  (fewer users than planned fit {short}: the pool is too small)")
        missing = {kind_of(self.want[k]) for k in writable} - set(self.damage_by_status)
        if missing:
            log(f"  (no damaged user of {sorted(missing)}: the pool is too small)")

    def verify(self):
        """`cbr verify` of the pool against the backup, through the layer; its exit code and
        the last lines of its output."""
        done = subprocess.run([self.tools["cbr"], "verify", "-p", self.pool, "--in", self.backup,
                               "--endpoint-url", self.env.url, "--region", REGION],
                              env=child_env(self.tmp), cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=self.args.timeout)
        return done.returncode, " | ".join((done.stdout.strip() or done.stderr.strip())
                                           .splitlines()[-3:])

    def argv(self, run, out):
        return [self.tools[run.tool], "restore", "-p", self.pool, "-i", self.backup,
                "--endpoint-url", self.env.url, "--region", REGION, "--no-progress",
                "--report", os.path.join(self.tmp, f"{run.name}.report.json"),
                "--sub-map", os.path.join(self.tmp, f"{run.name}.submap.json"), *run.extra]

    def check(self, run, out, stdout_path):
        result = self.current
        sent = {op: answered(result.ops, op) for op in WRITE_OPS if answered(result.ops, op)}
        result.extra.update(expected=self.expected, sent=sent,
                            admin_get_user=answered(result.ops, "AdminGetUser"),
                            messages=result.layer_stats.get("messages", []),
                            report={k: v for k, v in read_report(os.path.join(
                                self.tmp, f"{run.name}.report.json")).items() if k != "raw"})
        # cbr verify afterwards, through the layer (not part of the timing).
        code, tail = self.verify()
        result.extra["verify_exit_code"] = code
        problems = []
        if code != 0:
            problems.append(f"cbr verify exited {code}: {tail}")
        if result.extra["messages"]:
            problems.append(f"{len(result.extra['messages'])} messages Cognito would have sent "
                            f"(first: {result.extra['messages'][0]})")
        if result.extra["report"]["failed"]:
            problems.append(f"{len(result.extra['report']['failed'])} failed in the report")
        if problems:
            raise ValueError("; ".join(problems))
        return run.pool_size

    def ceiling(self, result):
        return RestoreScenario.ceiling(self, result)

    def verdict(self, r):
        """Calls sent = calls needed, and within 1.3 × the busiest category's ceiling."""
        seconds, _ = self.ceiling(r)
        return r.extra.get("sent") == self.expected and r.wall_s <= 1.3 * seconds

    categories = staticmethod(RestoreScenario.categories)

    def headline(self):
        return (f"scenario rollback: latency {self.args.latency_ms:g} ms per request, quotas on; "
                f"{self.args.damage_pct:g} % of a {self.args.rollback_users:,}-user "
                f"{self.args.shape} pool as it is in production damaged directly on moto, then `cbr restore --update-existing` and `cbr verify`; "
                "target: calls sent = calls needed, wall time within 1.3 × the busiest "
                "category's calls / its quota")

    def table(self, results):
        blocks = []
        for r in results:
            seconds, cat = self.ceiling(r)
            header = ["run", "wall s", "ceiling s", "× ceiling", "busiest category",
                      "AdminGetUser", "messages", "throttled", "verify exit", "target met", "ok"]
            blocks.append(format_table(header, [[
                r.run.label, f"{r.wall_s:.2f}", f"{seconds:.2f}",
                f"{r.wall_s / seconds:.2f}" if seconds else "-", str(cat),
                str(r.extra.get("admin_get_user", "-")), str(len(r.extra.get("messages", []))),
                str(r.throttled), str(r.extra.get("verify_exit_code", "-")),
                ("yes" if self.verdict(r) else "no") if r.ok else "-", ok_cell(r)]],
                ["<", *">" * 3, "<", *">" * 5, "<"]))
            ops = sorted(set(self.expected) | set(r.extra.get("sent", {})))
            rows = [[op, str(self.expected.get(op, 0)), str(r.extra.get("sent", {}).get(op, 0)),
                     "" if self.expected.get(op, 0) == r.extra.get("sent", {}).get(op, 0)
                     else "DIFFERENT"] for op in ops]
            rows.append(["total", str(sum(self.expected.values())),
                         str(sum(r.extra.get("sent", {}).values())), ""])
            blocks.append("writes needed to undo the damage, and sent:\n\n" + format_table(
                ["operation", "expected", "sent", ""], rows, ["<", ">", ">", "<"]))
        damage = ", ".join(f"{k} {len(v):,}" for k, v in self.damage.items())
        by_status = ", ".join(f"{k} {n:,}" for k, n in sorted(self.damage_by_status.items(),
                                                             key=lambda kv: -kv[1]))
        return "\n\n".join(blocks) + f"\n\ndamage: {damage}\ndamaged users by status: {by_status}"

    def to_json(self, results):
        runs = []
        for r in results:
            seconds, cat = self.ceiling(r)
            doc = r.to_json()
            doc.update(ops=r.ops, ceiling_s=round(seconds, 3), busiest_category=cat,
                       target_met=r.ok and self.verdict(r), **{k: v for k, v in r.extra.items()})
            runs.append(doc)
        return {"scenario": self.name, "users": self.args.rollback_users,
                "shape": self.args.shape,
                "damage": {k: len(v) for k, v in self.damage.items()},
                "damage_by_status": self.damage_by_status,
                "expected": self.expected, "runs": runs}


# ---------------------------------------------------------------------------------------
# Scale: a synthetic pool of millions of users (tests/support/layer/synthetic.py)

# Like MEASURE_HELPER (a fresh `python3 -S` forks the measured child), but it prints the
# child's pid first, so that the benchmark can watch the files the child holds open and kill
# it, and it reports the child's CPU time (user + system) too.
SCALE_HELPER = r"""
import os, sys, time
out, err, timeout, argv = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
started = time.monotonic()
pid = os.fork()
if pid == 0:
    fd_in = os.open(os.devnull, os.O_RDONLY)
    fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fd_err = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd_in, 0); os.dup2(fd_out, 1); os.dup2(fd_err, 2)
    try:
        os.execvp(argv[0], argv)
    finally:
        os.write(2, ("cannot run " + argv[0] + "\\n").encode())
        os._exit(127)
print(pid, flush=True)
import json, signal
timed_out = []
signal.signal(signal.SIGALRM, lambda *_: (timed_out.append(1), os.kill(pid, signal.SIGKILL)))
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, rusage = os.wait4(pid, 0)
wall = time.monotonic() - started
signal.setitimer(signal.ITIMER_REAL, 0)
print(json.dumps({"wall_s": wall, "exit_code": os.waitstatus_to_exitcode(status),
                  "peak_rss_kib": rusage.ru_maxrss, "cpu_s": rusage.ru_utime + rusage.ru_stime,
                  "timed_out": bool(timed_out)}))
"""
DISK_POLL_S = 0.05


def tree_bytes(path, seen):
    """Bytes of the regular files under `path` (each (device, inode) once, into `seen`)."""
    total = 0
    try:
        entries = list(os.scandir(path))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += tree_bytes(entry.path, seen)
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        except OSError:  # gone meanwhile
            pass
    return total


def disk_bytes(dirs, pid=None):
    """Bytes on disk the run holds: the files under `dirs`, and the files process `pid` holds
    open that have no name any more (spools made with tempfile_in: unlinked at once, so no
    directory listing shows them)."""
    seen = set()
    total = sum(tree_bytes(d, seen) for d in dirs)
    if pid is not None:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if st.st_nlink == 0 and (st.st_mode & 0o170000) == 0o100000 and \
                    (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


@dataclass
class ScaleMeasurement:
    wall_s: float
    exit_code: int
    peak_rss_kib: int
    cpu_s: float
    timed_out: bool
    peak_bytes: int = 0  # the most the run held on disk at once (TMPDIR, output, unlinked)
    final_bytes: int = 0  # what stays once it ended
    killed: bool = False  # by kill_when

    @property
    def peak_temp_bytes(self):
        return max(0, self.peak_bytes - self.final_bytes)


def measure_scale(argv, env, stdout_path, stderr_path, timeout, dirs, kill_when=None):
    """Run argv as MEASURE_HELPER does and poll, every 50 ms, the bytes it holds on disk in
    `dirs` (and in unlinked open files); SIGKILL it as soon as `kill_when()` is true."""
    helper = subprocess.Popen([sys.executable, "-S", "-c", SCALE_HELPER, stdout_path,
                               stderr_path, str(timeout), *argv],
                              env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(helper.stdout.readline())
    peak, killed = 0, False
    while helper.poll() is None:
        peak = max(peak, disk_bytes(dirs, pid))
        if kill_when and not killed and kill_when():
            try:
                os.kill(pid, 9)
                killed = True
            except ProcessLookupError:
                pass
        time.sleep(DISK_POLL_S)
    out, err = helper.communicate()
    if helper.returncode != 0 or not out.strip():
        raise SystemExit(f"bench: the measuring helper failed: {err}")
    final = disk_bytes(dirs)
    return ScaleMeasurement(**json.loads(out.strip().splitlines()[-1]),
                            peak_bytes=max(peak, final), final_bytes=final, killed=killed)


def count_records(path):
    """User records in a cbr data file (plain or .gz), read as a stream: it is pretty-printed
    with two-space indents, so each record has one line starting with four spaces and
    "Username"."""
    n = 0
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        for line in f:
            if line.startswith(b'    "Username": '):
                n += 1
    return n


class ScaleScenario(Scenario):
    """cbr on a pool of a million users (--users), which moto cannot hold: a synthetic pool of
    the layer (tests/support/layer/synthetic.py), generated on demand, production-shaped
    (every status, federated and linked users, disabled users, 20 groups). For the build
    under test and the --cbr-baseline, side by side: the backup (to a .json, to a .json.gz,
    and to moto's S3 through AWS_ENDPOINT_URL_S3, where only TMPDIR is local), a backup killed
    at about half way and resumed, and a restore's reading of the pool (a dry run into the same
    pool).
    Measured for each: wall time against the quota's ceiling, the child's CPU seconds per
    100,000 users, its peak RSS, and the peak of what it held on disk beyond its final output
    (TMPDIR, fresh for each run, the output's folder, and spools it unlinked at once) per user."""

    name = "scale"
    POOL = "us-east-1_Scale"
    SEED = "42"
    STEPS = {"backup": "cbr backup", "backup-gz": "cbr backup to a .json.gz",
             "backup-s3": "cbr backup to S3 (moto's)",
             "resume": "cbr backup killed at ~50 %, then --resume",
             "dry-run": "cbr restore --dry-run (reads the whole pool)"}

    def __init__(self, args):
        super().__init__(args)
        self.url = None  # the layer holding the synthetic pool
        self.layer_options = []
        self.members = {}  # group -> members (the layer counts them)
        self.backups = {}  # tool -> the folder of its backup run's output
        self.step = {}  # run name -> "backup" / "resume" / "dry-run"

    @property
    def users(self):
        return self.args.scale_users

    @property
    def rate(self):
        """ListUsers calls a second the layer allows (None: no quotas)."""
        return None if self.args.no_quotas else 30 * self.args.quota_scale

    def runs(self):
        n = self.users
        builds = [("cbr", "", "")]
        if self.args.cbr_baseline:
            builds.append(("cbr-baseline", "-before", "baseline "))
        runs = []
        for step, what in self.STEPS.items():
            for tool, suffix, prefix in builds:
                run = Run(f"scale-{step}{suffix}", f"{prefix}{what}, {n:,} users", n, tool)
                self.step[run.name] = step
                runs.append(run)
        return runs

    # With --no-quotas the layer enforces nothing, and its GetProvisionedLimit answers this
    # many times the default rates, so that cbr does not pace itself at them either.
    UNLIMITED_SCALE = 1000

    def prepare(self, runs):
        """A layer of its own, holding the synthetic pool (and in front of the same moto, which
        the pool never reaches): latency as the other scenarios, quotas × --quota-scale or
        none (--no-quotas)."""
        self.layer_options = ["--synthetic-pool", f"{self.POOL}={self.users}:{self.SEED}",
                              "--latency-ms", f"{self.args.latency_ms:g}"]
        if self.args.no_quotas:
            self.layer_options += ["--quota-scale", str(self.UNLIMITED_SCALE)]
        else:
            self.layer_options += ["--quotas", "--quota-scale", f"{self.args.quota_scale:g}"]
        layer = subprocess.Popen([sys.executable, LAYER, "--upstream", self.env.moto_url,
                                  *self.layer_options], stdout=subprocess.PIPE, text=True)
        self.env.procs.append(layer)
        line = layer.stdout.readline()
        if not line.startswith("LISTENING "):
            raise SystemExit("bench: the layer with the synthetic pool did not start")
        self.url = "http://" + line.split()[1]
        started = time.monotonic()
        with urllib.request.urlopen(self.url + "/_layer/synthetic?members=1", timeout=600) as r:
            info = json.load(r)[self.POOL]
        self.members = info["members"]
        log(f"layer at {self.url} ({' '.join(self.layer_options)}): {self.users:,} synthetic "
            f"users, {len(self.members)} groups, {sum(self.members.values()):,} memberships "
            f"(counted in {time.monotonic() - started:.1f} s)")

    def userlist_pages(self):
        """ListUsers and ListUsersInGroup pages a whole listing needs at least: the users,
        then every group's members, 60 a page."""
        return -(-self.users // 60) + sum(-(-m // 60) for m in self.members.values())

    def ceiling_s(self):
        """users / (30 × 60 × quota scale): the ListUsers quota's ceiling (None: no quotas)."""
        return self.users / (60 * self.rate) if self.rate else None

    def stats(self):
        with urllib.request.urlopen(self.url + "/_layer/stats") as r:
            return json.load(r)

    def supports_resume(self, tool):
        help_text = subprocess.run([self.tools[tool], "backup", "--help"], capture_output=True,
                                   text=True, env=child_env(self.tmp), stdin=subprocess.DEVNULL)
        return "--resume" in help_text.stdout + help_text.stderr

    def timeout(self):
        """The longest a run may take: the --timeout, or three times the time the quota needs
        for its UserList pages, whichever is longer."""
        floor = self.userlist_pages() / self.rate if self.rate else 0
        return max(self.args.timeout, 3 * floor)

    def backup_argv(self, tool, out, *extra):
        return [self.tools[tool], "backup", "-p", self.POOL, "-o", out, "--endpoint-url",
                self.url, "--region", REGION, "--no-progress", *extra]

    def measure_run(self, run, run_dir, argv, label, kill_when=None):
        """One child of the run: a fresh TMPDIR, the layer's counters reset, measured."""
        tmpdir = os.path.join(run_dir, f"tmp-{label}")
        os.makedirs(tmpdir)
        env = dict(child_env(self.tmp), TMPDIR=tmpdir, AWS_ENDPOINT_URL_S3=self.env.moto_url)
        time.sleep(self.args.settle_s)  # let the quota buckets fill up again
        urllib.request.urlopen(urllib.request.Request(
            self.url + "/_layer/reset-stats", data=b"", method="POST")).read()
        m = measure_scale(argv, env, os.path.join(run_dir, f"{label}.stdout"),
                          os.path.join(run_dir, f"{label}.stderr"), self.timeout(),
                          [tmpdir, os.path.join(run_dir, "out")], kill_when)
        return m, self.stats()

    def failed(self, result, m, run_dir, label):
        """The note for a child that timed out or exited non-zero, or None."""
        if not m.timed_out and m.exit_code == 0:
            return None
        with open(os.path.join(run_dir, f"{label}.stderr"), errors="replace") as f:
            tail = f.read()[-2000:].strip()
        log(f"{result.run.name} failed; its stderr ends with:\n{tail}")
        return ("timed out" if m.timed_out else f"exit code {m.exit_code}") + \
            (f": {tail.splitlines()[-1]}" if tail else "")

    def execute(self, run):
        run_dir = os.path.join(self.tmp, run.name)
        out_dir = os.path.join(run_dir, "out")
        os.makedirs(out_dir)
        step = self.step[run.name]
        result = Result(run, ok=False)
        if step == "resume" and not self.supports_resume(run.tool):
            result.ok, result.note = True, "n/a: `cbr backup --help` has no --resume"
            result.extra["na"] = True
            return result
        out = os.path.join(out_dir, "backup.json.gz" if step == "backup-gz" else "backup.json")
        if step == "backup-s3":
            out = f"s3://{self.bucket()}/{run.name}/backup.json"
        if step == "dry-run":
            source = self.backups.get(run.tool) or self.backup_unmeasured(run.tool)
            for name in os.listdir(source):  # the backup beside it, as hard links
                try:
                    os.link(os.path.join(source, name), os.path.join(out_dir, name))
                except OSError:
                    shutil.copy2(os.path.join(source, name), out_dir)
            argv = [self.tools[run.tool], "restore", "-p", self.POOL, "-i", out, "--dry-run",
                    "--endpoint-url", self.url, "--region", REGION, "--no-progress"]
        else:
            argv = self.backup_argv(run.tool, out)
        if step == "resume":
            # Prefixes keep their pages only once every group's members are listed, so a
            # kill at half of all UserList pages would land before any prefix finished: the
            # kill comes once half the ListUsers pages after the members are answered.
            members_pages = sum(-(-m // 60) for m in self.members.values())
            half_users = -(-self.users // 60) // 2

            def halfway():
                """The members listed and half the users' ListUsers pages answered."""
                try:
                    ops = self.stats()["ops"]
                except OSError:
                    return False
                return (answered(ops, "ListUsersInGroup") >= members_pages and
                        answered(ops, "ListUsers") >= half_users)
            first, stats = self.measure_run(run, run_dir, argv, "first", kill_when=halfway)
            result.extra.update(first_wall_s=round(first.wall_s, 3), first_killed=first.killed,
                                first_userlist_calls=answered(stats["ops"], "ListUsers") +
                                answered(stats["ops"], "ListUsersInGroup"),
                                first_peak_temp_bytes=first.peak_temp_bytes)
            if not first.killed:
                result.note = "the first run ended before half way: " + \
                    (self.failed(result, first, run_dir, "first") or "finished")
                return result
            argv = self.backup_argv(run.tool, out, "--resume")
        m, stats = self.measure_run(run, run_dir, argv, "run")
        result.wall_s, result.peak_rss_mib = m.wall_s, m.peak_rss_kib / 1024
        result.throttled = stats["total_throttled"]
        result.list_users_calls = answered(stats["ops"], "ListUsers")
        result.ops, result.layer_stats = stats["ops"], stats
        result.extra.update(cpu_s=round(m.cpu_s, 3), peak_temp_bytes=m.peak_temp_bytes,
                            peak_bytes=m.peak_bytes, final_bytes=m.final_bytes,
                            userlist_calls=answered(stats["ops"], "ListUsers") +
                            answered(stats["ops"], "ListUsersInGroup"),
                            exit_code=m.exit_code)
        result.note = self.failed(result, m, run_dir, "run") or ""
        if result.note:
            return result
        try:
            result.users = self.check(run, out, stats)
            result.ok = True
        except (ValueError, OSError) as e:
            result.note = str(e)
            log(f"{run.name}: {e}")
        if result.ok and step == "backup":
            self.backups[run.tool] = out_dir
        return result

    def s3(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.env.moto_url, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def bucket(self):
        """The bucket of the S3 backups, in moto (made on first use)."""
        if not getattr(self, "_bucket", None):
            self._bucket = "cbr-bench-scale"
            self.s3().create_bucket(Bucket=self._bucket)
        return self._bucket

    def count_s3_records(self, url):
        """User records in a data file in S3, read as a stream (as count_records does)."""
        bucket, key = url[len("s3://"):].split("/", 1)
        body = self.s3().get_object(Bucket=bucket, Key=key)["Body"]
        return sum(1 for line in body.iter_lines() if line.startswith(b'    "Username": '))

    def backup_unmeasured(self, tool):
        """A backup for a dry run whose build's backup run was not asked for (--only)."""
        folder = os.path.join(self.tmp, f"backup-{tool}")
        os.makedirs(folder)
        log(f"backing up {self.POOL} with {tool} for its dry run (not measured)")
        done = subprocess.run(self.backup_argv(tool, os.path.join(folder, "backup.json")),
                              env=child_env(self.tmp), cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=self.timeout())
        if done.returncode != 0:
            raise SystemExit(f"bench: backing up {self.POOL} failed: {done.stderr[-2000:]}")
        self.backups[tool] = folder
        return folder

    def check(self, run, out, stats):
        """Backups hold every user once (a record count, read as a stream, and the manifest's
        user_count when there is one); a dry run sent no write."""
        if self.step[run.name] == "dry-run":
            writes = {op: answered(stats["ops"], op) for op in WRITE_OPS
                      if answered(stats["ops"], op)}
            if writes:
                raise ValueError(f"the dry run wrote: {writes}")
            return self.users
        if out.startswith("s3://"):
            records = self.count_s3_records(out)
            if records != self.users:
                raise ValueError(f"{records:,} records in the backup, the pool has {self.users:,}")
            return records
        records = count_records(out)
        manifest = os.path.join(os.path.dirname(out), "backup.meta.json")
        if os.path.exists(manifest):
            with open(manifest) as f:
                counted = json.load(f).get("user_count", records)
            if counted != records:
                raise ValueError(f"the manifest says {counted} users, the file holds {records}")
        if records != self.users:
            raise ValueError(f"{records:,} records in the backup, the pool has {self.users:,}")
        return records

    # -- reporting --------------------------------------------------------------------------
    def cells(self, r):
        """The table's cells of one run (n/a for a step the build lacks)."""
        if r.extra.get("na"):
            return [r.run.label, *["n/a"] * 9, r.note]
        cpu, temp = r.extra.get("cpu_s"), r.extra.get("peak_temp_bytes")
        ceiling = self.ceiling_s()
        per_100k = self.users / 100_000
        wall = r.wall_s + r.extra.get("first_wall_s", 0)  # a resume: both parts
        return [r.run.label, f"{r.wall_s:.1f}", f"{ceiling:.1f}" if ceiling else "-",
                f"{100 * ceiling / wall:.1f}" if ceiling and wall else "-",
                f"{r.extra.get('userlist_calls', 0):,}", str(r.throttled),
                f"{cpu:.1f}" if cpu is not None else "-",
                f"{cpu / per_100k:.2f}" if cpu is not None else "-",
                f"{r.peak_rss_mib:.1f}",
                f"{temp / self.users:.0f}" if temp is not None else "-", ok_cell(r)]

    def headline(self):
        n = self.users
        quotas = ("quotas off (--no-quotas; GetProvisionedLimit answers "
                  f"{self.UNLIMITED_SCALE:,} × the defaults): cbr's own costs" if not self.rate else
                  f"quotas × {self.args.quota_scale:g} (ListUsers {self.rate:g}/s: ceiling "
                  f"{n:,} / {60 * self.rate:,.0f} users/s = {self.ceiling_s():.1f} s; with the "
                  f"groups' members, {self.userlist_pages():,} UserList pages take at least "
                  f"{self.userlist_pages() / self.rate:.1f} s)")
        return (f"scenario scale: a synthetic pool of {n:,} users (the layer's, "
                f"production-shaped, {len(self.members)} groups, "
                f"{sum(self.members.values()):,} memberships), latency "
                f"{self.args.latency_ms:g} ms per request, {quotas}; TMPDIR fresh for each run")

    def table(self, results):
        header = ["run", "wall s", "ceiling s", "% ceiling", "UserList calls", "throttled",
                  "CPU s", "CPU s/100k users", "peak RSS MiB", "peak temp B/user", "ok"]
        return (format_table(header, [self.cells(r) for r in results], ["<", *">" * 9, "<"]) +
                "\n\n(a resume row measures the resumed run; its % ceiling counts the killed "
                "part's wall time too)")

    def summary(self, results):
        lines = []
        by = {r.run.name: r for r in results}
        for r in results:
            if self.step[r.run.name] == "resume" and r.ok and not r.extra.get("na"):
                total = r.extra["first_wall_s"] + r.wall_s
                backup = by.get(r.run.name.replace("resume", "backup"))
                lines.append(
                    f"{r.run.name}: killed after {r.extra['first_wall_s']:.1f} s "
                    f"({r.extra['first_userlist_calls']:,} UserList pages), resumed in "
                    f"{r.wall_s:.1f} s: {total:.1f} s in all"
                    + (f", {total / backup.wall_s:.2f} × the uninterrupted backup"
                       if backup and backup.ok and backup.wall_s else ""))
        for step in self.STEPS:
            new, old = by.get(f"scale-{step}"), by.get(f"scale-{step}-before")
            if not (new and old and new.ok and old.ok) or new.extra.get("na") or \
                    old.extra.get("na"):
                continue
            ratios = [("wall", new.wall_s, old.wall_s),
                      ("CPU", new.extra["cpu_s"], old.extra["cpu_s"]),
                      ("peak RSS", new.peak_rss_mib, old.peak_rss_mib),
                      ("peak temp", new.extra["peak_temp_bytes"], old.extra["peak_temp_bytes"])]
            lines.append(f"{step}, this build against the baseline: " + ", ".join(
                f"{what} × {a / b:.2f}" if b else f"{what} {a:g} (baseline 0)"
                for what, a, b in ratios))
        return lines

    def to_json(self, results):
        runs = []
        for r in results:
            doc = r.to_json()
            doc.update(step=self.step[r.run.name], ops=r.ops,
                       **{k: v for k, v in r.extra.items()})
            if r.extra.get("cpu_s") is not None:
                doc["cpu_s_per_100k_users"] = round(r.extra["cpu_s"] / (self.users / 100_000), 3)
                doc["peak_temp_bytes_per_user"] = round(r.extra["peak_temp_bytes"] / self.users, 1)
            runs.append(doc)
        return {"scenario": self.name, "users": self.users, "pool": self.POOL,
                "scale_layer_options": self.layer_options, "groups": self.members,
                "ceiling_s": self.ceiling_s(), "userlist_pages": self.userlist_pages(),
                "runs": runs}


class ShardsScenario(ScaleScenario):
    """n shards of one synthetic pool (--shards-users, 20 groups) started together with
    default flags, as a CI matrix without `max-parallel` starts them, through one layer that
    enforces one account's quotas: they share the ListUsers quota without knowing of each
    other. For n = 1 (one whole backup), 2, 3 and 8, this build and the --cbr-baseline: wall
    time until the last shard is done, against the quota's ceiling for the UserList calls
    they made and for those one whole backup made; the share of their UserList calls that
    were throttled; and their UserList calls against one whole backup's."""

    name = "shards"
    POOL = "us-east-1_Shards"
    COUNTS = (1, 2, 3, 8)

    @property
    def users(self):
        return self.args.shards_users

    @property
    def rate(self):
        return 30 * self.args.quota_scale

    def runs(self):
        builds = [("cbr", "")] + ([("cbr-baseline", "-before")] if self.args.cbr_baseline else [])
        runs = []
        for n in self.COUNTS:
            for tool, suffix in builds:
                what = "one whole backup" if n == 1 else f"{n} shards started together"
                label = ("baseline " if suffix else "") + f"{what}, {self.users:,} users"
                runs.append(Run(f"shards-{n}{suffix}", label, self.users, tool))
        return runs

    def prepare(self, runs):
        self.args.no_quotas = False
        super().prepare(runs)
        self.whole = {}  # tool -> UserList calls of its whole backup

    def execute(self, run):
        n = int(run.name.split("-")[1])
        run_dir = os.path.join(self.tmp, run.name)
        os.makedirs(os.path.join(run_dir, "out"))
        out = os.path.join(run_dir, "out", "backup.json")
        time.sleep(self.args.settle_s)
        urllib.request.urlopen(urllib.request.Request(
            self.url + "/_layer/reset-stats", data=b"", method="POST")).read()
        started = time.monotonic()
        children = []
        for k in range(1, n + 1):
            extra = ["--shard", f"{k}/{n}"] if n > 1 else []
            err = open(os.path.join(run_dir, f"shard-{k}.stderr"), "w")
            children.append((subprocess.Popen(self.backup_argv(run.tool, out, *extra),
                                              env=child_env(self.tmp), cwd=ROOT,
                                              stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=err), err))
        codes = []
        for child, err in children:
            try:
                codes.append(child.wait(timeout=self.timeout()))
            except subprocess.TimeoutExpired:
                child.kill()
                codes.append("timed out")
            err.close()
        result = Result(run, ok=False, wall_s=time.monotonic() - started)
        stats = self.stats()
        ops = stats["ops"]
        calls = answered(ops, "ListUsers") + answered(ops, "ListUsersInGroup")
        throttled = sum(ops.get(op, {}).get("throttled", 0)
                        for op in ("ListUsers", "ListUsersInGroup"))
        result.ops, result.layer_stats, result.throttled = ops, stats, throttled
        result.list_users_calls = answered(ops, "ListUsers")
        result.extra.update(userlist_calls=calls, userlist_throttled=throttled,
                            exit_codes=codes)
        if n == 1:
            self.whole[run.tool] = calls
        if any(c != 0 for c in codes):
            result.note = f"exit codes {codes}"
            return result
        files = [out] if n == 1 else [os.path.join(run_dir, "out", f"backup-{k}.json")
                                      for k in range(1, n + 1)]
        result.users = sum(count_records(f) for f in files)
        if result.users != self.users:
            result.note = f"{result.users:,} records in the set, the pool has {self.users:,}"
            return result
        result.ok = True
        return result

    def cells(self, r):
        calls, throttled = r.extra.get("userlist_calls", 0), r.extra.get("userlist_throttled", 0)
        ceiling = calls / self.rate
        whole = self.whole.get(r.run.tool)
        whole_ceiling = whole / self.rate if whole else None
        return [r.run.label, f"{r.wall_s:.1f}", f"{ceiling:.1f}",
                f"{r.wall_s / ceiling:.3f}" if ceiling else "-",
                f"{r.wall_s / whole_ceiling:.3f}" if whole_ceiling else "-",
                f"{calls:,}", f"{calls / whole:.3f}" if whole else "-",
                f"{throttled:,}", f"{100 * throttled / max(1, calls + throttled):.2f}",
                ok_cell(r)]

    def headline(self):
        return (f"scenario shards: a synthetic pool of {self.users:,} users (the layer's, "
                f"production-shaped, {len(self.members)} groups, "
                f"{sum(self.members.values()):,} memberships), latency "
                f"{self.args.latency_ms:g} ms, quotas × {self.args.quota_scale:g} (UserList "
                f"{self.rate:g}/s for the whole account); the shards of a run start together "
                f"with default flags")

    def table(self, results):
        header = ["run", "wall s", "ceiling s", "× ceiling", "× whole ceiling",
                  "UserList calls", "× whole calls", "throttled", "% throttled", "ok"]
        return (format_table(header, [self.cells(r) for r in results], ["<", *">" * 8, "<"]) +
                "\n\n(ceiling: the UserList calls the run made / the quota; whole ceiling: "
                "those of the same build's whole backup / the quota; % throttled: of all "
                "UserList calls sent)")

    def summary(self, results):
        return []

    def to_json(self, results):
        runs = []
        for r in results:
            doc = r.to_json()
            doc.update(ops=r.ops, **r.extra)
            runs.append(doc)
        return {"scenario": self.name, "users": self.users, "pool": self.POOL,
                "layer_options": self.layer_options, "groups": self.members,
                "quota_per_s": self.rate, "whole_userlist_calls": self.whole, "runs": runs}


SCENARIOS = {s.name: s for s in [BackupScenario, RestoreScenario, QuotasScenario,
                                        RerunScenario, RollbackScenario, ScaleScenario,
                                        ShardsScenario]}
NOT_IN_ALL = {"scale", "shards"}  # asked for by name only: a million users take an hour at the quotas


# ---------------------------------------------------------------------------------------
# Tools, table, main

def find_aws(explicit):
    """The AWS CLI's own script, not a pyenv shim (whose start-up is not the CLI's)."""
    path = explicit or shutil.which("aws")
    if not path:
        raise SystemExit("bench: no `aws` CLI on PATH (use --aws)")
    if not explicit and os.sep + "shims" + os.sep in path and shutil.which("pyenv"):
        real = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True)
        if real.returncode == 0 and real.stdout.strip():
            path = real.stdout.strip()
    return path


def find_cbr(path):
    path = path if os.path.isabs(path) else os.path.join(ROOT, path)
    if not os.path.exists(path):
        log(f"{path} is missing: cargo build --release")
        built = subprocess.run(["cargo", "build", "--release"], cwd=ROOT)
        if built.returncode != 0 or not os.path.exists(path):
            raise SystemExit("bench: could not build cbr (use --only aws-cli to skip it)")
    return path


def ok_cell(result):
    return "yes" if result.ok else f"NO: {result.note}"


def format_table(header, rows, align=None):
    """Columns padded to their widest cell; by default the first and last left-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 2) + ["<"]
    lines = []
    for row in [header, ["-" * w for w in widths], *rows]:
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip())
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="backup",
                   help="what to run (default: %(default)s; all: every scenario in one go, "
                        "but scale)")
    p.add_argument("--cbr", default="target/release/cbr",
                   help="cbr binary (default: %(default)s, built with cargo if missing)")
    p.add_argument("--aws", help="AWS CLI to run (default: `aws` on PATH)")
    p.add_argument("--latency-ms", type=float, default=60, help="simulated round trip (default: 60)")
    p.add_argument("--users", type=int,
                   help="users in the large pool (backup, quotas2x; default: 10,000) or in the "
                        "synthetic pool (scale; default: 1,000,000)")
    p.add_argument("--shards-users", type=int, default=60_000,
                   help="users in the synthetic pool of the shards scenario (default: %(default)s)")
    p.add_argument("--quota-scale", type=float, default=1.0,
                   help="scale: the layer's quotas × this (default: %(default)s)")
    p.add_argument("--no-quotas", action="store_true",
                   help="scale: no quotas at all, to measure cbr's own costs")
    p.add_argument("--restore-users", type=int, default=1_000,
                   help="users in the pool that is backed up and restored (restore; default: "
                        "%(default)s)")
    p.add_argument("--rerun-users", type=int, default=10_000,
                   help="users in the pool a finished restore is rerun into (rerun)")
    p.add_argument("--rollback-users", type=int, default=10_000,
                   help="users in the pool that is damaged and rolled back (rollback)")
    p.add_argument("--shape", choices=list(PRODUCTION.SHAPES), default="case_insensitive",
                   help="the pool shape of the rerun and rollback pools (see "
                        "tests/support/production_pool.py; default: %(default)s)")
    p.add_argument("--damage-pct", type=float, default=5,
                   help="%% of the rollback pool's users damaged (default: %(default)s)")
    p.add_argument("--cbr-baseline", metavar="PATH",
                   help="another cbr binary (e.g. today's) whose restore is run in rerun as "
                        "the \"before\" column (and in rollback and scale)")
    p.add_argument("--only", help="comma-separated run names (backup: cbr, cbr-c1, aws-cli, "
                                  "cbr-1k; restore: cbr-restore, cbr-restore-c1; quotas2x: "
                                  "backup-1x, backup-2x, restore-1x, restore-2x; rerun: "
                                  "rerun-list, rerun, rerun-before; rollback: rollback; "
                                  "scale: scale-backup, scale-backup-gz, scale-backup-s3, "
                                  "scale-resume, scale-dry-run and each with -before; "
                                  "shards: shards-1, shards-2, shards-3, shards-8 and each "
                                  "with -before)")
    p.add_argument("--keep-going", action="store_true", help="go on after a failed run")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    p.add_argument("--settle-s", type=float, default=1.5,
                   help="pause before each run, so the quota buckets start full")
    p.add_argument("--keep-files", action="store_true", help="keep the outputs and logs")
    args = p.parse_args()
    args.scale_users = args.users or 1_000_000
    args.users = args.users or 10_000

    names = [n for n in SCENARIOS if n not in NOT_IN_ALL] if args.scenario == "all" \
        else [args.scenario]
    plan = [(SCENARIOS[name](args), None) for name in names]
    plan = [(scenario, scenario.runs()) for scenario, _ in plan]
    if args.only:
        wanted = args.only.split(",")
        known = {r.name for _, runs in plan for r in runs}
        unknown = set(wanted) - known
        if unknown:
            p.error(f"unknown runs {sorted(unknown)}; {args.scenario} has {sorted(known)}")
        plan = [(scenario, [r for r in runs if r.name in wanted]) for scenario, runs in plan]
        plan = [(scenario, runs) for scenario, runs in plan if runs]
    all_runs = [r for _, runs in plan for r in runs]
    tools = {}
    if any(r.tool == "cbr" for r in all_runs):
        tools["cbr"] = find_cbr(args.cbr)
    if any(r.tool == "aws" for r in all_runs):
        tools["aws"] = find_aws(args.aws)
    if any(r.tool == "cbr-baseline" for r in all_runs):
        tools["cbr-baseline"] = os.path.abspath(args.cbr_baseline)
    if any(isinstance(s, (QuotasScenario, RerunScenario, RollbackScenario)) for s, _ in plan) \
            and "cbr" not in tools:
        tools["cbr"] = find_cbr(args.cbr)  # their pools are backed up with cbr

    tmp = tempfile.mkdtemp(prefix="cbr-bench-")
    done = []  # (scenario, results), in the order run
    stopped = False
    try:
        with Environment(args, tmp) as env:
            floor = measure(["true"], child_env(tmp), os.devnull, os.devnull, 30)
            rss_floor_mib = floor.peak_rss_kib / 1024
            for scenario, runs in plan:
                scenario.tools, scenario.env = tools, env
                scenario.tmp = os.path.join(tmp, scenario.name)
                os.makedirs(scenario.tmp)
                log(f"scenario {scenario.name}: preparing")
                scenario.prepare(runs)
                results = []
                done.append((scenario, results))
                for run in runs:
                    log(f"run {run.name}: {run.label}")
                    result = scenario.execute(run)
                    results.append(result)
                    log(f"  {result.wall_s:.2f} s, {result.users:,} users, "
                        f"{result.throttled} throttled, {result.peak_rss_mib:.1f} MiB"
                        + ("" if result.ok else f" -- FAILED: {result.note}"))
                    if not result.ok and not args.keep_going:
                        stopped = True
                        break
                if stopped:
                    break
            layer_options = env.layer_options
    finally:
        if args.keep_files:
            log(f"outputs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    for i, (scenario, results) in enumerate(done):
        print(("\n\n" if i else "") + scenario.headline() + "\n")
        print(scenario.table(results))
        for line in scenario.summary(results):
            print("\n" + line)
    print(f"\n(peak RSS of `true` measured the same way: {rss_floor_mib:.1f} MiB, "
          "the floor of the method)")
    if args.json:
        common = {"latency_ms": args.latency_ms, "layer_options": layer_options,
                  "rss_floor_mib": round(rss_floor_mib, 1), "tools": tools,
                  "python": platform.python_version(), "cpus": os.cpu_count()}
        if args.scenario == "all":
            doc = {"scenario": "all", **common,
                   "scenarios": {s.name: s.to_json(results) for s, results in done}}
        else:
            doc = {**(done[0][0].to_json(done[0][1]) if done else {"scenario": args.scenario}),
                   **common}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    all_ok = (not stopped and sum(len(results) for _, results in done) == len(all_runs)
              and all(r.ok for _, results in done for r in results))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
