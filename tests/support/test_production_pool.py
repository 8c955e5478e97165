"""Checks of tests/support/production_pool.py and of moto_server.py's
``POST /_test/production-pool``.

Run with `python3 -m unittest tests/support/test_production_pool.py` (needs moto; standard
library otherwise). The generator is checked on its own (the mix, the limits, uniqueness,
determinism, and that tests/support/aws_layer.py accepts every native user as a restore would
send it); then one moto_server.py is started for the module and pools of every shape are
seeded through the endpoint and read back with moto's JSON API, directly and through
aws_layer.py.
"""

import collections
import hashlib
import http.client
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import aws_layer  # noqa: E402
import production_pool as pp  # noqa: E402

TARGET = "AWSCognitoIdentityProviderService."
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/cognito-idp/aws4_request, "
        "SignedHeaders=host, Signature=0")
COUNT = 80
SEED = 11
# Letters of the scripts the pools must hold (code point ranges), and emoji.
SCRIPT_RANGES = {"cyrillic": (0x0400, 0x04FF), "greek": (0x0370, 0x03FF),
                 "cjk": (0x4E00, 0x9FFF), "arabic": (0x0600, 0x06FF),
                 "devanagari": (0x0900, 0x097F), "hangul": (0xAC00, 0xD7AF),
                 "emoji": (0x1F300, 0x1FAFF)}
ZWJ = "\u200d"

moto_proc = None
moto_url = None


def setUpModule():
    global moto_proc, moto_url
    moto_proc = subprocess.Popen([sys.executable, os.path.join(HERE, "moto_server.py")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
    line = moto_proc.stdout.readline()
    if not line.startswith("LISTENING "):
        raise RuntimeError(f"moto_server.py did not start: {line!r}")
    moto_url = "http://" + line.split()[1]


def tearDownModule():
    if moto_proc:
        moto_proc.stdin.close()
        moto_proc.stdout.close()
        try:
            moto_proc.wait(10)
        except subprocess.TimeoutExpired:
            moto_proc.kill()
            moto_proc.wait()


def http_post(url, path, payload, headers):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.request("POST", path, payload, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def call(url, op, body):
    """One AWS JSON call: (status, parsed body)."""
    status, data = http_post(url, "/", json.dumps(body),
                             {"X-Amz-Target": TARGET + op, "Authorization": AUTH,
                              "Content-Type": "application/x-amz-json-1.1"})
    return status, json.loads(data) if data else None


def ok(url, op, body):
    status, answer = call(url, op, body)
    assert status == 200, (op, body, answer)
    return answer


def seed_pool(body):
    status, data = http_post(moto_url, "/_test/production-pool", json.dumps(body),
                             {"Content-Type": "application/json"})
    return status, json.loads(data)


def list_users(url, pool, **extra):
    users, token = [], None
    while True:
        body = dict(extra, UserPoolId=pool, Limit=60)
        if token:
            body["PaginationToken"] = token
        answer = ok(url, "ListUsers", body)
        users += answer["Users"]
        token = answer.get("PaginationToken")
        if not token:
            return users


def paginate(url, op, body, key):
    items, token = [], None
    while True:
        req = dict(body, Limit=60)
        if token:
            req["NextToken"] = token
        answer = ok(url, op, req)
        items += answer[key]
        token = answer.get("NextToken")
        if not token:
            return items


def attrs(user):
    return {a["Name"]: a["Value"] for a in user["Attributes"]}


def natives(users):
    return [u for u in users if u["UserStatus"] != "EXTERNAL_PROVIDER"]


def kind(user):
    if user["UserStatus"] == "CONFIRMED" and "identities" in attrs(user):
        return "LINKED"
    return user["UserStatus"]


def layer_settings(shape):
    """The layer's view of a pool of `shape`, as it builds it from DescribeUserPool."""
    settings = {k: v for k, v in pp.SHAPES[shape].items() if k != "Schema"}
    settings["SchemaAttributes"] = aws_layer.schema_from_create(pp.SHAPES[shape]["Schema"])
    return aws_layer.PoolSettings(settings)


def restore_request(shape, user):
    """The Username and attributes `cbr restore` sends for a user (its sign-in attribute as
    the username in sign-in shapes; nothing it cannot write)."""
    a = attrs(user)
    sign_in = pp.sign_in_attribute(shape)
    username = a[sign_in] if sign_in else user["Username"]
    writable = [x for x in user["Attributes"] if x["Name"] not in ("sub", "identities")]
    return username, writable


class GeneratorTest(unittest.TestCase):
    def setUp(self):
        self.pools = {shape: pp.production_users(shape, COUNT, SEED) for shape in pp.SHAPES}

    def test_every_status_and_kind(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                self.assertEqual(len(users), COUNT)
                kinds = collections.Counter(kind(u) for u in users)
                self.assertEqual(kinds, {"UNCONFIRMED": 16, "CONFIRMED": 28,
                                         "FORCE_CHANGE_PASSWORD": 8, "RESET_REQUIRED": 8,
                                         "COMPROMISED": 4, "EXTERNAL_PROVIDER": 12, "LINKED": 4})
                disabled = [u for u in users if not u["Enabled"]]
                self.assertEqual(len(disabled), 8)
                self.assertEqual({kind(u) for u in disabled}, set(kinds))

    def test_small_and_large_counts(self):
        self.assertEqual(pp.production_users("username", 0, 1), [])
        for n in (1, 3, 7, 40, 41, 1000):
            users = pp.production_users("case_insensitive", n, 1)
            self.assertEqual(len(users), n)
            self.assertEqual(len({u["Username"].lower() for u in users}), n)
            if n >= 40:
                self.assertEqual({kind(u) for u in users},
                                 {"UNCONFIRMED", "CONFIRMED", "FORCE_CHANGE_PASSWORD",
                                  "RESET_REQUIRED", "COMPROMISED", "EXTERNAL_PROVIDER", "LINKED"})
        big = collections.Counter(u["UserStatus"] for u in pp.production_users("username", 1000, 2))
        self.assertEqual(big, {"UNCONFIRMED": 200, "CONFIRMED": 400, "FORCE_CHANGE_PASSWORD": 100,
                               "RESET_REQUIRED": 100, "COMPROMISED": 50,
                               "EXTERNAL_PROVIDER": 150})

    def test_federated_and_linked_users(self):
        prefixes = ("Google_", "Facebook_", "SignInWithApple_", "SAML-Okta_", "LoginWithAmazon_")
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                for u in users:
                    a = attrs(u)
                    if u["UserStatus"] == "EXTERNAL_PROVIDER":
                        self.assertTrue(u["Username"].startswith(prefixes), u["Username"])
                    if "identities" not in a:
                        continue
                    ids = json.loads(a["identities"])
                    self.assertTrue(ids)
                    for entry in ids:
                        self.assertEqual(list(entry), ["userId", "providerName", "providerType",
                                                       "issuer", "primary", "dateCreated"])
                        self.assertIsInstance(entry["dateCreated"], int)
                        self.assertIsInstance(entry["primary"], bool)
                    self.assertNotIn(" ", a["identities"])  # Cognito's compact JSON
                    if u["UserStatus"] == "EXTERNAL_PROVIDER":
                        provider, _, user_id = u["Username"].partition("_")
                        self.assertEqual((ids[0]["providerName"], ids[0]["userId"]),
                                         (provider, user_id))
                federated = [u for u in users if u["UserStatus"] == "EXTERNAL_PROVIDER"]
                self.assertTrue(all("identities" in attrs(u) for u in federated))
                self.assertGreater(sum("email" in attrs(u) for u in federated), len(federated) / 2)

    def test_groups(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                members = collections.Counter(g for u in users for g in u["Groups"])
                self.assertEqual(set(members), set(pp.DEFAULT_GROUPS))
                self.assertEqual(len(pp.DEFAULT_GROUPS), 30)
                self.assertEqual(sum(not u["Groups"] for u in users), round(0.4 * COUNT))
                sizes = collections.Counter(len(u["Groups"]) for u in users)
                self.assertTrue(sizes[1] and any(sizes[k] for k in (2, 3)))
                self.assertIn(30, sizes)  # one user in every group
                for u in users:
                    self.assertEqual(len(u["Groups"]), len(set(u["Groups"])))
        self.assertTrue(any(any(ord(c) > 0x2000 for c in g) for g in pp.DEFAULT_GROUPS))
        self.assertTrue(any(any(ord(c) >= 0x1F300 for c in g) for g in pp.DEFAULT_GROUPS))
        mine = pp.production_users("username", COUNT, 3, groups=["a", "b"])
        self.assertEqual({g for u in mine for g in u["Groups"]}, {"a", "b"})

    def test_scripts_and_emoji(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                values = "".join(v for u in users for n, v in attrs(u).items()
                                 if n in ("name", "given_name", "family_name", "custom:tier"))
                for script, (lo, hi) in SCRIPT_RANGES.items():
                    self.assertTrue(any(lo <= ord(c) <= hi for c in values), script)
                self.assertIn(ZWJ, values)
                lo, hi = SCRIPT_RANGES["emoji"]
                self.assertTrue(any(lo <= ord(c) <= hi
                                    for c in "".join(attrs_values(users, "custom:tier"))))
                names = [u["Username"] for u in users]
                self.assertTrue(all(pp.is_valid_username(n) for n in names),
                                [n for n in names if not pp.is_valid_username(n)])
                if shape in ("username", "case_insensitive"):
                    non_latin = [n for n in names if any(
                        lo <= ord(c) <= hi for c in n for lo, hi in SCRIPT_RANGES.values())]
                    self.assertGreaterEqual(len(non_latin), 3, names)

    def test_values_at_the_limits(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                tiers = attrs_values(users, "custom:tier")
                self.assertTrue(any(len(t) == pp.TIER_MAX and len(t.encode()) > len(t)
                                    and any(ord(c) > 0xFFFF for c in t) for t in tiers))
                self.assertTrue(all(len(t) <= pp.TIER_MAX for t in tiers))
                scores = attrs_values(users, "custom:score")
                self.assertIn("0", scores)
                self.assertIn("1000000", scores)
                self.assertTrue(all(0 <= int(s) <= 1_000_000 for s in scores))
                codes = attrs_values(users, "custom:code")
                self.assertIn(pp.CODE_MAX, {len(c) for c in codes})
                self.assertTrue(all(len(c) <= pp.CODE_MAX for c in codes))
                names = attrs_values(users, "name")
                self.assertIn(pp.NAME_MAX, {len(n) for n in names})
                self.assertTrue(all(len(v) <= 2048 for u in users for v in attrs(u).values()))
                self.assertTrue(set(attrs_values(users, "custom:beta")) <= {"true", "false"})
                self.assertTrue(attrs_values(users, "custom:joined"))
                for u in natives(users):  # the layer takes them as a restore sends them
                    username, writable = restore_request(shape, u)
                    layer_settings(shape).check_attributes("AdminCreateUser", writable)
                    layer_settings(shape).check_username(username)

    def test_email_and_phone(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                for attr in ("email", "phone_number"):
                    states = collections.Counter(
                        "absent" if attr not in attrs(u) else attrs(u)[attr + "_verified"]
                        for u in users)
                    self.assertEqual(set(states), {"true", "false", "absent"}, attr)
                emails = attrs_values(users, "email")
                self.assertEqual(len(emails), len(set(emails)))
                self.assertTrue(all(e == e.lower() and pp.EMAIL_FORMAT.match(e) for e in emails))
                phones = attrs_values(users, "phone_number")
                self.assertEqual(len(phones), len(set(phones)))
                self.assertTrue(all(p.startswith("+1555") and pp.PHONE_FORMAT.match(p)
                                    for p in phones))
                for u in users:
                    a = attrs(u)
                    self.assertEqual("email" in a, "email_verified" in a)
                    self.assertEqual("phone_number" in a, "phone_number_verified" in a)
                    if u["UserStatus"] == "RESET_REQUIRED":  # imports need one verified
                        self.assertTrue("true" in (a.get("email_verified"),
                                                   a.get("phone_number_verified")))

    def test_uniqueness_rules_of_each_shape(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                names = [u["Username"] for u in users]
                subs = [attrs(u)["sub"] for u in users]
                self.assertEqual(len(set(subs)), COUNT)
                self.assertTrue(all(pp.UUID_FORMAT.match(s) for s in subs))
                if pp.case_sensitive(shape):
                    self.assertEqual(len(set(names)), COUNT)
                else:
                    self.assertEqual(len({n.lower() for n in names}), COUNT)
                    self.assertEqual(len({n.casefold() for n in names}), COUNT)
                sign_in = pp.sign_in_attribute(shape)
                if sign_in:
                    for u in natives(users):
                        self.assertIn(sign_in, attrs(u))
                        self.assertTrue(pp.UUID_FORMAT.match(u["Username"]))
                        self.assertNotEqual(u["Username"], attrs(u)["sub"])
                    keys = attrs_values(users, sign_in)
                    self.assertEqual(len({k.lower() for k in keys}), len(keys))
                else:
                    self.assertTrue(any(n != n.lower() for n in names))
                if shape == "username":
                    self.assertIn("ALICE", names)
                    self.assertIn("alice", names)  # case-sensitive: two users
                if shape == "case_insensitive":
                    self.assertIn("ALICE", names)
                    self.assertIn("Ärger.Müller", names)
                if shape == "email_alias":
                    self.assertFalse([n for n in names if pp.EMAIL_FORMAT.match(n)])
                if shape == "preferred_username_alias":
                    aliases = [attrs(u)["preferred_username"] for u in users
                               if "preferred_username" in attrs(u)]
                    self.assertTrue(0.35 < len(aliases) / len(natives(users)) < 0.65)
                    folded = {a.casefold() for a in aliases}
                    self.assertEqual(len(folded), len(aliases))
                    self.assertFalse(folded & {n.casefold() for n in names})
                    self.assertFalse([a for a in aliases if "@" in a or a.startswith("+")])
                else:
                    self.assertFalse(attrs_values(users, "preferred_username"))

    def test_dates(self):
        for u in self.pools["username"]:
            self.assertIsInstance(u["UserCreateDate"], (int, float))
            self.assertLessEqual(u["UserCreateDate"], u["UserLastModifiedDate"])
            self.assertEqual(pp.moto_time(pp.parse_time(u["UserCreateDate"])), u["UserCreateDate"])

    def test_deterministic(self):
        for shape in pp.SHAPES:
            self.assertEqual(pp.production_users(shape, COUNT, SEED), self.pools[shape])
            self.assertNotEqual(pp.production_users(shape, COUNT, SEED + 1), self.pools[shape])
        digest = hashlib.sha256(json.dumps(self.pools["email_alias"]).encode()).hexdigest()
        script = ("import hashlib, json, production_pool as pp; print(hashlib.sha256(json.dumps("
                  f"pp.production_users('email_alias', {COUNT}, {SEED})).encode()).hexdigest())")
        for hash_seed in ("1", "2"):
            out = subprocess.run([sys.executable, "-c", script], cwd=HERE, capture_output=True,
                                 text=True, env=dict(os.environ, PYTHONHASHSEED=hash_seed),
                                 check=True)
            self.assertEqual(out.stdout.strip(), digest)
        subs = {attrs(u)["sub"] for users in self.pools.values() for u in users}
        self.assertEqual(len(subs), COUNT * len(pp.SHAPES))  # shapes never share subs

    def test_as_restored(self):
        for shape, users in self.pools.items():
            with self.subTest(shape=shape):
                restored = pp.as_restored(shape, users, 1)
                self.assertEqual(len(restored), len(natives(users)))
                for was, now in zip(natives(users), restored):
                    self.assertEqual(now["Enabled"], was["Enabled"])
                    self.assertEqual(now["Groups"], was["Groups"])
                    self.assertNotEqual(attrs(now)["sub"], attrs(was)["sub"])
                    self.assertNotIn("identities", attrs(now))
                    self.assertEqual({k: v for k, v in attrs(now).items() if k != "sub"},
                                     {k: v for k, v in attrs(was).items()
                                      if k not in ("sub", "identities")})
                    self.assertEqual(now["UserStatus"], "CONFIRMED" if was["UserStatus"] in (
                        "CONFIRMED", "RESET_REQUIRED", "COMPROMISED") else "FORCE_CHANGE_PASSWORD")
                    if pp.sign_in_attribute(shape):
                        self.assertNotEqual(now["Username"], was["Username"])
                    else:
                        self.assertEqual(now["Username"], was["Username"])


def attrs_values(users, name):
    return [attrs(u)[name] for u in users if name in attrs(u)]


class PoolChecks(unittest.TestCase):
    def check_pool(self, url, shape, pool, users):
        # Users, in order, exactly as seeded (moto adds MFAOptions: []).
        listed = list_users(url, pool)
        self.assertEqual([{k: v for k, v in u.items() if k != "MFAOptions"} for u in listed],
                         [{k: v for k, v in u.items() if k != "Groups"} for u in users])
        # Filters see statuses, flags and subs.
        for status in pp.STATUSES:
            got = list_users(url, pool, Filter=f'cognito:user_status = "{status}"')
            self.assertEqual(len(got), sum(u["UserStatus"] == status for u in users))
        got = list_users(url, pool, Filter='status = "Disabled"')
        self.assertEqual(len(got), sum(not u["Enabled"] for u in users))
        sub = attrs(users[7])["sub"]
        self.assertEqual([u["Username"] for u in list_users(url, pool, Filter=f'sub = "{sub}"')],
                         [users[7]["Username"]])
        # Groups and memberships, both ways.
        groups = paginate(url, "ListGroups", {"UserPoolId": pool}, "Groups")
        self.assertEqual([g["GroupName"] for g in groups], pp.DEFAULT_GROUPS)
        for g, d in zip(groups, pp.group_definitions(pp.DEFAULT_GROUPS)):
            self.assertEqual((g.get("Description") or None, g.get("Precedence"), g.get("RoleArn")),
                             (d.get("Description"), d.get("Precedence"), d.get("RoleArn")))
        for name in pp.DEFAULT_GROUPS:
            members = paginate(url, "ListUsersInGroup", {"UserPoolId": pool, "GroupName": name},
                               "Users")
            self.assertEqual(sorted(u["Username"] for u in members),
                             sorted(u["Username"] for u in users if name in u["Groups"]), name)
        some = next(u for u in users if len(u["Groups"]) > 1)
        answer = ok(url, "AdminListGroupsForUser", {"UserPoolId": pool,
                                                     "Username": some["Username"]})
        self.assertEqual(sorted(g["GroupName"] for g in answer["Groups"]), sorted(some["Groups"]))
        # The shape's settings and schema.
        described = ok(url, "DescribeUserPool", {"UserPoolId": pool})["UserPool"]
        self.check_settings(shape, described)
        self.assertEqual(described["EstimatedNumberOfUsers"], len(users))

    def check_settings(self, shape, described):
        settings = pp.SHAPES[shape]
        for key in ("UsernameAttributes", "AliasAttributes", "UsernameConfiguration"):
            self.assertEqual(described.get(key), settings.get(key), key)
        schema = {a["Name"]: a for a in described["SchemaAttributes"]}
        for entry in settings["Schema"]:
            got = schema["custom:" + entry["Name"]]
            self.assertEqual(got["AttributeDataType"], entry["AttributeDataType"])
            self.assertEqual(got["Mutable"], entry["Mutable"])
            for key in ("StringAttributeConstraints", "NumberAttributeConstraints"):
                if key in entry:
                    self.assertEqual(got[key], entry[key])
        self.assertFalse(schema["custom:code"]["Mutable"])


class EndpointTest(PoolChecks):
    def test_round_trip_through_moto(self):
        for shape in pp.SHAPES:
            with self.subTest(shape=shape):
                status, answer = seed_pool({"shape": shape, "count": COUNT, "seed": SEED,
                                            "name": f"round-trip-{shape}"})
                self.assertEqual(status, 200, answer)
                pool, users = answer["pool_id"], answer["users"]
                self.assertEqual(users, pp.production_users(shape, COUNT, SEED))
                self.check_pool(moto_url, shape, pool, users)

    def test_empty_pool_of_a_shape(self):
        for shape in pp.SHAPES:
            with self.subTest(shape=shape):
                status, answer = seed_pool({"shape": shape, "count": 0, "name": "target"})
                self.assertEqual((status, answer["users"], answer["groups"]), (200, [], []))
                pool = answer["pool_id"]
                self.assertEqual(list_users(moto_url, pool), [])
                self.assertEqual(paginate(moto_url, "ListGroups", {"UserPoolId": pool}, "Groups"),
                                 [])
                described = ok(moto_url, "DescribeUserPool", {"UserPoolId": pool})["UserPool"]
                self.check_settings(shape, described)
                self.assertEqual(described["Name"], "target")

    def test_given_users_and_groups(self):
        users = pp.as_restored("email_sign_in", pp.production_users("email_sign_in", 50, 4), 4)
        status, answer = seed_pool({"shape": "email_sign_in", "users": users, "seed": 4})
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["users"], users)
        listed = list_users(moto_url, answer["pool_id"])
        self.assertEqual([u["Username"] for u in listed], [u["Username"] for u in users])
        self.assertEqual({u["UserStatus"] for u in listed}, {"CONFIRMED", "FORCE_CHANGE_PASSWORD"})
        # moto finds email sign-in users by their email.
        email = attrs(users[0])["email"]
        got = ok(moto_url, "AdminGetUser", {"UserPoolId": answer["pool_id"], "Username": email})
        self.assertEqual(got["Username"], users[0]["Username"])
        status, answer = seed_pool({"shape": "username", "count": 45, "groups": ["x", "y"]})
        self.assertEqual(status, 200, answer)
        groups = paginate(moto_url, "ListGroups", {"UserPoolId": answer["pool_id"]}, "Groups")
        self.assertEqual([g["GroupName"] for g in groups], ["x", "y"])

    def test_bad_requests(self):
        for body in [{"shape": "nope", "count": 1}, {"count": 1}, {"shape": "username", "count": -1},
                     {"shape": "username", "count": "3"}, {"shape": "username", "count": True},
                     {"shape": "username", "users": [{"Attributes": []}]},
                     {"shape": "username", "count": 1, "groups": "admins"}, []]:
            with self.subTest(body=body):
                status, answer = seed_pool(body)
                self.assertEqual(status, 400)
                self.assertTrue(answer["error"])
        status, data = http_post(moto_url, "/_test/production-pool", b"{not json",
                                 {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertIn("error", json.loads(data))

    def test_other_requests_reach_moto(self):
        status, answer = call(moto_url, "ListUserPools", {"MaxResults": 60})
        self.assertEqual(status, 200)
        self.assertIn("UserPools", answer)
        status, answer = call(moto_url, "DescribeUserPool", {"UserPoolId": "us-east-1_nope"})
        self.assertEqual((status, answer["__type"]), (400, "ResourceNotFoundException"))


class LayerTest(PoolChecks):
    """The pools through tests/support/aws_layer.py: it reads their settings from
    DescribeUserPool and enforces them."""

    def start_layer(self, *options):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "aws_layer.py"),
                                 "--upstream", moto_url, *options],
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        line = proc.stdout.readline()
        self.assertRegex(line, r"^LISTENING 127\.0\.0\.1:\d+\n$")
        return "http://" + line.split()[1]

    def test_round_trip_through_the_layer(self):
        layer = self.start_layer()
        indexed = self.start_layer("--index-listings")
        status, answer = seed_pool({"shape": "case_insensitive", "count": COUNT, "seed": SEED})
        self.assertEqual(status, 200, answer)
        pool, users = answer["pool_id"], answer["users"]
        self.check_pool(layer, "case_insensitive", pool, users)
        self.assertEqual(list_users(indexed, pool), list_users(moto_url, pool))
        # The layer folds case: "alice" is the stored "ALICE".
        got = ok(layer, "AdminGetUser", {"UserPoolId": pool, "Username": "alice"})
        self.assertEqual(got["Username"], "ALICE")
        self.assertEqual([u["Username"] for u in list_users(layer, pool,
                                                            Filter='username = "ärger.müller"')],
                         ["Ärger.Müller"])
        status, err = call(layer, "AdminCreateUser", {"UserPoolId": pool, "Username": "Alice",
                                                      "MessageAction": "SUPPRESS"})
        self.assertEqual((status, err["__type"]), (400, "UsernameExistsException"))

    def test_restore_requests_accepted_and_limits_enforced(self):
        """Every native user, sent as `cbr restore` sends it to an empty pool of the same
        shape through the layer, is accepted; one character more than a limit is not."""
        layer = self.start_layer()
        for shape in pp.SHAPES:
            with self.subTest(shape=shape):
                users = pp.production_users(shape, COUNT, SEED)
                status, answer = seed_pool({"shape": shape, "count": 0})
                self.assertEqual(status, 200, answer)
                target = answer["pool_id"]
                for u in natives(users):
                    username, writable = restore_request(shape, u)
                    status, err = call(layer, "AdminCreateUser", {
                        "UserPoolId": target, "Username": username, "UserAttributes": writable,
                        "MessageAction": "SUPPRESS"})
                    self.assertEqual(status, 200, (u["Username"], err))
                self.assertEqual(len(list_users(moto_url, target)), len(natives(users)))
                for name, value in [("custom:tier", "é" * 257), ("custom:code", "X" * 65),
                                    ("custom:score", "1000001"), ("name", "ñ" * 2049)]:
                    status, err = call(layer, "AdminCreateUser", {
                        "UserPoolId": target, "Username": "over.the.limit",
                        "UserAttributes": [{"Name": name, "Value": value}],
                        "MessageAction": "SUPPRESS"})
                    self.assertEqual((status, err["__type"]), (400, "InvalidParameterException"))

    def test_aliases_enforced_against_seeded_users(self):
        layer = self.start_layer()
        status, answer = seed_pool({"shape": "email_alias", "count": COUNT, "seed": SEED})
        self.assertEqual(status, 200, answer)
        pool, users = answer["pool_id"], answer["users"]
        holder = next(u for u in users if attrs(u).get("email_verified") == "true")
        status, err = call(layer, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "someone.else", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "email", "Value": attrs(holder)["email"]},
                               {"Name": "email_verified", "Value": "true"}]})
        self.assertEqual((status, err["__type"]), (400, "AliasExistsException"))
        status, err = call(layer, "AdminCreateUser", {"UserPoolId": pool,
                                                      "Username": "x@example.com",
                                                      "MessageAction": "SUPPRESS"})
        self.assertEqual((status, err["__type"]), (400, "InvalidParameterException"))


if __name__ == "__main__":
    unittest.main()
