"""Checks of the layer's synthetic pools (tests/support/layer/synthetic.py): pools of millions
of generated users that exist only in the layer (``--synthetic-pool POOL_ID=COUNT[:SEED]``).

Run with `python3 -m unittest tests/support/test_synthetic_pool.py` (standard library only;
no moto: the layers run without --upstream, or in front of a fake upstream that counts what
reaches it). The generator is checked in-process; the rest through layer processes, the way
cbr and the benchmark use them: a 1,000,000-user pool listed completely under 16 sub
prefixes, filters, groups against AdminListGroupsForUser, quotas, faults, token expiry and
recording, and writes that later listings show.
"""

import base64
import collections
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from layer import synthetic  # noqa: E402

TARGET = "AWSCognitoIdentityProviderService."
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/cognito-idp/aws4_request, "
        "SignedHeaders=host, Signature=0")
BIG = "us-east-1_Synth1M"
BIG_COUNT = 1_000_000
SMALL = "us-east-1_Small"
EMPTY = "us-east-1_Empty"
SUB_FORMAT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STATUSES = {"UNCONFIRMED", "CONFIRMED", "FORCE_CHANGE_PASSWORD", "RESET_REQUIRED",
            "COMPROMISED", "EXTERNAL_PROVIDER"}


class Client:
    """AWS JSON calls over one keep-alive connection (one per thread)."""

    def __init__(self, url):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def raw(self, op, body):
        self.conn.request("POST", "/", json.dumps(body),
                          {"X-Amz-Target": TARGET + op, "Authorization": AUTH,
                           "Content-Type": "application/x-amz-json-1.1"})
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def call(self, op, body):
        status, data = self.raw(op, body)
        return status, json.loads(data) if data else None

    def close(self):
        self.conn.close()


def call(url, op, body):
    c = Client(url)
    try:
        return c.call(op, body)
    finally:
        c.close()


def list_all(url, op, body, token_key):
    """Every user of a ListUsers / ListUsersInGroup query, and the number of pages."""
    c = Client(url)
    users, pages, body = [], 0, dict(body)
    try:
        while True:
            status, answer = c.call(op, body)
            assert status == 200, answer
            pages += 1
            users += answer["Users"]
            if not answer.get(token_key):
                return users, pages
            body[token_key] = answer[token_key]
    finally:
        c.close()


def attrs(user):
    return {a["Name"]: a["Value"] for a in user.get("Attributes", user.get("UserAttributes", []))}


class LayerProcess:
    """aws_layer.py in a subprocess; `url` once it listens."""

    def __init__(self, *options):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "aws_layer.py"),
                                      *options], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("LISTENING "):
            self.close()
            raise RuntimeError(f"the layer did not start: {line!r}")
        self.url = "http://" + line.split()[1]

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()

    def get(self, path):
        with urllib.request.urlopen(self.url + path) as r:
            return json.load(r)


class LayerTest(unittest.TestCase):
    def start(self, *options):
        layer = LayerProcess(*options)
        self.addCleanup(layer.close)
        return layer

    def assert_error(self, answer, status, error_type):
        self.assertEqual(answer[0], status, answer[1])
        self.assertEqual(answer[1]["__type"], error_type, answer[1])


# ---------------------------------------------------------------------------------------
# The generator, in-process

class GeneratorTest(unittest.TestCase):
    def test_users_are_a_function_of_seed_and_position(self):
        a = synthetic.SyntheticPool("p", 50_000, "7")
        b = synthetic.SyntheticPool("another-id", 50_000, "7")
        c = synthetic.SyntheticPool("p", 50_000, "8")
        for i in range(0, 50_000, 997):
            self.assertEqual(a.user_json(i), b.user_json(i))
            self.assertNotEqual(a.sub(i), c.sub(i))
        # Not the process's hash seed either: a child process generates the same users.
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from layer import synthetic; "
                "p = synthetic.SyntheticPool('p', 50000, '7'); "
                "print('\\n'.join(p.user_json(i) for i in range(0, 50000, 4999)))")
        out = subprocess.run([sys.executable, "-c", code, HERE], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONHASHSEED="123"), check=True).stdout
        self.assertEqual(out.split("\n")[:-1], [a.user_json(i) for i in range(0, 50_000, 4999)])

    def test_records_are_production_shaped(self):
        n = 20_000
        pool = synthetic.SyntheticPool("p", n, "3")
        statuses, disabled, kinds = collections.Counter(), 0, collections.Counter()
        last = ""
        for i in range(n):
            user = pool.user_dict(i)
            a = attrs(user)
            self.assertEqual(user["Username"], pool.username(i))
            self.assertRegex(a["sub"], SUB_FORMAT)
            self.assertGreater(a["sub"], last)  # sorted by construction
            last = a["sub"]
            statuses[user["UserStatus"]] += 1
            disabled += not user["Enabled"]
            if "identities" in a:
                identities = json.loads(a["identities"])
                self.assertEqual(len(identities), 1)
                kinds["federated" if user["UserStatus"] == "EXTERNAL_PROVIDER" else "linked"] += 1
                if user["UserStatus"] == "EXTERNAL_PROVIDER":
                    self.assertTrue(user["Username"].startswith(identities[0]["providerName"] + "_"))
            if user["UserStatus"] == "RESET_REQUIRED":
                self.assertEqual(a.get("email_verified"), "true")
            for name in a:
                self.assertIn(name, synthetic.STANDARD_ATTRIBUTES.keys() | {"custom:tier"})
        self.assertEqual(set(statuses), STATUSES)
        for status, share in [("UNCONFIRMED", 0.20), ("CONFIRMED", 0.40),
                              ("FORCE_CHANGE_PASSWORD", 0.10), ("RESET_REQUIRED", 0.10),
                              ("COMPROMISED", 0.05), ("EXTERNAL_PROVIDER", 0.15)]:
            self.assertAlmostEqual(statuses[status] / n, share, delta=0.02, msg=status)
        self.assertAlmostEqual(kinds["linked"] / n, 0.05, delta=0.01)
        self.assertAlmostEqual(disabled / n, 0.10, delta=0.01)
        sizes = collections.Counter(len(pool.generated_groups(i)) for i in range(n))
        self.assertAlmostEqual(sizes[0] / n, 0.40, delta=0.02)
        self.assertEqual(max(sizes), synthetic.DEFAULT_GROUPS)  # the user in every group
        scripts = "".join(pool.user_json(i) for i in range(200))
        for escaped in ("\\u0410", "\\u5c71", "\\ud83d"):  # Cyrillic, CJK, emoji (escaped)
            self.assertIn(escaped, scripts)

    def test_usernames_and_subs_lead_back_to_their_user(self):
        pool = synthetic.SyntheticPool("p", 100_000, "5")
        for i in list(range(0, 100_000, 313)) + [99_999]:
            name = pool.username(i)
            self.assertEqual(pool.find(name), ("g", i))
            self.assertEqual(pool.find(name.upper()), ("g", i))  # case-insensitive pool
            self.assertEqual(pool.find_sub(pool.sub(i)), ("g", i))
        self.assertIsNone(pool.find("ada.lovelace.100000"))  # beyond the pool
        wrong = pool.username(7)[:-1] + "8"  # user 7's name with user 8's number
        if wrong.lower() != pool.username(8).lower():
            self.assertIsNone(pool.find(wrong))
        sub = pool.sub(5)
        self.assertIsNone(pool.find_sub(sub[:-1] + ("0" if sub[-1] != "0" else "1")))

    def test_prefixes_are_ranges(self):
        """prefix_range agrees with a scan of every sub, for prefixes of 0 to 9 characters
        and the sub itself."""
        pool = synthetic.SyntheticPool("p", 3000, "9")
        subs = [pool.sub(i) for i in range(3000)]
        prefixes = ["", "0", "f", "7a", "fff", "00", "8", "c3", subs[1234][:4], subs[17][:8],
                    subs[17][:9], subs[17][:11], subs[2999], "g", "A"]
        for prefix in prefixes:
            i_lo, i_hi, _, _ = pool.prefix_range(prefix)
            expected = [i for i, s in enumerate(subs) if s.startswith(prefix)]
            self.assertEqual(list(range(i_lo, i_hi)), expected, prefix)


# ---------------------------------------------------------------------------------------
# A 1,000,000-user pool through a layer process

class MillionTest(LayerTest):
    @classmethod
    def setUpClass(cls):
        cls.layer = LayerProcess("--synthetic-pool", f"{BIG}=1M:42")

    @classmethod
    def tearDownClass(cls):
        cls.layer.close()

    def test_lists_every_user_once_under_16_prefixes(self):
        """cbr's way: `sub ^= "0"` ... `sub ^= "f"`, 60 users a page, several at once."""
        results = {}
        sub_re = re.compile(rb'"Name":"sub","Value":"([^"]+)"')
        name_re = re.compile(rb'"Username":"((?:[^"\\]|\\.)*)"')
        token_re = re.compile(rb'"PaginationToken":"([^"]+)"')

        def list_prefix(prefix):
            c = Client(self.layer.url)
            body = {"UserPoolId": BIG, "Limit": 60, "Filter": f'sub ^= "{prefix}"'}
            subs, names, pages = [], [], 0
            try:
                while True:
                    status, data = c.raw("ListUsers", body)
                    self.assertEqual(status, 200, data[:200])
                    pages += 1
                    page_subs = sub_re.findall(data)
                    self.assertLessEqual(len(page_subs), 60)
                    subs += page_subs
                    names += name_re.findall(data)
                    token = token_re.search(data[-300:])
                    if not token:
                        break
                    body["PaginationToken"] = token.group(1).decode()
            finally:
                c.close()
            results[prefix] = (subs, names, pages)

        started = time.monotonic()
        prefixes = [f"{d:x}" for d in range(16)]
        threads = []
        for k in range(4):
            t = threading.Thread(target=lambda ps=prefixes[k::4]: [list_prefix(p) for p in ps])
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        self.assertEqual(set(results), set(prefixes))
        all_subs, all_names, pages = [], [], 0
        for prefix in prefixes:
            subs, names, n = results[prefix]
            self.assertTrue(all(s.startswith(prefix.encode()) for s in subs), prefix)
            self.assertEqual(len(subs), len(names))
            all_subs += subs
            all_names += [n.decode("unicode_escape").lower() for n in names]
            pages += n
        self.assertEqual(len(all_subs), BIG_COUNT)
        self.assertEqual(all_subs, sorted(all_subs))  # in sub order, prefix after prefix
        self.assertEqual(len(set(all_subs)), BIG_COUNT)
        self.assertEqual(len(set(all_names)), BIG_COUNT)  # distinct even when case-folded
        self.assertTrue(all(SUB_FORMAT.match(s.decode()) for s in all_subs[::997]))
        self.assertLessEqual(pages, BIG_COUNT // 60 + 16 + 16)
        sys.stderr.write(f"\n  1M synthetic users listed under 16 prefixes: {pages} pages in "
                         f"{elapsed:.1f} s ({pages / elapsed:.0f} pages/s, test client "
                         "included) ... ")

    def test_the_same_users_in_another_process(self):
        """Determinism across runs: another layer with the same pool answers the same pages;
        another seed gives other users."""
        same = self.start("--synthetic-pool", f"{BIG}=1000000:42")
        other = self.start("--synthetic-pool", f"{BIG}=1000000:43")
        for prefix in ["0", "7f", "abc", "fff", ""]:
            body = {"UserPoolId": BIG, "Limit": 60, "Filter": f'sub ^= "{prefix}"'}
            first = call(self.layer.url, "ListUsers", body)
            self.assertEqual(first, call(same.url, "ListUsers", body))
            self.assertNotEqual(first[1]["Users"], call(other.url, "ListUsers", body)[1]["Users"])
            token = first[1]["PaginationToken"]
            second = dict(body, PaginationToken=token)
            self.assertEqual(call(self.layer.url, "ListUsers", second),
                             call(same.url, "ListUsers", second))

    def test_describe_and_filters(self):
        url = self.layer.url
        status, answer = call(url, "DescribeUserPool", {"UserPoolId": BIG})
        self.assertEqual(status, 200)
        pool = answer["UserPool"]
        self.assertEqual((pool["Id"], pool["EstimatedNumberOfUsers"]), (BIG, BIG_COUNT))
        self.assertEqual(pool["UsernameConfiguration"], {"CaseSensitive": False})
        self.assertNotIn("UsernameAttributes", pool)
        schema = {a["Name"]: a for a in pool["SchemaAttributes"]}
        self.assertEqual(schema["custom:tier"]["AttributeDataType"], "String")
        self.assertIn("email", schema)

        page = call(url, "ListUsers", {"UserPoolId": BIG, "Filter": 'sub ^= "8"', "Limit": 5})[1]
        self.assertEqual(len(page["Users"]), 5)
        for user in page["Users"]:
            sub = attrs(user)["sub"]
            for filt in [f'sub = "{sub}"', f'username = "{user["Username"]}"',
                         f'username = "{user["Username"].upper()}"',
                         f'username="{user["Username"].lower()}"']:
                got = call(url, "ListUsers", {"UserPoolId": BIG, "Filter": filt})
                self.assertEqual(got, (200, {"Users": [user]}), filt)
            got = call(url, "AdminGetUser", {"UserPoolId": BIG, "Username": user["Username"]})[1]
            self.assertEqual((got["Username"], got["UserAttributes"], got["UserStatus"]),
                             (user["Username"], user["Attributes"], user["UserStatus"]))
        for filt in ['sub = "00000000-0000-4000-8000-000000000000"', 'username = "nobody"',
                     'sub ^= "G"', 'username = "ada.lovelace.1000000"']:
            self.assertEqual(call(url, "ListUsers", {"UserPoolId": BIG, "Filter": filt}),
                             (200, {"Users": []}), filt)
        # Longer prefixes: a prefix of L hex digits holds COUNT / 16**L users (the first 8
        # digits are spread arithmetically), rounded either way.
        for prefix in ["3c7", "3c7e", "3c7e5"]:
            users, _ = list_all(url, "ListUsers", {"UserPoolId": BIG,
                                                   "Filter": f'sub ^= "{prefix}"'},
                                "PaginationToken")
            self.assertTrue(all(attrs(u)["sub"].startswith(prefix) for u in users))
            self.assertLessEqual(abs(len(users) - BIG_COUNT / 16 ** len(prefix)), 1, prefix)

    def test_errors(self):
        url = self.layer.url
        for body in [{"UserPoolId": BIG, "Limit": 61},
                     {"UserPoolId": BIG, "Filter": 'custom:tier = "gold"'},
                     {"UserPoolId": BIG, "Filter": 'email == "x"'},
                     {"UserPoolId": BIG, "PaginationToken": "garbage!"},
                     {"UserPoolId": BIG, "Filter": 'sub ^= "1"', "PaginationToken":
                      base64.urlsafe_b64encode(b'{"f": "sub ^= \\"2\\"", "a": "2"}').decode()}]:
            with self.subTest(body=body):
                self.assert_error(call(url, "ListUsers", body), 400, "InvalidParameterException")
        self.assert_error(call(url, "AdminGetUser", {"UserPoolId": BIG, "Username": "nobody"}),
                          400, "UserNotFoundException")
        self.assert_error(call(url, "GetGroup", {"UserPoolId": BIG, "GroupName": "nope"}),
                          400, "ResourceNotFoundException")
        self.assert_error(call(url, "UpdateUserPool", {"UserPoolId": BIG}),
                          400, "UnsupportedOperationException")
        # Without --upstream, other pools are unreachable (HTTP 500), the synthetic ones listed.
        self.assert_error(call(url, "DescribeUserPool", {"UserPoolId": "us-east-1_other"}),
                          500, "InternalErrorException")
        pools = call(url, "ListUserPools", {"MaxResults": 60})[1]["UserPools"]
        self.assertEqual([p["Id"] for p in pools], [BIG])

    def test_groups_of_a_big_pool(self):
        url = self.layer.url
        groups = call(url, "ListGroups", {"UserPoolId": BIG})[1]["Groups"]
        self.assertEqual(len(groups), synthetic.DEFAULT_GROUPS)
        name = groups[3]["GroupName"]
        body = {"UserPoolId": BIG, "GroupName": name, "Limit": 60}
        status, page = call(url, "ListUsersInGroup", body)
        self.assertEqual((status, len(page["Users"])), (200, 60))
        for user in page["Users"][:10]:
            got = call(url, "AdminListGroupsForUser", {"UserPoolId": BIG,
                                                       "Username": user["Username"]})[1]
            self.assertIn(name, [g["GroupName"] for g in got["Groups"]])
        nxt = call(url, "ListUsersInGroup", dict(body, NextToken=page["NextToken"]))[1]
        subs = [attrs(u)["sub"] for u in page["Users"] + nxt["Users"]]
        self.assertEqual(subs, sorted(set(subs)))


# ---------------------------------------------------------------------------------------
# Groups, quotas, faults, writes on small pools

class GroupTest(LayerTest):
    def test_members_agree_with_each_users_groups(self):
        layer = self.start("--synthetic-pool", f"{SMALL}=3000:4", "--synthetic-everyone", SMALL)
        url = layer.url
        groups = [g["GroupName"] for g in list_groups(url, SMALL)]
        self.assertEqual(len(groups), synthetic.DEFAULT_GROUPS + 1)
        self.assertIn("everyone", groups)
        self.assertIn("🚀-launch-team", groups)
        members = {}
        for g in groups:
            users, _ = list_all(url, "ListUsersInGroup", {"UserPoolId": SMALL, "GroupName": g},
                                "NextToken")
            subs = [attrs(u)["sub"] for u in users]
            self.assertEqual(subs, sorted(set(subs)), g)
            for u in users:
                members.setdefault(u["Username"], set()).add(g)
        everyone, _ = list_all(url, "ListUsers", {"UserPoolId": SMALL}, "PaginationToken")
        self.assertEqual(len(everyone), 3000)
        self.assertEqual(set(members), {u["Username"] for u in everyone})  # everyone's in one
        c = Client(url)
        self.addCleanup(c.close)
        in_none = 0
        for user in everyone:
            got = []
            body = {"UserPoolId": SMALL, "Username": user["Username"], "Limit": 3}
            while True:
                status, answer = c.call("AdminListGroupsForUser", body)
                self.assertEqual(status, 200, answer)
                got += [g["GroupName"] for g in answer["Groups"]]
                if "NextToken" not in answer:
                    break
                body["NextToken"] = answer["NextToken"]
            self.assertEqual(set(got), members[user["Username"]], user["Username"])
            self.assertEqual(len(got), len(set(got)))
            in_none += got == ["everyone"]
        self.assertAlmostEqual(in_none / 3000, 0.4, delta=0.04)
        counts = layer.get("/_layer/synthetic?members=1")[SMALL]["members"]
        self.assertEqual(counts, {g: sum(g in m for m in members.values()) for g in groups})
        group = call(url, "GetGroup", {"UserPoolId": SMALL, "GroupName": groups[0]})[1]["Group"]
        self.assertEqual((group["GroupName"], group["UserPoolId"]), (groups[0], SMALL))


def list_groups(url, pool):
    groups, body = [], {"UserPoolId": pool, "Limit": 7}
    while True:
        answer = call(url, "ListGroups", body)[1]
        groups += answer["Groups"]
        if "NextToken" not in answer:
            return groups
        body["NextToken"] = answer["NextToken"]


class MachineryTest(LayerTest):
    def test_quotas_apply(self):
        # UserList: 30/s × 0.2 = 6/s, a bucket of 6; UserPoolRead: 3.
        layer = self.start("--synthetic-pool", f"{SMALL}=1000", "--quotas", "--quota-scale", "0.2")
        statuses = [call(layer.url, "ListUsers", {"UserPoolId": SMALL})[0] for _ in range(12)]
        self.assertEqual(statuses[:6], [200] * 6)
        self.assertIn(400, statuses[6:])
        answer = call(layer.url, "ListUsers", {"UserPoolId": SMALL})
        if answer[0] != 200:
            self.assert_error(answer, 400, "TooManyRequestsException")
        statuses = [call(layer.url, "DescribeUserPool", {"UserPoolId": SMALL})[0]
                    for _ in range(5)]
        self.assertEqual(statuses, [200, 200, 200, 400, 400])
        # The per-pool group limit (5/s, not lowered by the scale) too.
        statuses = [call(layer.url, "GetGroup", {"UserPoolId": SMALL, "GroupName": "admins"})[0]
                    for _ in range(8)]
        self.assertEqual(statuses[:5], [200] * 5)
        self.assertIn(400, statuses[5:])
        stats = layer.get("/_layer/stats")
        self.assertEqual(stats["ops"]["DescribeUserPool"], {"calls": 5, "throttled": 2, "faults": 0})
        self.assertGreaterEqual(stats["ops"]["ListUsers"]["throttled"], 1)
        limit = call(layer.url, "GetProvisionedLimit", {"LimitDefinition": {
            "LimitClass": "API_CATEGORY", "Attributes": {"Category": "UserList"}}})[1]
        self.assertEqual(limit["Limit"]["ProvisionedLimitValue"], 6)

    def test_faults_latency_tokens_and_recording(self):
        record = os.path.join(tempfile.mkdtemp(), "requests.jsonl")
        layer = self.start("--synthetic-pool", f"{SMALL}=1000", "--faults", "500:1",
                           "--fault-budget", "1", "--record", record, "--latency-ms", "50",
                           "--token-ttl-seconds", "0.2")
        body = {"UserPoolId": SMALL, "Limit": 10}
        self.assert_error(call(layer.url, "ListUsers", body), 500, "InternalErrorException")
        started = time.monotonic()
        status, page = call(layer.url, "ListUsers", body)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.05)
        time.sleep(0.3)
        answer = call(layer.url, "ListUsers", dict(body, PaginationToken=page["PaginationToken"]))
        self.assert_error(answer, 400, "InvalidParameterException")
        self.assertIn("expired", answer[1]["message"])
        with open(record) as f:
            self.assertEqual([json.loads(line)["op"] for line in f], ["ListUsers"] * 3)
        self.assertEqual(layer.get("/_layer/stats")["ops"]["ListUsers"],
                         {"calls": 3, "throttled": 0, "faults": 1})

    def test_no_call_reaches_the_upstream(self):
        """In front of an upstream (a fake that counts), a synthetic pool is answered by the
        layer alone; ListUserPools shows upstream's pools, then the synthetic ones."""
        counts = collections.Counter()

        class Upstream(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                op = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                counts[op] += 1
                body = json.dumps({"UserPools": [{"Id": "us-east-1_moto", "Name": "m"}]}
                                  if op == "ListUserPools" else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        layer = self.start("--upstream", f"http://127.0.0.1:{server.server_address[1]}",
                           "--synthetic-pool", f"{SMALL}=500:1", "--synthetic-empty", EMPTY,
                           "--index-listings")
        url = layer.url
        list_all(url, "ListUsers", {"UserPoolId": SMALL}, "PaginationToken")
        call(url, "DescribeUserPool", {"UserPoolId": SMALL})
        call(url, "AdminCreateUser", {"UserPoolId": EMPTY, "Username": "x",
                                      "MessageAction": "SUPPRESS"})
        call(url, "ListGroups", {"UserPoolId": SMALL})
        self.assertEqual(sum(counts.values()), 0, counts)
        pools = call(url, "ListUserPools", {"MaxResults": 60})[1]["UserPools"]
        self.assertEqual([p["Id"] for p in pools], ["us-east-1_moto", SMALL, EMPTY])
        self.assertEqual(counts, {"ListUserPools": 1})


class WriteTest(LayerTest):
    def test_restore_into_an_empty_pool(self):
        layer = self.start("--synthetic-empty", EMPTY)
        url = layer.url
        self.assertEqual(list_all(url, "ListUsers", {"UserPoolId": EMPTY}, "PaginationToken"),
                         ([], 1))
        self.assertEqual(call(url, "DescribeUserPool", {"UserPoolId": EMPTY})[1]["UserPool"]
                         ["EstimatedNumberOfUsers"], 0)
        self.assertEqual(call(url, "ListGroups", {"UserPoolId": EMPTY})[1], {"Groups": []})
        self.assertEqual(call(url, "CreateGroup", {"UserPoolId": EMPTY, "GroupName": "admins",
                                                   "Precedence": 1})[0], 200)
        self.assert_error(call(url, "CreateGroup", {"UserPoolId": EMPTY, "GroupName": "admins"}),
                          400, "GroupExistsException")
        subs = {}
        for n in range(130):
            status, answer = call(url, "AdminCreateUser", {
                "UserPoolId": EMPTY, "Username": f"User.{n}", "MessageAction": "SUPPRESS",
                "UserAttributes": [{"Name": "email", "Value": f"u{n}@example.com"},
                                   {"Name": "email_verified", "Value": "true"},
                                   {"Name": "custom:tier", "Value": "gold"}]})
            self.assertEqual(status, 200, answer)
            self.assertEqual(answer["User"]["UserStatus"], "FORCE_CHANGE_PASSWORD")
            subs[f"User.{n}"] = attrs(answer["User"])["sub"]
            self.assertRegex(subs[f"User.{n}"], SUB_FORMAT)
        users, pages = list_all(url, "ListUsers", {"UserPoolId": EMPTY}, "PaginationToken")
        self.assertEqual(pages, 3)
        self.assertEqual([attrs(u)["sub"] for u in users], sorted(subs.values()))
        # Refused as Cognito refuses them: a taken username (any case), the schema, sub.
        for body, error in [({"Username": "user.5"}, "UsernameExistsException"),
                            ({"Username": "x", "UserAttributes": [
                                {"Name": "custom:nope", "Value": "1"}]}, "InvalidParameterException"),
                            ({"Username": "y", "UserAttributes": [
                                {"Name": "sub", "Value": "1"}]}, "InvalidParameterException"),
                            ({"Username": "z"}, "InvalidParameterException")]:  # SMS, no phone
            self.assert_error(call(url, "AdminCreateUser", dict(body, UserPoolId=EMPTY)),
                              400, error)
        self.assertEqual(call(url, "AdminCreateUser", {
            "UserPoolId": EMPTY, "Username": "invited", "DesiredDeliveryMediums": ["EMAIL"],
            "UserAttributes": [{"Name": "email", "Value": "i@example.com"}]})[0], 200)
        self.assertEqual(layer.get("/_layer/stats")["messages"], [
            {"op": "AdminCreateUser", "medium": "EMAIL", "username": "invited",
             "kind": "invitation"}])
        for op, body in [("AdminSetUserPassword", {"Password": "Passw0rd!x", "Permanent": True}),
                         ("AdminDisableUser", {}), ("AdminAddUserToGroup", {"GroupName": "admins"}),
                         ("AdminUpdateUserAttributes", {"UserAttributes": [
                             {"Name": "custom:tier", "Value": "silver"}]}),
                         ("AdminDeleteUserAttributes", {"UserAttributeNames": ["email_verified"]})]:
            self.assertEqual(call(url, op, dict(body, UserPoolId=EMPTY, Username="USER.7"))[0],
                             200, op)
        user = call(url, "ListUsers", {"UserPoolId": EMPTY,
                                       "Filter": f'sub = "{subs["User.7"]}"'})[1]["Users"][0]
        self.assertEqual((user["Username"], user["UserStatus"], user["Enabled"]),
                         ("User.7", "CONFIRMED", False))
        self.assertEqual(attrs(user)["custom:tier"], "silver")
        self.assertNotIn("email_verified", attrs(user))
        members, _ = list_all(url, "ListUsersInGroup", {"UserPoolId": EMPTY, "GroupName": "admins"},
                              "NextToken")
        self.assertEqual([u["Username"] for u in members], ["User.7"])
        self.assertEqual(call(url, "AdminDeleteUser", {"UserPoolId": EMPTY,
                                                       "Username": "user.7"})[0], 200)
        self.assertEqual(len(list_all(url, "ListUsers", {"UserPoolId": EMPTY},
                                      "PaginationToken")[0]), 130)
        self.assertEqual(list_all(url, "ListUsersInGroup", {"UserPoolId": EMPTY,
                                                           "GroupName": "admins"}, "NextToken"),
                         ([], 1))
        self.assertEqual(call(url, "DescribeUserPool", {"UserPoolId": EMPTY})[1]["UserPool"]
                         ["EstimatedNumberOfUsers"], 130)

    def test_writes_into_a_generated_pool_show_in_later_listings(self):
        layer = self.start("--synthetic-pool", f"{SMALL}=2000:6")
        url = layer.url
        before, _ = list_all(url, "ListUsers", {"UserPoolId": SMALL}, "PaginationToken")
        victim, changed = before[10], before[20]
        group = "admins"
        members_before = {u["Username"] for u in list_all(
            url, "ListUsersInGroup", {"UserPoolId": SMALL, "GroupName": group}, "NextToken")[0]}
        outsider = next(u["Username"] for u in before[30:] if u["Username"] not in members_before)
        insider = next(u["Username"] for u in before if u["Username"] in members_before)
        for op, body in [("AdminDeleteUser", {"Username": victim["Username"]}),
                         ("AdminDisableUser", {"Username": changed["Username"].upper()}),
                         ("AdminUpdateUserAttributes", {"Username": changed["Username"],
                                                        "UserAttributes": [
                                                            {"Name": "email", "Value": "new@example.com"}]}),
                         ("AdminAddUserToGroup", {"Username": outsider, "GroupName": group}),
                         ("AdminRemoveUserFromGroup", {"Username": insider, "GroupName": group}),
                         ("AdminCreateUser", {"Username": "newcomer", "MessageAction": "SUPPRESS"}),
                         ("AdminAddUserToGroup", {"Username": "newcomer", "GroupName": group})]:
            self.assertEqual(call(url, op, dict(body, UserPoolId=SMALL))[0], 200, op)
        after, _ = list_all(url, "ListUsers", {"UserPoolId": SMALL}, "PaginationToken")
        names = [u["Username"] for u in after]
        self.assertEqual(len(after), 2000)  # one deleted, one created
        self.assertNotIn(victim["Username"], names)
        self.assertIn("newcomer", names)
        subs = [attrs(u)["sub"] for u in after]
        self.assertEqual(subs, sorted(subs))  # the newcomer in its place
        now = after[names.index(changed["Username"])]
        self.assertFalse(now["Enabled"])
        self.assertEqual(attrs(now)["email"], "new@example.com")
        self.assertEqual(attrs(now)["email_verified"], "false")  # a new address is unverified
        self.assertEqual(attrs(now)["sub"], attrs(changed)["sub"])
        members = {u["Username"] for u in list_all(
            url, "ListUsersInGroup", {"UserPoolId": SMALL, "GroupName": group}, "NextToken")[0]}
        expected = (members_before - {insider, victim["Username"]}) | {outsider, "newcomer"}
        self.assertEqual(members, expected)
        # The prefix listing that holds the newcomer has it too, and nothing else changed.
        sub = attrs(after[names.index("newcomer")])["sub"]
        users, _ = list_all(url, "ListUsers", {"UserPoolId": SMALL, "Filter": f'sub ^= "{sub[0]}"',
                                               "Limit": 7}, "PaginationToken")
        self.assertEqual(users, [u for u in after if attrs(u)["sub"].startswith(sub[0])])
        self.assert_error(call(url, "AdminGetUser", {"UserPoolId": SMALL,
                                                     "Username": victim["Username"]}),
                          400, "UserNotFoundException")
        self.assertEqual(call(url, "DescribeUserPool", {"UserPoolId": SMALL})[1]["UserPool"]
                         ["EstimatedNumberOfUsers"], 2000)
        info = layer.get("/_layer/synthetic")[SMALL]
        self.assertEqual((info["added"], info["changed"], info["deleted"]), (1, 1, 1))


if __name__ == "__main__":
    unittest.main()
