"""Checks of tests/support/aws_layer.py against a real moto server.

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
import aws_layer  # noqa: E402

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
                                           "total_faults": 0})

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

    def test_loads_once_and_writes_drop_the_index(self):
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
        c.admin_disable_user(UserPoolId=pool_id, Username="zz-index-1")
        self.assertFalse(list_all(url, body)[0][0]["Enabled"])
        c.admin_get_user(UserPoolId=pool_id, Username="zz-index-1")  # a read keeps the index
        list_all(url, body)
        self.assertEqual(counter.counts["ListUsers"], 3)

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
        index = aws_layer.PoolIndex(users)
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


if __name__ == "__main__":
    unittest.main()
