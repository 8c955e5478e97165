"""Checks of the AWS-like layer (tests/support/aws_layer.py, the package tests/support/layer/)
against a real moto server.

Run with `python3 -m unittest tests/support/test_aws_layer.py` (needs moto and boto3).
One moto server is started for the module, with a pool of users created directly on it;
each test starts its own layer in front of it with the options under test.
"""

import collections
import http.client
import http.server
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

import boto3
import botocore.config
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import layer  # noqa: E402  (the package tests/support/aws_layer.py runs)

TARGET = "AWSCognitoIdentityProviderService."
AUTH = ("AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/cognito-idp/aws4_request, "
        "SignedHeaders=host, Signature=0")
N_USERS = 120

moto_proc = None
moto_url = None
pool_id = None
usernames = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, op, body, raw_body=None):
    """One AWS JSON call over a fresh connection: (status, headers, parsed body)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        payload = raw_body if raw_body is not None else json.dumps(body)
        conn.request("POST", "/", payload, {"X-Amz-Target": TARGET + op, "Authorization": AUTH,
                                            "Content-Type": "application/x-amz-json-1.1"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, json.loads(data) if data else None
    finally:
        conn.close()


def list_all(url, body):
    """Every page of a ListUsers query, as the raw JSON users, plus the number of pages."""
    users, token, pages = [], None, 0
    while True:
        req = dict(body, PaginationToken=token) if token else dict(body)
        status, _, answer = call(url, "ListUsers", req)
        assert status == 200, answer
        pages += 1
        users.extend(answer["Users"])
        token = answer.get("PaginationToken")
        if not token:
            return users, pages


def client(url, retries=1):
    return boto3.client(
        "cognito-idp", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(retries={"total_max_attempts": retries, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30))


def error_code(exc):
    return exc.response["Error"]["Code"]


class CountingProxy:
    """Forwards POSTs to `upstream` and counts them by operation: shows what reaches moto."""

    def __init__(self, upstream):
        counts = self.counts = collections.Counter()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                counts[self.headers.get("X-Amz-Target", "").rpartition(".")[2]] += 1
                host, port = upstream.removeprefix("http://").split(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request("POST", self.path, body, dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in ("content-type", "x-amzn-errortype"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def setUpModule():
    global moto_proc, moto_url, pool_id
    port = free_port()
    moto_url = f"http://127.0.0.1:{port}"
    moto_proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                  "-p", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if call(moto_url, "ListUserPools", {"MaxResults": 1})[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("moto did not start")
        time.sleep(0.1)
    c = client(moto_url)
    pool_id = c.create_user_pool(PoolName="layer-test", Schema=[
        {"Name": "tenant", "AttributeDataType": "String", "Mutable": True}])["UserPool"]["Id"]
    for i in range(N_USERS):
        name = f"user-{i:04d}"
        attrs = [{"Name": "email", "Value": f"{name}@example.com"},
                 {"Name": "custom:tenant", "Value": f"t{i % 3}"}]
        if i % 4 == 0:
            attrs.append({"Name": "phone_number", "Value": f"+1555{i:07d}"})
        c.admin_create_user(UserPoolId=pool_id, Username=name, UserAttributes=attrs,
                            MessageAction="SUPPRESS")
        if i % 10 == 3:
            c.admin_disable_user(UserPoolId=pool_id, Username=name)
        usernames.append(name)


def tearDownModule():
    if moto_proc:
        moto_proc.terminate()
        moto_proc.wait(10)


class LayerTest(unittest.TestCase):
    def start_layer(self, *options, upstream=None):
        """Start a layer in front of moto (or of `upstream`); returns its URL."""
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "aws_layer.py"),
                                 "--upstream", upstream or moto_url, *options],
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        line = proc.stdout.readline()
        self.assertRegex(line, r"^LISTENING 127\.0\.0\.1:\d+\n$")
        return "http://" + line.split()[1]

    def stats(self, url):
        with urllib.request.urlopen(url + "/_layer/stats") as r:
            return json.load(r)

    def assert_aws_error(self, answer, status, error_type):
        got_status, headers, body = answer
        self.assertEqual(got_status, status, body)
        self.assertEqual(body["__type"], error_type)
        self.assertIn("message", body)
        self.assertEqual(headers["x-amzn-ErrorType"], error_type)
        self.assertEqual(headers["Content-Type"], "application/x-amz-json-1.1")


class ForwardingTest(LayerTest):
    def test_forwards_records_and_counts(self):
        record = os.path.join(tempfile.mkdtemp(), "requests.jsonl")
        url = self.start_layer("--record", record)
        c = client(url)
        pools = c.list_user_pools(MaxResults=60)["UserPools"]
        self.assertIn(pool_id, [p["Id"] for p in pools])
        self.assertEqual(c.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Id"], pool_id)
        page = c.list_users(UserPoolId=pool_id, Limit=7)
        self.assertEqual(len(page["Users"]), 7)
        c.list_users(UserPoolId=pool_id, Limit=7, PaginationToken=page["PaginationToken"])
        status, headers, _ = call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/x-amz-json-1.1")
        self.assertTrue(headers["x-amzn-RequestId"])

        stats = self.stats(url)
        self.assertEqual(stats["ops"]["ListUsers"], {"calls": 3, "throttled": 0, "faults": 0})
        self.assertEqual(stats["total_calls"], 5)
        self.assertEqual(stats["total_throttled"], 0)

        with open(record) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual([r["op"] for r in lines],
                         ["ListUserPools", "DescribeUserPool", "ListUsers", "ListUsers", "ListUsers"])
        self.assertEqual(lines[0]["body"], {"MaxResults": 60})
        self.assertEqual(lines[3]["body"], {"UserPoolId": pool_id, "Limit": 7,
                                            "PaginationToken": page["PaginationToken"]})

        req = urllib.request.Request(url + "/_layer/reset-stats", data=b"", method="POST")
        urllib.request.urlopen(req).read()
        self.assertEqual(self.stats(url), {"ops": {}, "total_calls": 0, "total_throttled": 0,
                                           "total_faults": 0, "triggers": {}, "messages": []})

    def test_relays_moto_errors(self):
        url = self.start_layer()
        status, headers, body = call(url, "DescribeUserPool", {"UserPoolId": "us-east-1_nope"})
        self.assertEqual(status, 400)
        self.assertEqual(body["__type"], "ResourceNotFoundException")
        self.assertEqual(headers["x-amzn-ErrorType"], "ResourceNotFoundException")

    def test_strict_validation(self):
        url = self.start_layer()
        for op, body in [("ListUsers", {"UserPoolId": pool_id, "Limit": 61}),
                         ("ListUsersInGroup", {"UserPoolId": pool_id, "GroupName": "g", "Limit": 100}),
                         ("ListGroups", {"UserPoolId": pool_id, "Limit": 61}),
                         ("AdminListGroupsForUser", {"UserPoolId": pool_id, "Username": "user-0001",
                                                     "Limit": 1000}),
                         ("ListUserPools", {}),
                         ("ListUserPools", {"MaxResults": 0}),
                         ("ListUserPools", {"MaxResults": 61}),
                         ("AdminCreateUser", {"UserPoolId": pool_id, "Username": "bad-sub",
                                              "UserAttributes": [{"Name": "sub", "Value": "x"}]}),
                         ("AdminCreateUser", {"UserPoolId": pool_id, "Username": "bad-identities",
                                              "UserAttributes": [{"Name": "identities",
                                                                  "Value": "[]"}]})]:
            with self.subTest(op=op, body=body):
                self.assert_aws_error(call(url, op, body), 400, "InvalidParameterException")
        # Nothing of that reached moto, and the limits themselves are accepted.
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            client(moto_url).admin_get_user(UserPoolId=pool_id, Username="bad-sub")
        self.assertEqual(error_code(e.exception), "UserNotFoundException")
        self.assertEqual(call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 60})[0], 200)
        self.assertEqual(call(url, "ListUserPools", {"MaxResults": 60})[0], 200)


class IndexTest(LayerTest):
    FILTERS = ['', 'sub ^= "a"', 'sub ^= "3f"', 'sub ^= ""', 'username = "user-0007"',
               'username ^= "user-001"', 'email ^= "user-00"', 'email = "user-0042@example.com"',
               'status = "Disabled"', 'cognito:user_status = "FORCE_CHANGE_PASSWORD"',
               'phone_number ^= "+1555"', 'name = "nobody"', 'username="user-0100"']

    def test_same_answers_as_moto(self):
        url = self.start_layer("--index-listings")
        subs = [a["Value"] for u in list_all(moto_url, {"UserPoolId": pool_id})[0]
                for a in u["Attributes"] if a["Name"] == "sub"]
        filters = self.FILTERS + [f'sub = "{subs[5]}"', f'sub ^= "{subs[9][:2]}"']
        for filt in filters:
            for limit in (None, 1, 7, 60):
                with self.subTest(filter=filt, limit=limit):
                    body = {"UserPoolId": pool_id}
                    if filt:
                        body["Filter"] = filt
                    if limit:
                        body["Limit"] = limit
                    expected, _ = list_all(moto_url, body)
                    got, pages = list_all(url, body)
                    self.assertEqual(got, expected)
                    self.assertEqual(pages, max(1, -(-len(expected) // (limit or 60))))
        self.assertEqual(len(list_all(url, {"UserPoolId": pool_id, "Filter": 'status = "Disabled"'})[0]),
                         N_USERS // 10)

    def test_attributes_to_get(self):
        url = self.start_layer("--index-listings")
        body = {"UserPoolId": pool_id, "Limit": 5, "AttributesToGet": ["email"]}
        self.assertEqual(list_all(url, body)[0], list_all(moto_url, body)[0])

    def test_loads_once_and_writes_keep_it_current(self):
        counter = CountingProxy(moto_url)
        self.addCleanup(counter.close)
        url = self.start_layer("--index-listings", upstream=counter.url)
        c = client(url)
        body = {"UserPoolId": pool_id, "Filter": 'username ^= "zz-index-"'}
        self.assertEqual(list_all(url, body)[0], [])
        self.assertEqual(len(list_all(url, {"UserPoolId": pool_id, "Limit": 10})[0]), N_USERS)
        self.assertEqual(counter.counts["ListUsers"], 1)

        c.admin_create_user(UserPoolId=pool_id, Username="zz-index-1", MessageAction="SUPPRESS")
        self.addCleanup(client(moto_url).admin_delete_user, UserPoolId=pool_id, Username="zz-index-1")
        users = list_all(url, body)[0]
        self.assertEqual([u["Username"] for u in users], ["zz-index-1"])
        self.assertEqual(counter.counts["ListUsers"], 2)  # a creation reloads the index
        # Writes to one user put that user in place (read again with AdminGetUser), and every
        # filter sees them; group changes and reads leave the index as it is.
        c.admin_disable_user(UserPoolId=pool_id, Username="zz-index-1")
        self.assertFalse(list_all(url, body)[0][0]["Enabled"])
        disabled = {"UserPoolId": pool_id, "Filter": 'status = "Disabled"'}
        self.assertIn("zz-index-1", [u["Username"] for u in list_all(url, disabled)[0]])
        c.admin_update_user_attributes(UserPoolId=pool_id, Username="zz-index-1", UserAttributes=[
            {"Name": "email", "Value": "zz-index-1@example.org"}])
        by_email = {"UserPoolId": pool_id, "Filter": 'email = "zz-index-1@example.org"'}
        self.assertEqual([u["Username"] for u in list_all(url, by_email)[0]], ["zz-index-1"])
        c.create_group(UserPoolId=pool_id, GroupName="zz-index-g")
        self.addCleanup(client(moto_url).delete_group, UserPoolId=pool_id, GroupName="zz-index-g")
        c.admin_add_user_to_group(UserPoolId=pool_id, Username="zz-index-1", GroupName="zz-index-g")
        c.admin_get_user(UserPoolId=pool_id, Username="zz-index-1")
        self.assertEqual(len(list_all(url, body)[0]), 1)
        self.assertEqual(counter.counts["ListUsers"], 2)

    def test_forget_after_writes_behind_the_layer(self):
        url = self.start_layer("--index-listings")
        body = {"UserPoolId": pool_id, "Filter": 'username = "zz-behind"'}
        self.assertEqual(list_all(url, body)[0], [])
        client(moto_url).admin_create_user(UserPoolId=pool_id, Username="zz-behind",
                                           MessageAction="SUPPRESS")
        self.addCleanup(client(moto_url).admin_delete_user, UserPoolId=pool_id, Username="zz-behind")
        self.assertEqual(list_all(url, body)[0], [])  # the index does not know
        urllib.request.urlopen(urllib.request.Request(url + "/_layer/forget", data=b"",
                                                      method="POST")).read()
        self.assertEqual([u["Username"] for u in list_all(url, body)[0]], ["zz-behind"])

    def test_bad_filter_and_pool(self):
        url = self.start_layer("--index-listings")
        for filt in ['custom:tenant = "t1"', 'email == "x"', "email = x"]:
            with self.subTest(filter=filt):
                self.assert_aws_error(call(url, "ListUsers", {"UserPoolId": pool_id, "Filter": filt}),
                                      400, "InvalidParameterException")
        status, _, body = call(url, "ListUsers", {"UserPoolId": "us-east-1_nope"})
        self.assertEqual((status, body["__type"]), (400, "ResourceNotFoundException"))

    def test_prefix_queries_cost_matching_users(self):
        """A 20,000-user index answers 256 two-digit sub prefixes, every page, in well under a second."""
        rng = random.Random(3)
        users = [{"Username": f"u{i}", "Attributes": [
            {"Name": "sub", "Value": str(uuid.UUID(int=rng.getrandbits(128), version=4))}],
            "Enabled": True, "UserStatus": "CONFIRMED"} for i in range(20_000)]
        index = layer.PoolIndex(users)
        index.matching('sub ^= "00"')  # builds the sorted column once
        started, seen = time.perf_counter(), []
        for p in range(256):
            body = {"Filter": f'sub ^= "{p:02x}"', "Limit": 60}
            while True:
                page = index.page(body, 0)
                seen.extend(u["Username"] for u in page["Users"])
                if "PaginationToken" not in page:
                    break
                body["PaginationToken"] = page["PaginationToken"]
        elapsed = time.perf_counter() - started
        self.assertEqual(sorted(seen), sorted(u["Username"] for u in users))
        self.assertLess(elapsed, 1.0)


class QuotaTest(LayerTest):
    def test_throttles_at_the_scaled_rate(self):
        # UserList: 30/s × 0.2 = 6/s, bucket of 6. UserPoolRead: 15/s × 0.2 = 3/s, bucket of 3.
        url = self.start_layer("--quotas", "--quota-scale", "0.2", "--index-listings")
        call(moto_url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})
        results, lock = [], threading.Lock()
        duration = 2.0
        started = time.monotonic()

        def hammer():
            while time.monotonic() - started < duration:
                status, _, body = call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})
                with lock:
                    results.append((status, body.get("__type")))
                time.sleep(0.01)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = sum(1 for s, _ in results if s == 200)
        throttled = [r for r in results if r[0] != 200]
        self.assertTrue(all(r == (400, "TooManyRequestsException") for r in throttled), throttled)
        self.assertGreater(len(throttled), 20)
        self.assertTrue(6 + 6 * duration - 2 <= ok <= 6 + 6 * duration + 3, ok)  # ~18
        stats = self.stats(url)["ops"]["ListUsers"]
        self.assertEqual(stats["throttled"], len(throttled))
        self.assertEqual(stats["calls"], len(results))

        # Another category has its own bucket; ops outside the table are never throttled.
        statuses = [call(url, "DescribeUserPool", {"UserPoolId": pool_id})[0] for _ in range(5)]
        self.assertEqual(statuses, [200, 200, 200, 400, 400])
        statuses = [call(url, "GetUserPoolMfaConfig", {"UserPoolId": pool_id})[0]
                    for _ in range(40)]
        self.assertEqual(statuses, [200] * 40)

    def test_error_shape(self):
        url = self.start_layer("--quotas", "--quota-scale", "0.05")  # UserPoolRead: bucket of 1
        self.assertEqual(call(url, "DescribeUserPool", {"UserPoolId": pool_id})[0], 200)
        self.assert_aws_error(call(url, "DescribeUserPool", {"UserPoolId": pool_id}),
                              400, "TooManyRequestsException")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            client(url).describe_user_pool(UserPoolId=pool_id)
        self.assertEqual(error_code(e.exception), "TooManyRequestsException")
        self.assertEqual(self.stats(url)["total_throttled"], 2)


class FaultTest(LayerTest):
    def raw_request(self, url, op, body):
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/", json.dumps(body), {"X-Amz-Target": TARGET + op,
                                                     "Authorization": AUTH})
        try:
            return conn.getresponse().read()
        finally:
            conn.close()

    def user_exists(self, username):
        try:
            client(moto_url).admin_get_user(UserPoolId=pool_id, Username=username)
            return True
        except botocore.exceptions.ClientError as e:
            self.assertEqual(error_code(e), "UserNotFoundException")
            return False

    def test_throttle_and_500_are_not_forwarded(self):
        for kind, status, error_type in [("throttle", 400, "TooManyRequestsException"),
                                         ("500", 500, "InternalErrorException")]:
            with self.subTest(kind=kind):
                url = self.start_layer("--faults", f"{kind}:1", "--fault-budget", "1",
                                       "--fault-ops", "AdminCreateUser")
                name = f"fault-{kind}"
                body = {"UserPoolId": pool_id, "Username": name, "MessageAction": "SUPPRESS"}
                self.assert_aws_error(call(url, "AdminCreateUser", body), status, error_type)
                self.assertFalse(self.user_exists(name))
                # The budget is spent: the retry goes through.
                self.assertEqual(call(url, "AdminCreateUser", body)[0], 200)
                self.addCleanup(client(moto_url).admin_delete_user, UserPoolId=pool_id, Username=name)
                stats = self.stats(url)
                self.assertEqual(stats["ops"]["AdminCreateUser"],
                                 {"calls": 2, "throttled": 0, "faults": 1})

    def test_reset_before_and_after_forwarding(self):
        for kind, reaches_moto in [("reset", False), ("reset_after", True)]:
            with self.subTest(kind=kind):
                url = self.start_layer("--faults", f"{kind}:1", "--fault-ops", "AdminCreateUser")
                name = f"fault-{kind}"
                body = {"UserPoolId": pool_id, "Username": name, "MessageAction": "SUPPRESS"}
                with self.assertRaises(ConnectionResetError):
                    self.raw_request(url, "AdminCreateUser", body)
                self.assertEqual(self.user_exists(name), reaches_moto)
                if reaches_moto:
                    self.addCleanup(client(moto_url).admin_delete_user, UserPoolId=pool_id,
                                    Username=name)
                # Other ops are untouched, and the layer keeps serving.
                self.assertEqual(call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})[0], 200)
                self.assertEqual(self.stats(url)["ops"]["AdminCreateUser"]["faults"], 1)

    def test_seeded_faults_are_reproducible(self):
        def outcomes(seed):
            url = self.start_layer("--faults", "500:0.3,throttle:0.2", "--seed", str(seed))
            return [call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})[0]
                    for _ in range(30)]
        first = outcomes(7)
        self.assertEqual(first, outcomes(7))
        self.assertNotEqual(first, outcomes(8))
        self.assertEqual(set(first), {200, 400, 500})

    def test_fault_budget_caps_faults(self):
        url = self.start_layer("--faults", "500:1", "--fault-budget", "3")
        statuses = [call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})[0]
                    for _ in range(6)]
        self.assertEqual(statuses, [500, 500, 500, 200, 200, 200])
        self.assertEqual(self.stats(url)["total_faults"], 3)

    def test_fail_always(self):
        url = self.start_layer("--fail-always", "ListGroups")
        for _ in range(3):
            self.assert_aws_error(call(url, "ListGroups", {"UserPoolId": pool_id}),
                                  500, "InternalErrorException")
        self.assertEqual(call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 1})[0], 200)

    def test_sdk_retries_through_faults(self):
        url = self.start_layer("--faults", "throttle:0.3,500:0.3,reset:0.2", "--fault-budget", "4",
                               "--index-listings")
        c = client(url, retries=10)
        names = [u["Username"] for page in c.get_paginator("list_users").paginate(
            UserPoolId=pool_id, PaginationConfig={"PageSize": 20}) for u in page["Users"]]
        self.assertEqual(sorted(names), sorted(usernames))
        self.assertEqual(self.stats(url)["total_faults"], 4)


class TokenExpiryTest(LayerTest):
    def test_old_tokens_are_rejected(self):
        for options in ([], ["--index-listings"]):
            with self.subTest(options=options):
                url = self.start_layer("--token-ttl-seconds", "0.05", "--latency-ms", "100", *options)
                status, _, page = call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 2})
                self.assertEqual(status, 200)
                answer = call(url, "ListUsers", {"UserPoolId": pool_id, "Limit": 2,
                                                 "PaginationToken": page["PaginationToken"]})
                self.assert_aws_error(answer, 400, "InvalidParameterException")
                self.assertEqual(answer[2]["message"], "Invalid pagination token: token has expired")

    def test_fresh_tokens_work(self):
        url = self.start_layer("--token-ttl-seconds", "5", "--index-listings")
        users, pages = list_all(url, {"UserPoolId": pool_id, "Limit": 50})
        self.assertEqual((len(users), pages), (N_USERS, 3))


# ---------------------------------------------------------------------------------------
# Pool settings moto ignores

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:"
STRICT_SCHEMA = [
    {"Name": "tenant", "AttributeDataType": "String", "Mutable": True,
     "StringAttributeConstraints": {"MinLength": "2", "MaxLength": "5"}},
    {"Name": "level", "AttributeDataType": "Number", "Mutable": False,
     "NumberAttributeConstraints": {"MinValue": "1", "MaxValue": "10"}},
    {"Name": "secret", "AttributeDataType": "String", "DeveloperOnlyAttribute": True,
     "Mutable": True},
    {"Name": "flag", "AttributeDataType": "Boolean", "Mutable": True},
    {"Name": "when", "AttributeDataType": "DateTime", "Mutable": True}]


def new_pool(c=None, **settings):
    """A pool created on moto directly (not through a layer); returns its id."""
    c = c or client(moto_url)
    return c.create_user_pool(PoolName=f"p-{uuid.uuid4().hex[:8]}", **settings)["UserPool"]["Id"]


def moto_user(pool, username):
    """The user as moto holds it, or None."""
    try:
        return client(moto_url).admin_get_user(UserPoolId=pool, Username=username)
    except botocore.exceptions.ClientError as e:
        if error_code(e) == "UserNotFoundException":
            return None
        raise


def attr_map(user):
    return {a["Name"]: a["Value"] for a in user.get("UserAttributes", user.get("Attributes", []))}


class SettingsTest(LayerTest):
    def test_moto_echoes_the_settings_the_layer_reads(self):
        """moto 5.2.1 keeps every setting the layer acts on, so a pool created directly on moto
        works; if a moto upgrade drops one, this fails (and such pools must then be created
        through the layer, which remembers the CreateUserPool request)."""
        pool = new_pool(UsernameConfiguration={"CaseSensitive": False},
                        AliasAttributes=["email", "phone_number"],
                        LambdaConfig={"PreSignUp": LAMBDA + "pre", "CustomEmailSender": {
                            "LambdaVersion": "V1_0", "LambdaArn": LAMBDA + "send"}},
                        UserAttributeUpdateSettings={
                            "AttributesRequireVerificationBeforeUpdate": ["email"]},
                        Schema=STRICT_SCHEMA)
        described = client(moto_url).describe_user_pool(UserPoolId=pool)["UserPool"]
        self.assertEqual(described["UsernameConfiguration"], {"CaseSensitive": False})
        self.assertEqual(described["AliasAttributes"], ["email", "phone_number"])
        self.assertEqual(described["LambdaConfig"]["PreSignUp"], LAMBDA + "pre")
        self.assertEqual(described["LambdaConfig"]["CustomEmailSender"]["LambdaArn"], LAMBDA + "send")
        self.assertEqual(described["UserAttributeUpdateSettings"],
                         {"AttributesRequireVerificationBeforeUpdate": ["email"]})
        schema = {a["Name"]: a for a in described["SchemaAttributes"]}
        self.assertEqual(schema["custom:tenant"]["StringAttributeConstraints"],
                         {"MinLength": "2", "MaxLength": "5"})
        self.assertEqual(schema["custom:level"]["NumberAttributeConstraints"],
                         {"MinValue": "1", "MaxValue": "10"})
        self.assertFalse(schema["custom:level"]["Mutable"])
        self.assertTrue(schema["dev:custom:secret"]["DeveloperOnlyAttribute"])
        # What moto leaves out: the standard attributes of a pool created with a Schema (the
        # layer supplies Cognito's), and any UsernameConfiguration when none was given
        # (case-sensitive, the layer's default).
        self.assertNotIn("email", schema)
        self.assertNotIn("UsernameConfiguration",
                         client(moto_url).describe_user_pool(UserPoolId=new_pool())["UserPool"])
        settings = layer.PoolSettings(described)
        self.assertFalse(settings.case_sensitive)
        self.assertEqual(settings.alias_attributes, {"email", "phone_number"})
        self.assertTrue(settings.trigger("PreSignUp") and settings.trigger("CustomEmailSender"))
        self.assertIsNotNone(settings.entry("email"))
        self.assertIsNone(settings.entry("custom:secret"))
        self.assertIsNotNone(settings.entry("dev:custom:secret"))

    def test_create_request_fills_what_describe_leaves_out(self):
        created = {"UsernameConfiguration": {"CaseSensitive": False},
                   "AliasAttributes": ["email"], "LambdaConfig": {"PreSignUp": LAMBDA + "pre"},
                   "Schema": STRICT_SCHEMA}
        settings = layer.PoolSettings({"Id": "us-east-1_x"}, created)
        self.assertFalse(settings.case_sensitive)
        self.assertEqual(settings.alias_attributes, {"email"})
        self.assertTrue(settings.trigger("PreSignUp"))
        self.assertIsNotNone(settings.entry("custom:tenant"))
        self.assertIsNotNone(settings.entry("dev:custom:secret"))
        self.assertIsNone(settings.entry("custom:secret"))
        # Through the layer, the request is remembered for the pool moto creates.
        url = self.start_layer()
        pool = client(url).create_user_pool(PoolName="through-layer", **{
            k: v for k, v in created.items()})["UserPool"]["Id"]
        self.assertEqual(call(url, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "a", "MessageAction": "SUPPRESS"})[0], 200)
        self.assertEqual(self.stats(url)["triggers"], {"PreSignUp_AdminCreateUser": 1})

    def test_cached_per_pool_and_dropped_on_update(self):
        counter = CountingProxy(moto_url)
        self.addCleanup(counter.close)
        url = self.start_layer(upstream=counter.url)
        pool = new_pool()
        c = client(url)
        for i in range(3):
            c.admin_create_user(UserPoolId=pool, Username=f"u{i}", MessageAction="SUPPRESS")
        self.assertEqual(counter.counts["DescribeUserPool"], 1)
        self.assertEqual(self.stats(url)["triggers"], {})
        c.update_user_pool(UserPoolId=pool, LambdaConfig={"PreSignUp": LAMBDA + "pre"})
        c.admin_create_user(UserPoolId=pool, Username="u3", MessageAction="SUPPRESS")
        self.assertEqual(counter.counts["DescribeUserPool"], 2)
        self.assertEqual(self.stats(url)["triggers"], {"PreSignUp_AdminCreateUser": 1})
        # Only DescribeUserPool calls made by the client are counted in the stats.
        self.assertNotIn("DescribeUserPool", self.stats(url)["ops"])


class CaseInsensitiveTest(LayerTest):
    def test_one_user_whatever_the_spelling(self):
        for options in ([], ["--index-listings"]):
            with self.subTest(options=options):
                url = self.start_layer(*options)
                c = client(url)
                pool = new_pool(UsernameConfiguration={"CaseSensitive": False})
                c.create_group(UserPoolId=pool, GroupName="admins")
                c.admin_create_user(UserPoolId=pool, Username="Alice", MessageAction="SUPPRESS")
                with self.assertRaises(botocore.exceptions.ClientError) as e:
                    c.admin_create_user(UserPoolId=pool, Username="aLICE", MessageAction="SUPPRESS")
                self.assertEqual(error_code(e.exception), "UsernameExistsException")
                self.assertIsNone(moto_user(pool, "aLICE"))
                self.assertEqual(c.admin_get_user(UserPoolId=pool, Username="ALICE")["Username"],
                                 "Alice")
                c.admin_disable_user(UserPoolId=pool, Username="alice")
                self.assertFalse(moto_user(pool, "Alice")["Enabled"])
                c.admin_add_user_to_group(UserPoolId=pool, Username="aliCE", GroupName="admins")
                groups = c.admin_list_groups_for_user(UserPoolId=pool, Username="ALICE")["Groups"]
                self.assertEqual([g["GroupName"] for g in groups], ["admins"])
                c.admin_update_user_attributes(UserPoolId=pool, Username="alice", UserAttributes=[
                    {"Name": "name", "Value": "Alice A."}])
                self.assertEqual(attr_map(moto_user(pool, "Alice"))["name"], "Alice A.")
                for filt in ['username = "ALICE"', 'username ^= "ali"', 'username = "Alice"']:
                    users = c.list_users(UserPoolId=pool, Filter=filt)["Users"]
                    self.assertEqual([u["Username"] for u in users], ["Alice"], filt)
                self.assertEqual(c.list_users(UserPoolId=pool, Filter='username = "bob"')["Users"], [])
                c.admin_delete_user(UserPoolId=pool, Username="ALICE")
                self.assertIsNone(moto_user(pool, "Alice"))
                c.admin_create_user(UserPoolId=pool, Username="alice", MessageAction="SUPPRESS")
                self.assertEqual(c.admin_get_user(UserPoolId=pool, Username="ALICE")["Username"],
                                 "alice")

    def test_case_sensitive_pools_are_left_alone(self):
        url = self.start_layer()
        c = client(url)
        for settings in ({}, {"UsernameConfiguration": {"CaseSensitive": True}}):
            pool = new_pool(**settings)
            c.admin_create_user(UserPoolId=pool, Username="Bob", MessageAction="SUPPRESS")
            c.admin_create_user(UserPoolId=pool, Username="bob", MessageAction="SUPPRESS")
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                c.admin_get_user(UserPoolId=pool, Username="BOB")
            self.assertEqual(error_code(e.exception), "UserNotFoundException")
            users = c.list_users(UserPoolId=pool, Filter='username = "bob"')["Users"]
            self.assertEqual([u["Username"] for u in users], ["bob"])

    def test_users_created_behind_the_layer(self):
        url = self.start_layer()
        c = client(url)
        pool = new_pool(UsernameConfiguration={"CaseSensitive": False})
        c.admin_create_user(UserPoolId=pool, Username="first", MessageAction="SUPPRESS")
        client(moto_url).admin_create_user(UserPoolId=pool, Username="Carol",
                                           MessageAction="SUPPRESS")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            c.admin_create_user(UserPoolId=pool, Username="CAROL", MessageAction="SUPPRESS")
        self.assertEqual(error_code(e.exception), "UsernameExistsException")
        self.assertEqual(c.admin_get_user(UserPoolId=pool, Username="carol")["Username"], "Carol")


class AliasTest(LayerTest):
    def test_usernames_in_alias_format_are_refused(self):
        url = self.start_layer()
        for aliases, bad, good in [(["email"], "ann@example.com", "+15550000001"),
                                   (["phone_number"], "+15550000001", "ann@example.com"),
                                   (["preferred_username"], None, "ann@example.com")]:
            with self.subTest(aliases=aliases):
                pool = new_pool(AliasAttributes=aliases)
                if bad:
                    answer = call(url, "AdminCreateUser", {"UserPoolId": pool, "Username": bad,
                                                           "MessageAction": "SUPPRESS"})
                    self.assert_aws_error(answer, 400, "InvalidParameterException")
                    self.assertIn("Username cannot be of", answer[2]["message"])
                    self.assertIsNone(moto_user(pool, bad))
                self.assertEqual(call(url, "AdminCreateUser", {
                    "UserPoolId": pool, "Username": good, "MessageAction": "SUPPRESS"})[0], 200)
        answer = call(url, "AdminCreateUser", {"UserPoolId": new_pool(AliasAttributes=["email"]),
                                               "Username": "x@y.org", "MessageAction": "SUPPRESS"})
        self.assertEqual(answer[2]["message"], "Username cannot be of email format, since user "
                                               "pool is configured for email alias.")

    def test_a_verified_alias_belongs_to_one_user(self):
        url = self.start_layer()
        c = client(url)
        pool = new_pool(AliasAttributes=["email", "phone_number"])

        def create(name, *attrs, **extra):
            return c.admin_create_user(UserPoolId=pool, Username=name, MessageAction="SUPPRESS",
                                       UserAttributes=[{"Name": n, "Value": v} for n, v in attrs],
                                       **extra)

        shared = ("email", "shared@example.com")
        create("u1", shared, ("email_verified", "true"))
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            create("u2", shared, ("email_verified", "true"))
        self.assertEqual(error_code(e.exception), "AliasExistsException")
        self.assertIsNone(moto_user(pool, "u2"))
        create("u2", shared)  # unverified: no claim on the alias
        create("u3", shared, ("email_verified", "true"), ForceAliasCreation=True)
        self.assertEqual(attr_map(moto_user(pool, "u1"))["email_verified"], "false")
        self.assertEqual(attr_map(moto_user(pool, "u3"))["email_verified"], "true")
        # Update: verifying the address u3 holds verified is refused (no ForceAliasCreation
        # on AdminUpdateUserAttributes); a change to another address is fine.
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            c.admin_update_user_attributes(UserPoolId=pool, Username="u2", UserAttributes=[
                {"Name": "email_verified", "Value": "true"}])
        self.assertEqual(error_code(e.exception), "AliasExistsException")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            c.admin_update_user_attributes(UserPoolId=pool, Username="u1", UserAttributes=[
                {"Name": "email", "Value": "shared@example.com"},
                {"Name": "email_verified", "Value": "true"}])
        self.assertEqual(error_code(e.exception), "AliasExistsException")
        c.admin_update_user_attributes(UserPoolId=pool, Username="u1", UserAttributes=[
            {"Name": "email", "Value": "own@example.com"}, {"Name": "email_verified", "Value": "true"}])
        # Phone numbers the same way.
        create("p1", ("phone_number", "+15550100001"), ("phone_number_verified", "true"))
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            create("p2", ("phone_number", "+15550100001"), ("phone_number_verified", "true"))
        self.assertEqual(error_code(e.exception), "AliasExistsException")
        # In a case-insensitive pool, an email is the same whatever its case.
        ci = new_pool(AliasAttributes=["email"], UsernameConfiguration={"CaseSensitive": False})
        c.admin_create_user(UserPoolId=ci, Username="c1", MessageAction="SUPPRESS", UserAttributes=[
            {"Name": "email", "Value": "Mixed@Example.com"}, {"Name": "email_verified", "Value": "true"}])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            c.admin_create_user(UserPoolId=ci, Username="c2", MessageAction="SUPPRESS", UserAttributes=[
                {"Name": "email", "Value": "mixed@example.COM"},
                {"Name": "email_verified", "Value": "true"}])
        self.assertEqual(error_code(e.exception), "AliasExistsException")
        # Without the alias setting, nothing is unique.
        other = new_pool()
        for name in ("v1", "v2"):
            c.admin_create_user(UserPoolId=other, Username=name, MessageAction="SUPPRESS",
                                UserAttributes=[{"Name": "email", "Value": "same@example.com"},
                                                {"Name": "email_verified", "Value": "true"}])


class TriggerMessageTest(LayerTest):
    def test_triggers_and_messages_are_recorded(self):
        url = self.start_layer()
        c = client(url)
        pool = new_pool(LambdaConfig={"PreSignUp": LAMBDA + "pre", "CustomMessage": LAMBDA + "msg",
                                      "CustomSMSSender": {"LambdaVersion": "V1_0",
                                                          "LambdaArn": LAMBDA + "sms"}})
        email = [{"Name": "email", "Value": "e@example.com"}]
        c.admin_create_user(UserPoolId=pool, Username="quiet", MessageAction="SUPPRESS",
                            UserAttributes=email)
        stats = self.stats(url)
        self.assertEqual((stats["triggers"], stats["messages"]), ({"PreSignUp_AdminCreateUser": 1}, []))

        # The default medium is SMS: a user without a phone number cannot be invited.
        answer = call(url, "AdminCreateUser", {"UserPoolId": pool, "Username": "nophone",
                                               "UserAttributes": email})
        self.assert_aws_error(answer, 400, "InvalidParameterException")
        self.assertIn("desired delivery medium", answer[2]["message"])
        self.assertIsNone(moto_user(pool, "nophone"))
        answer = call(url, "AdminCreateUser", {"UserPoolId": pool, "Username": "noemail",
                                               "DesiredDeliveryMediums": ["EMAIL"]})
        self.assert_aws_error(answer, 400, "InvalidParameterException")

        c.admin_create_user(UserPoolId=pool, Username="invited", DesiredDeliveryMediums=["EMAIL"],
                            UserAttributes=email + [{"Name": "phone_number", "Value": "+15550100009"}])
        c.admin_create_user(UserPoolId=pool, Username="texted",
                            UserAttributes=[{"Name": "phone_number", "Value": "+15550100008"}])
        c.admin_update_user_attributes(UserPoolId=pool, Username="quiet", UserAttributes=[
            {"Name": "email", "Value": "new@example.com"}])
        c.admin_update_user_attributes(UserPoolId=pool, Username="quiet", UserAttributes=[
            {"Name": "email", "Value": "verified@example.com"},
            {"Name": "email_verified", "Value": "true"}])
        c.admin_update_user_attributes(UserPoolId=pool, Username="quiet", UserAttributes=[
            {"Name": "email", "Value": "verified@example.com"}, {"Name": "name", "Value": "Q"}])
        c.admin_update_user_attributes(UserPoolId=pool, Username="texted", UserAttributes=[
            {"Name": "phone_number", "Value": "+15550100007"}])
        client(moto_url).admin_set_user_password(UserPoolId=pool, Username="quiet",
                                                 Password="Passw0rd!x", Permanent=True)
        c.admin_reset_user_password(UserPoolId=pool, Username="quiet")
        stats = self.stats(url)
        self.assertEqual(stats["messages"], [
            {"op": "AdminCreateUser", "medium": "EMAIL", "username": "invited", "kind": "invitation"},
            {"op": "AdminCreateUser", "medium": "SMS", "username": "texted", "kind": "invitation"},
            {"op": "AdminUpdateUserAttributes", "medium": "EMAIL", "username": "quiet",
             "kind": "verification_code"},
            {"op": "AdminUpdateUserAttributes", "medium": "SMS", "username": "texted",
             "kind": "verification_code"},
            {"op": "AdminResetUserPassword", "medium": "EMAIL", "username": "quiet",
             "kind": "reset_code"}])
        self.assertEqual(stats["triggers"], {
            "PreSignUp_AdminCreateUser": 3, "CustomMessage_AdminCreateUser": 2,
            "CustomSMSSender_AdminCreateUser": 1, "CustomMessage_UpdateUserAttribute": 2,
            "CustomSMSSender_UpdateUserAttribute": 1, "CustomMessage_ForgotPassword": 1})
        urllib.request.urlopen(urllib.request.Request(url + "/_layer/reset-stats", data=b"",
                                                      method="POST")).read()
        self.assertEqual((self.stats(url)["triggers"], self.stats(url)["messages"]), ({}, []))

    def test_email_sign_in_pools_invite_to_the_username(self):
        url = self.start_layer()
        pool = new_pool(UsernameAttributes=["email"])
        self.assertEqual(call(url, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "ann@example.com",
            "DesiredDeliveryMediums": ["EMAIL"]})[0], 200)
        self.assertEqual([m["medium"] for m in self.stats(url)["messages"]], ["EMAIL"])

    def test_resend_invites_the_stored_user(self):
        url = self.start_layer()
        c = client(url)
        pool = new_pool(UsernameConfiguration={"CaseSensitive": False},
                        LambdaConfig={"PreSignUp": LAMBDA + "pre"})
        c.admin_create_user(UserPoolId=pool, Username="Dora", MessageAction="SUPPRESS",
                            UserAttributes=[{"Name": "email", "Value": "dora@example.com"}])
        answer = call(url, "AdminCreateUser", {"UserPoolId": pool, "Username": "dora",
                                               "MessageAction": "RESEND"})
        self.assert_aws_error(answer, 400, "InvalidParameterException")  # SMS, no phone
        c.admin_create_user(UserPoolId=pool, Username="DORA", MessageAction="RESEND",
                            DesiredDeliveryMediums=["EMAIL"])
        stats = self.stats(url)
        self.assertEqual(stats["messages"], [{"op": "AdminCreateUser", "medium": "EMAIL",
                                              "username": "Dora", "kind": "invitation"}])
        self.assertEqual(stats["triggers"], {"PreSignUp_AdminCreateUser": 1})  # not on RESEND

    def test_no_triggers_without_lambda_config(self):
        url = self.start_layer()
        pool = new_pool()
        client(url).admin_create_user(UserPoolId=pool, Username="x", MessageAction="SUPPRESS")
        self.assertEqual(self.stats(url)["triggers"], {})


class SchemaTest(LayerTest):
    def test_attributes_checked_against_the_schema(self):
        url = self.start_layer()
        pool = new_pool(Schema=STRICT_SCHEMA)
        bad = [("custom:nope", "x", "does not exist"), ("custom:secret", "x", "does not exist"),
               ("dev:custom:tenant", "abc", "does not exist"), ("nickname2", "x", "does not exist"),
               ("custom:tenant", "x", "no shorter than 2"),
               ("custom:tenant", "abcdef", "no longer than 5"),
               ("custom:level", "1.5", "integer"), ("custom:level", "0", "no less than 1"),
               ("custom:level", "11", "no greater than 10"), ("custom:flag", "yes", "true or false"),
               ("custom:when", "yesterday", "date"), ("name", "n" * 2049, "no longer than 2048"),
               ("email", "not-an-email", "email"), ("phone_number", "555-0100", "phone"),
               ("email_verified", "maybe", "true or false"), ("updated_at", "soon", "integer")]
        for i, (name, value, words) in enumerate(bad):
            with self.subTest(name=name, value=value[:20]):
                username = f"bad-{i}"
                answer = call(url, "AdminCreateUser", {
                    "UserPoolId": pool, "Username": username, "MessageAction": "SUPPRESS",
                    "UserAttributes": [{"Name": name, "Value": value}]})
                self.assert_aws_error(answer, 400, "InvalidParameterException")
                self.assertIn(words, answer[2]["message"])
                self.assertIn("Attributes did not conform to the schema", answer[2]["message"])
                self.assertIsNone(moto_user(pool, username))
        # Every problem at once.
        answer = call(url, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "many", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "custom:nope", "Value": "x"},
                               {"Name": "custom:level", "Value": "99"}]})
        self.assertIn("custom:nope", answer[2]["message"])
        self.assertIn("custom:level", answer[2]["message"])
        good = [("custom:tenant", "ab"), ("custom:level", "10"), ("dev:custom:secret", "s"),
                ("custom:flag", "true"), ("custom:when", "2024-01-02T03:04:05Z"),
                ("name", "n" * 2048), ("email", "ok@example.com"), ("phone_number", "+15550100001"),
                ("email_verified", "true"), ("updated_at", "1700000000")]
        self.assertEqual(call(url, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "good", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": n, "Value": v} for n, v in good]})[0], 200)
        self.assertEqual(attr_map(moto_user(pool, "good"))["dev:custom:secret"], "s")

        # Updates: the same checks, and immutable attributes, sub and identities refused.
        for attrs, words in [([("custom:level", "5")], "immutable"),
                             ([("custom:tenant", "toolong")], "no longer than 5"),
                             ([("custom:nope", "x")], "does not exist"),
                             ([("sub", "x")], "non-mutable"), ([("identities", "[]")], "non-mutable")]:
            with self.subTest(update=attrs):
                answer = call(url, "AdminUpdateUserAttributes", {
                    "UserPoolId": pool, "Username": "good",
                    "UserAttributes": [{"Name": n, "Value": v} for n, v in attrs]})
                self.assert_aws_error(answer, 400, "InvalidParameterException")
                self.assertIn(words, answer[2]["message"])
        self.assertEqual(attr_map(moto_user(pool, "good"))["custom:level"], "10")
        self.assertEqual(call(url, "AdminUpdateUserAttributes", {
            "UserPoolId": pool, "Username": "good",
            "UserAttributes": [{"Name": "custom:tenant", "Value": "xyz"}]})[0], 200)
        # Deletions: names checked, immutable ones kept.
        for names, words in [(["custom:nope"], "does not exist"), (["custom:level"], "immutable"),
                             (["sub"], "non-mutable")]:
            answer = call(url, "AdminDeleteUserAttributes", {
                "UserPoolId": pool, "Username": "good", "UserAttributeNames": names})
            self.assert_aws_error(answer, 400, "InvalidParameterException")
            self.assertIn(words, answer[2]["message"])
        self.assertEqual(call(url, "AdminDeleteUserAttributes", {
            "UserPoolId": pool, "Username": "good", "UserAttributeNames": ["custom:flag"]})[0], 200)

    def test_required_attributes(self):
        url = self.start_layer()
        pool = new_pool(Schema=[{"Name": "email", "AttributeDataType": "String", "Required": True,
                                 "Mutable": True}])
        answer = call(url, "AdminCreateUser", {"UserPoolId": pool, "Username": "x",
                                               "MessageAction": "SUPPRESS"})
        self.assert_aws_error(answer, 400, "InvalidParameterException")
        self.assertIn("email", answer[2]["message"])
        self.assertEqual(call(url, "AdminCreateUser", {
            "UserPoolId": pool, "Username": "x", "MessageAction": "SUPPRESS",
            "UserAttributes": [{"Name": "email", "Value": "x@example.com"}]})[0], 200)
        answer = call(url, "AdminDeleteUserAttributes", {
            "UserPoolId": pool, "Username": "x", "UserAttributeNames": ["email"]})
        self.assert_aws_error(answer, 400, "InvalidParameterException")


class GroupLimitTest(LayerTest):
    def burst(self, url, pool, op, n):
        """n calls in a row: (statuses, seconds taken)."""
        body = {"UserPoolId": pool} if op == "ListGroups" else {"UserPoolId": pool, "GroupName": "g"}
        started = time.monotonic()
        statuses = [call(url, op, body)[0] for _ in range(n)]
        return statuses, time.monotonic() - started

    def assert_limited(self, burst, capacity, rate):
        """A bucket of `capacity` tokens refilled at `rate`/s: the first `capacity` calls pass,
        later ones only as tokens come back, and some are refused."""
        statuses, elapsed = burst
        self.assertEqual(statuses[:capacity], [200] * capacity, statuses)
        self.assertLessEqual(statuses.count(200), capacity + rate * elapsed + 1, (statuses, elapsed))
        self.assertIn(400, statuses)

    def test_per_pool_per_operation(self):
        url = self.start_layer("--quotas")
        a, b = new_pool(), new_pool()
        client(moto_url).create_group(UserPoolId=a, GroupName="g")
        client(moto_url).create_group(UserPoolId=b, GroupName="g")
        first = self.burst(url, a, "ListGroups", 12)
        self.assert_limited(first, 5, 5)
        self.assertEqual(self.burst(url, b, "ListGroups", 5)[0], [200] * 5)  # another pool
        self.assert_limited(self.burst(url, a, "GetGroup", 12), 5, 5)  # another operation
        answer = call(url, "ListGroups", {"UserPoolId": a})
        if answer[0] != 200:
            self.assert_aws_error(answer, 400, "TooManyRequestsException")
        refused = first[0].count(400) + (answer[0] != 200)
        self.assertEqual(self.stats(url)["ops"]["ListGroups"]["throttled"], refused)

    def test_scaled_up_set_and_only_with_quotas(self):
        pool = new_pool()
        url = self.start_layer("--quotas", "--quota-scale", "2")
        self.assert_limited(self.burst(url, pool, "ListGroups", 25), 10, 10)
        # Not lowered with the category quotas (UserPoolResourceRead: 20 × 0.5 = 10/s).
        url = self.start_layer("--quotas", "--quota-scale", "0.5")
        self.assert_limited(self.burst(url, pool, "ListGroups", 12), 5, 5)
        url = self.start_layer("--quotas", "--group-rate", "2")
        self.assert_limited(self.burst(url, pool, "ListGroups", 8), 2, 2)
        url = self.start_layer()
        self.assertEqual(self.burst(url, pool, "ListGroups", 25)[0], [200] * 25)


class ProvisionedLimitTest(LayerTest):
    def limit(self, url, category, cls="API_CATEGORY"):
        return call(url, "GetProvisionedLimit", {"LimitDefinition": {
            "LimitClass": cls, "Attributes": {"Category": category}}})

    def test_answers_the_enforced_rates(self):
        url = self.start_layer("--quota-scale", "2")
        for category, free in [("UserList", 30), ("UserCreation", 50), ("UserUpdate", 25),
                               ("UserPoolResourceRead", 20), ("UserAuthentication", 120)]:
            status, _, body = self.limit(url, category)
            self.assertEqual(status, 200, body)
            self.assertEqual(body, {"Limit": {
                "LimitDefinition": {"LimitClass": "API_CATEGORY", "Attributes": {"Category": category}},
                "ProvisionedLimitValue": 2 * free, "FreeLimitValue": free}})
        for category in layer.QUOTAS:
            self.assertEqual(self.limit(url, category)[0], 200)
        self.assert_aws_error(self.limit(url, "NoSuchCategory"), 400, "InvalidParameterException")
        self.assert_aws_error(self.limit(url, "UserList", "OTHER"), 400, "InvalidParameterException")
        self.assertEqual(self.limit(self.start_layer(), "UserList")[2]["Limit"]["ProvisionedLimitValue"], 30)

    def test_an_endpoint_without_the_operation(self):
        url = self.start_layer("--no-provisioned-limits")
        self.assert_aws_error(self.limit(url, "UserList"), 400, "UnknownOperationException")
        self.assertEqual(self.stats(url)["ops"]["GetProvisionedLimit"]["calls"], 1)


if __name__ == "__main__":
    unittest.main()
