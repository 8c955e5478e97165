#!/usr/bin/env python3
"""A strict, AWS-like HTTP layer in front of a moto server, for tests and benchmarks.

moto emulates Cognito well enough to store and list users, but it is kinder than AWS:
it never throttles, accepts page sizes above 60, silently replaces a supplied ``sub``,
and its ListUsers costs O(pool size) per page. This layer sits between ``cbr`` (or any
AWS client) and moto and puts back what real Cognito does, plus the failures a client
must survive:

* strict validation of the parameters moto lets through (Limit/MaxResults, ``sub``);
* Cognito's per-category request-rate quotas (``--quotas``), as token buckets;
* simulated network latency (``--latency-ms``);
* seeded random faults (``--faults``): throttling, HTTP 500, connection resets before
  and after the request reached moto; and an op that always fails (``--fail-always``);
* expiring pagination tokens (``--token-ttl-seconds``, or the first N tokens presented with
  ``--expire-tokens N``);
* an in-memory index that serves ListUsers itself (``--index-listings``), so that
  benchmarks on 10,000-user pools measure the client rather than moto;
* a log of every request received (``--record``) and per-op counters
  (``GET /_layer/stats``, ``POST /_layer/reset-stats``).

It speaks the AWS JSON 1.1 protocol (``X-Amz-Target: AWSCognitoIdentityProviderService.Op``)
and prints ``LISTENING 127.0.0.1:<port>`` on stdout once it accepts connections.
Standard library only.
"""

import argparse
import base64
import bisect
import http.client
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

# Cognito's request-rate quotas: category -> (requests per second, operations).
QUOTAS = {
    "UserList": (30, ["ListUsers", "ListUsersInGroup"]),
    "UserCreation": (50, ["AdminCreateUser", "SignUp", "AdminConfirmSignUp"]),
    "UserUpdate": (25, ["AdminAddUserToGroup", "AdminRemoveUserFromGroup", "AdminDisableUser",
                        "AdminEnableUser", "AdminUpdateUserAttributes", "AdminDeleteUser",
                        "AdminLinkProviderForUser"]),
    "UserAccountRecovery": (30, ["AdminSetUserPassword", "AdminResetUserPassword"]),
    "UserResourceRead": (50, ["AdminListGroupsForUser"]),
    "UserRead": (120, ["AdminGetUser"]),
    "UserPoolRead": (15, ["DescribeUserPool", "ListUserPools"]),
    "UserPoolResourceRead": (20, ["ListGroups", "GetCSVHeader", "DescribeUserImportJob",
                                  "ListUserPoolClients", "ListIdentityProviders"]),
    "UserPoolResourceUpdate": (15, ["CreateGroup", "CreateUserImportJob", "StartUserImportJob"]),
}
CATEGORY_OF = {op: cat for cat, (_, ops) in QUOTAS.items() for op in ops}

LIMITED_LISTS = ("ListUsers", "ListUsersInGroup", "ListGroups", "AdminListGroupsForUser")
READ_PREFIXES = ("List", "Describe", "Get", "AdminList", "AdminGet")
TOKEN_KEYS = ("PaginationToken", "NextToken")
# Headers of moto's answer that are passed on to the client.
RELAYED_HEADERS = {"content-type", "x-amzn-requestid", "x-amzn-errortype", "x-amzn-errormessage"}
# Headers of the client's request that are not passed on to moto.
DROPPED_HEADERS = {"host", "content-length", "connection", "accept-encoding",
                   "transfer-encoding", "keep-alive", "expect"}


class AwsError(Exception):
    """An error answered in the AWS JSON shape."""

    def __init__(self, status, error_type, message):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def invalid(message):
    return AwsError(400, "InvalidParameterException", message)


class TokenBucket:
    """`rate` tokens a second, holding at most `capacity`; starts full."""

    def __init__(self, rate, capacity):
        self.rate, self.capacity = rate, capacity
        self.tokens, self.last = capacity, time.monotonic()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


# ---------------------------------------------------------------------------------------
# ListUsers served from memory (--index-listings)

FILTER_SYNTAX = r'^\s*([\w:]+)\s*(\^?=)\s*"(.*)"\s*$'
SEARCHABLE = {"username", "email", "phone_number", "name", "given_name", "family_name",
              "preferred_username", "cognito:user_status", "status", "sub"}


def user_value(user, attr):
    """The value a ListUsers filter on `attr` compares against, or None."""
    if attr == "username":
        return user["Username"]
    if attr == "status":
        return "Enabled" if user.get("Enabled", True) else "Disabled"
    if attr == "cognito:user_status":
        return user.get("UserStatus")
    for a in user.get("Attributes", []):
        if a["Name"] == attr:
            return a["Value"]
    return None


class PoolIndex:
    """All users of one pool, in moto's order, with sorted columns for fast filters.

    A filter's result (positions into `users`, in upstream order) is computed once, by
    bisecting a sorted column, and cached, so every page after the first costs O(page)."""

    def __init__(self, users):
        self.users = users
        self.columns = {}  # attr -> (sorted values, positions in the same order)
        self.results = {}  # filter text -> positions of matching users, ascending
        self.lock = threading.Lock()

    def _column(self, attr):
        if attr not in self.columns:
            pairs = sorted((v, i) for i, u in enumerate(self.users)
                           if (v := user_value(u, attr)) is not None)
            self.columns[attr] = ([v for v, _ in pairs], [i for _, i in pairs])
        return self.columns[attr]

    def matching(self, filt):
        """Positions of the users that `filt` selects ("" selects all)."""
        if not filt:
            return range(len(self.users))
        with self.lock:
            if filt in self.results:
                return self.results[filt]
            m = re.match(FILTER_SYNTAX, filt)
            if not m:
                raise invalid("Error while parsing filter")
            attr, op, value = m.groups()
            if attr not in SEARCHABLE:
                raise invalid(f"Invalid search attribute: {attr}")
            values, positions = self._column(attr)
            lo = bisect.bisect_left(values, value)
            if op == "=":
                hi = bisect.bisect_right(values, value)
            else:  # prefix: every string that starts with `value` sorts below value + U+10FFFF
                hi = bisect.bisect_left(values, value + "\U0010ffff")
            result = sorted(positions[lo:hi])
            self.results[filt] = result
            return result

    def page(self, body, serial):
        filt = body.get("Filter") or ""
        limit = body.get("Limit") or 60
        start = 0
        if body.get("PaginationToken"):
            try:
                token = json.loads(base64.urlsafe_b64decode(body["PaginationToken"]))
                start, token_filter = int(token["o"]), token["f"]
            except (ValueError, KeyError, TypeError):
                raise invalid("Invalid pagination token") from None
            if token_filter != filt:
                raise invalid("Invalid pagination token: it belongs to another filter")
        positions = self.matching(filt)
        wanted = body.get("AttributesToGet")
        users = []
        for pos in positions[start:start + limit]:
            user = self.users[pos]
            if wanted:
                user = dict(user, Attributes=[a for a in user["Attributes"] if a["Name"] in wanted])
            users.append(user)
        answer = {"Users": users}
        if start + limit < len(positions):
            token = json.dumps({"f": filt, "o": start + limit, "n": serial})
            answer["PaginationToken"] = base64.urlsafe_b64encode(token.encode()).decode()
        return answer


# ---------------------------------------------------------------------------------------
# The layer: everything that is decided about a request, independent of HTTP plumbing.

class Layer:
    def __init__(self, args):
        self.args = args
        up = urllib.parse.urlsplit(args.upstream)
        self.upstream_host, self.upstream_port = up.hostname, up.port or 80
        self.lock = threading.Lock()
        self.stats = {}
        self.record_file = open(args.record, "a", encoding="utf-8") if args.record else None
        self.buckets = {}
        if args.quotas:
            for cat, (rate, _) in QUOTAS.items():
                r = rate * args.quota_scale
                self.buckets[cat] = TokenBucket(r, max(1.0, r * args.burst_seconds))
        self.faults = parse_faults(args.faults) if args.faults else []
        self.fault_ops = set(args.fault_ops.split(",")) if args.fault_ops else None
        self.fail_always = set(args.fail_always)
        self.rng = random.Random(args.seed)
        self.faults_injected = 0
        self.tokens = {}  # pagination token -> time.monotonic() when handed out
        self.tokens_expired = 0  # tokens refused so far by --expire-tokens
        self.indexes = {}  # pool id -> PoolIndex
        self.generations = {}  # pool id -> count of writes seen (guards racing loads)
        self.load_locks = {}  # pool id -> lock held while loading its index
        self.serial = 0

    # -- bookkeeping --------------------------------------------------------------------
    def count(self, op, key):
        with self.lock:
            entry = self.stats.setdefault(op, {"calls": 0, "throttled": 0, "faults": 0})
            entry[key] += 1

    def stats_json(self):
        with self.lock:
            ops = {op: dict(v) for op, v in self.stats.items()}
        return {"ops": ops,
                "total_calls": sum(v["calls"] for v in ops.values()),
                "total_throttled": sum(v["throttled"] for v in ops.values()),
                "total_faults": sum(v["faults"] for v in ops.values())}

    def reset_stats(self):
        with self.lock:
            self.stats = {}

    def record(self, op, body):
        if self.record_file:
            with self.lock:
                self.record_file.write(json.dumps({"op": op, "body": body}) + "\n")
                self.record_file.flush()

    # -- the checks, in the order AWS would apply them ----------------------------------
    def check_quota(self, op):
        bucket = self.buckets.get(CATEGORY_OF.get(op))
        if bucket and not bucket.take():
            self.count(op, "throttled")
            raise AwsError(400, "TooManyRequestsException", "Too many requests")

    def validate(self, op, body):
        if op in LIMITED_LISTS and "Limit" in body:
            limit = body["Limit"]
            if not isinstance(limit, int) or not 0 <= limit <= 60:
                raise invalid(f"1 validation error detected: Value '{limit}' at 'limit' "
                              "failed to satisfy constraint: Member must have value "
                              "less than or equal to 60")
        if op == "ListUserPools":
            mr = body.get("MaxResults")
            if not isinstance(mr, int) or not 1 <= mr <= 60:
                raise invalid(f"1 validation error detected: Value '{mr}' at 'maxResults' "
                              "failed to satisfy constraint: Member must not be null and "
                              "must be between 1 and 60")
        if op == "AdminCreateUser":
            for attr in body.get("UserAttributes") or []:
                if attr.get("Name") in ("sub", "identities"):
                    raise invalid(f"Cannot modify the non-mutable attribute {attr['Name']}")
        if self.args.expire_tokens and any(body.get(key) for key in TOKEN_KEYS):
            with self.lock:
                expire = self.tokens_expired < self.args.expire_tokens
                self.tokens_expired += expire
            if expire:
                raise invalid("Invalid pagination token: token has expired")
        ttl = self.args.token_ttl_seconds
        if ttl is not None:
            for key in TOKEN_KEYS:
                handed_out = self.tokens.get(body.get(key))
                if handed_out is not None and time.monotonic() - handed_out > ttl:
                    raise invalid("Invalid pagination token: token has expired")

    def pick_fault(self, op):
        """None, or the kind of fault to inject into this request."""
        if op in self.fail_always:
            self.count(op, "faults")
            return "fail"
        if not self.faults or (self.fault_ops is not None and op not in self.fault_ops):
            return None
        with self.lock:
            budget = self.args.fault_budget
            if budget is not None and self.faults_injected >= budget:
                return None
            r, acc = self.rng.random(), 0.0
            for kind, p in self.faults:
                acc += p
                if r < acc:
                    self.faults_injected += 1
                    break
            else:
                return None
        self.count(op, "faults")
        return kind

    def remember_tokens(self, answer):
        if self.args.token_ttl_seconds is not None and isinstance(answer, dict):
            now = time.monotonic()
            with self.lock:
                for key in TOKEN_KEYS:
                    if answer.get(key):
                        self.tokens.setdefault(answer[key], now)

    # -- talking to moto ----------------------------------------------------------------
    def forward(self, path, headers, body):
        """POST to moto on a new connection; (status, headers to relay, body)."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            raise AwsError(500, "InternalErrorException", f"upstream unreachable: {e}") from None
        finally:
            conn.close()
        relayed = [(k, v) for k, v in resp.getheaders() if k.lower() in RELAYED_HEADERS]
        return resp.status, relayed, data

    def note_write(self, op, body):
        """A write invalidates the index of its pool (of every pool if it is not Cognito's)."""
        if op is None:
            with self.lock:
                self.indexes.clear()
                for pool in self.generations:
                    self.generations[pool] += 1
        elif not op.startswith(READ_PREFIXES) and isinstance(body, dict) and body.get("UserPoolId"):
            pool = body["UserPoolId"]
            with self.lock:
                self.indexes.pop(pool, None)
                self.generations[pool] = self.generations.get(pool, 0) + 1

    def index_for(self, pool, headers):
        """The pool's index, loading it from moto first if needed; or moto's error answer."""
        with self.lock:
            load_lock = self.load_locks.setdefault(pool, threading.Lock())
        with load_lock:
            with self.lock:
                if pool in self.indexes:
                    return self.indexes[pool], None
                generation = self.generations.get(pool, 0)
            users, token = [], None
            while True:
                req = {"UserPoolId": pool, "Limit": 1_000_000}
                if token:
                    req["PaginationToken"] = token
                status, relayed, data = self.forward("/", headers, json.dumps(req).encode())
                if status != 200:
                    return None, (status, relayed, data)
                answer = json.loads(data)
                users.extend(answer.get("Users", []))
                token = answer.get("PaginationToken")
                if not token:
                    break
            index = PoolIndex(users)
            with self.lock:
                if self.generations.get(pool, 0) == generation:
                    self.indexes[pool] = index
            return index, None

    def serve_list_users(self, headers, body):
        index, error = self.index_for(body.get("UserPoolId"), headers)
        if error:
            return error
        with self.lock:
            self.serial += 1
            serial = self.serial
        answer = index.page(body, serial)
        return 200, [("Content-Type", JSON_CONTENT_TYPE),
                     ("x-amzn-RequestId", str(uuid.uuid4()))], json.dumps(answer).encode()


def parse_faults(spec):
    faults = []
    for item in spec.split(","):
        kind, _, p = item.strip().partition(":")
        if kind not in ("throttle", "500", "reset", "reset_after"):
            raise SystemExit(f"aws_layer: unknown fault kind {kind!r}")
        faults.append((kind, float(p)))
    if sum(p for _, p in faults) > 1.0:
        raise SystemExit("aws_layer: fault probabilities add up to more than 1")
    return faults


# ---------------------------------------------------------------------------------------
# HTTP plumbing

class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # accept bursts of new connections (the default backlog is 5)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like AWS endpoints
    server_version = "aws-layer"
    layer: Layer  # set on the class by main()

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK hold every keep-alive answer back by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.layer.args.verbose:
            sys.stderr.write("aws_layer: " + (fmt % args) + "\n")

    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, obj):
        self.send(200, [("Content-Type", "application/json")], json.dumps(obj).encode())

    def send_error_json(self, err):
        body = json.dumps({"__type": err.error_type, "message": err.message}).encode()
        self.send(err.status, [("Content-Type", JSON_CONTENT_TYPE),
                               ("x-amzn-RequestId", str(uuid.uuid4())),
                               ("x-amzn-ErrorType", err.error_type)], body)

    def reset_connection(self):
        """Close the TCP connection with RST and no answer (SO_LINGER on, timeout 0)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket is only really closed once its file objects are
        self.connection.close()
        self.close_connection = True

    def do_GET(self):
        if self.path == "/_layer/stats":
            self.send_json(self.layer.stats_json())
        else:
            self.send(404, [("Content-Type", "text/plain")], b"not found\n")

    def do_POST(self):
        layer = self.layer
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_layer/reset-stats":
            layer.reset_stats()
            return self.send_json({"ok": True})
        target = self.headers.get("X-Amz-Target", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else None
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in DROPPED_HEADERS}
        if op is None:  # not a Cognito call (e.g. /moto-api/reset): pass it through untouched
            layer.note_write(None, body)
            try:
                return self.send(*layer.forward(self.path, headers, raw))
            except AwsError as err:
                return self.send_error_json(err)

        layer.count(op, "calls")
        layer.record(op, body)
        if layer.args.latency_ms:
            time.sleep(layer.args.latency_ms / 1000)
        if not isinstance(body, dict):
            body = {}
        try:
            layer.check_quota(op)
            layer.validate(op, body)
            fault = layer.pick_fault(op)
            if fault == "reset":
                return self.reset_connection()
            if fault == "throttle":
                raise AwsError(400, "TooManyRequestsException", "Rate exceeded (injected)")
            if fault in ("500", "fail"):
                raise AwsError(500, "InternalErrorException", "Internal error (injected)")
            layer.note_write(op, body)
            if op == "ListUsers" and layer.args.index_listings:
                status, relayed, data = layer.serve_list_users(headers, body)
            else:
                status, relayed, data = layer.forward(self.path, headers, raw)
            layer.note_write(op, body)
        except AwsError as err:
            return self.send_error_json(err)
        if fault == "reset_after":
            return self.reset_connection()
        if status == 200 and layer.args.token_ttl_seconds is not None:
            try:
                layer.remember_tokens(json.loads(data))
            except ValueError:
                pass
        self.send(status, relayed, data)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--record", metavar="FILE", help="append each request as a JSON line")
    p.add_argument("--latency-ms", type=float, default=0, help="delay before every answer")
    p.add_argument("--quotas", action="store_true", help="enforce Cognito's request-rate quotas")
    p.add_argument("--quota-scale", type=float, default=1.0, help="multiply every quota rate")
    p.add_argument("--burst-seconds", type=float, default=1.0,
                   help="bucket capacity, in seconds of the rate")
    p.add_argument("--faults", metavar="SPEC",
                   help="kind:probability,... kinds: throttle, 500, reset, reset_after")
    p.add_argument("--fault-ops", metavar="OP,OP", help="ops the faults apply to (default: all)")
    p.add_argument("--fault-budget", type=int, help="inject at most this many faults")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault generator")
    p.add_argument("--fail-always", metavar="OP", action="append", default=[],
                   help="answer every request for OP with HTTP 500 (repeatable)")
    p.add_argument("--token-ttl-seconds", type=float,
                   help="reject pagination tokens handed out longer ago than this")
    p.add_argument("--expire-tokens", type=int, default=0, metavar="N",
                   help="refuse the first N requests that present a pagination token as expired")
    p.add_argument("--index-listings", action="store_true",
                   help="serve ListUsers from an in-memory index of each pool")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)

    Handler.layer = Layer(args)
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"LISTENING 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass

if __name__ == "__main__":
    main()
