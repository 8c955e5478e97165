#!/usr/bin/env python3
"""A strict, AWS-like HTTP layer in front of a moto server, for tests and benchmarks.

moto emulates Cognito well enough to store and list users, but it is kinder than AWS:
it never throttles, accepts page sizes above 60, silently replaces a supplied ``sub``,
and its ListUsers costs O(pool size) per page. This layer sits between ``cbr`` (or any
AWS client) and moto and puts back what real Cognito does, plus the failures a client
must survive:

* strict validation of the parameters moto lets through (Limit/MaxResults, ``sub``);
* Cognito's per-category request-rate quotas (``--quotas``), as token buckets;
* simulated network latency (``--latency-ms``, and ``--op-latency OP=MS`` for one op);
* seeded random faults (``--faults``): throttling, HTTP 500, connection resets before
  and after the request reached moto; and an op that always fails (``--fail-always``);
* expiring pagination tokens (``--token-ttl-seconds``, or the first N tokens presented with
  ``--expire-tokens N``);
* an in-memory index that serves ListUsers itself (``--index-listings``), so that
  benchmarks on 10,000-user pools measure the client rather than moto;
* the pool settings moto stores but ignores, learned from DescribeUserPool (cached per pool,
  dropped when UpdateUserPool/DeleteUserPool passes through; see ``PoolSettings``):
  case-insensitive usernames, alias attributes and their uniqueness, the attribute schema,
  Lambda triggers (counted, never run) and the messages Cognito would send (recorded);
* per-pool limits on group operations on top of the category quotas;
* GetProvisionedLimit, which moto lacks, answered with the quotas the layer enforces;
* a log of every request received (``--record``) and per-op counters
  (``GET /_layer/stats``, ``POST /_layer/reset-stats``); ``POST /_layer/forget`` drops
  what the layer holds about pools (indexes, settings, usernames) after writes made directly
  on moto.

Users written directly into moto (not through the layer) after the layer first looked at a
case-insensitive pool are seen only once the pool's user count changes or a lookup misses;
tests create such users through the layer, or before their first call through it, or POST
``/_layer/forget`` after writing behind it (the ListUsers index needs that too).

``GET /_layer/stats`` answers ``{"ops": {op: {"calls", "throttled", "faults"}}, "total_calls",
"total_throttled", "total_faults", "triggers": {source: n}, "messages": [{"op", "medium",
"username", "kind"}]}``: ``triggers`` counts the Lambda trigger sources the pool's LambdaConfig
would have run (``PreSignUp_AdminCreateUser``, ``CustomMessage_AdminCreateUser``,
``CustomEmailSender_UpdateUserAttribute``, ...), ``messages`` lists what Cognito would have
sent (``kind``: invitation, verification_code, reset_code; ``medium``: EMAIL or SMS), both
only for calls moto accepted.

It speaks the AWS JSON 1.1 protocol (``X-Amz-Target: AWSCognitoIdentityProviderService.Op``)
and prints ``LISTENING 127.0.0.1:<port>`` on stdout once it accepts connections.
Standard library only.
"""

import argparse
import base64
import bisect
import contextlib
import datetime
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
# Source: ../shared/docs/cognito-facts.md, taken from the quotas page ("Amazon Cognito user
# pools API operation categories and request rate quotas",
# https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html). The `search` tool
# found that page (and GetProvisionedLimit's reference) but only its opening paragraphs, which
# confirm UserCreation = SignUp, ConfirmSignUp, AdminCreateUser, AdminConfirmSignUp at 50 RPS
# (ConfirmSignUp added here); the per-operation table itself could not be re-read, so the
# other rows stand as the facts file gives them.
QUOTAS = {
    "UserList": (30, ["ListUsers", "ListUsersInGroup"]),
    "UserCreation": (50, ["AdminCreateUser", "SignUp", "ConfirmSignUp", "AdminConfirmSignUp"]),
    "UserUpdate": (25, ["AdminAddUserToGroup", "AdminRemoveUserFromGroup", "AdminDisableUser",
                        "AdminEnableUser", "AdminUpdateUserAttributes",
                        "AdminDeleteUserAttributes", "AdminDeleteUser",
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

# Other categories GetProvisionedLimit knows (default requests per second). Not enforced: the
# layer does not know their operations well enough. The figures are the defaults remembered
# from the quotas page, NOT re-checked (the search tool did not return the table).
OTHER_CATEGORIES = {"UserAuthentication": 120, "UserFederation": 25, "UserResourceUpdate": 25,
                    "UserPoolUpdate": 15, "UserPoolCreate": 15, "ClientAuthentication": 150}
PROVISIONED = {**{cat: rate for cat, (rate, _) in QUOTAS.items()}, **OTHER_CATEGORIES}

# Operations on a pool's groups have a per-pool, per-operation limit on top of the account-wide
# category quota (the quotas page says so; the issue says "a few requests a second"). The
# figure could not be confirmed with the search tool (only the page's opening paragraphs are
# stored), so it is the assumed 5 requests per second per pool per operation (`--group-rate`
# sets another). It is multiplied by --quota-scale when that raises the quotas (quotas2x), but
# not lowered by a scale under 1: those runs model an account with small category quotas,
# which says nothing about per-pool limits (and `--max-rps` under the category quota must
# then still mean no throttling).
GROUP_OPS_PER_POOL_RATE = 5
GROUP_OPS = ("CreateGroup", "GetGroup", "UpdateGroup", "DeleteGroup", "ListGroups")

LIMITED_LISTS = ("ListUsers", "ListUsersInGroup", "ListGroups", "AdminListGroupsForUser")
READ_PREFIXES = ("List", "Describe", "Get", "AdminList", "AdminGet")
# Writes that leave what ListUsers shows as it was.
LISTING_UNCHANGED = {"AdminAddUserToGroup", "AdminRemoveUserFromGroup", "CreateGroup",
                     "UpdateGroup", "DeleteGroup", "AdminUserGlobalSignOut"}
# Writes that change one existing user: the index takes that user again from moto.
USER_UPDATES = {"AdminUpdateUserAttributes", "AdminDeleteUserAttributes", "AdminEnableUser",
                "AdminDisableUser", "AdminSetUserPassword", "AdminResetUserPassword",
                "AdminConfirmSignUp"}
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


def alias_exists(attr):
    return AwsError(400, "AliasExistsException",
                    f"An account with the given {attr} already exists.")


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

    def __init__(self, users, fold_usernames=False):
        self.users = users
        self.fold_usernames = fold_usernames  # a case-insensitive pool: username filters fold case
        self.columns = {}  # attr -> (sorted values, positions in the same order)
        self.results = {}  # filter text -> positions of matching users, ascending
        self.lock = threading.Lock()

    def _column(self, attr):
        if attr not in self.columns:
            fold = attr == "username" and self.fold_usernames
            pairs = sorted((v.lower() if fold else v, i) for i, u in enumerate(self.users)
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
            if attr == "username" and self.fold_usernames:
                value = value.lower()
            values, positions = self._column(attr)
            lo = bisect.bisect_left(values, value)
            if op == "=":
                hi = bisect.bisect_right(values, value)
            else:  # prefix: every string that starts with `value` sorts below value + U+10FFFF
                hi = bisect.bisect_left(values, value + "\U0010ffff")
            result = sorted(positions[lo:hi])
            self.results[filt] = result
            return result

    def replace(self, user):
        """Puts a changed user in place (same position: moto keeps its order). Filters on
        what cannot change (`sub`, `username`) keep their cached results."""
        with self.lock:
            if not hasattr(self, "positions"):
                self.positions = {u["Username"]: i for i, u in enumerate(self.users)}
            pos = self.positions.get(user["Username"])
            if pos is None:
                return False
            self.users[pos] = user
            self.columns = {a: c for a, c in self.columns.items() if a in ("sub", "username")}
            self.results = {f: r for f, r in self.results.items()
                            if re.match(r'^\s*(sub|username)\b', f)}
            return True

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
# Pool settings that moto stores but does not act on, and the checks Cognito makes with them

# Cognito's standard attributes and their types ("User pool attributes" in the developer
# guide): strings of at most 2048 characters, except email_verified and phone_number_verified
# (Boolean) and updated_at (Number). `sub` and `identities` cannot be written.
STANDARD_ATTRIBUTES = {name: "String" for name in (
    "address", "birthdate", "email", "family_name", "gender", "given_name", "locale",
    "middle_name", "name", "nickname", "phone_number", "picture", "preferred_username",
    "profile", "website", "zoneinfo", "sub", "identities")}
STANDARD_ATTRIBUTES.update(email_verified="Boolean", phone_number_verified="Boolean",
                           updated_at="Number")
NOT_WRITABLE = ("sub", "identities")
DEFAULT_MAX_LENGTH = 2048  # AttributeType.Value: at most 2048 characters
EMAIL_FORMAT = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_FORMAT = re.compile(r"^\+[0-9]{4,15}$")  # E.164: "+" and up to 15 digits
# Settings remembered from a CreateUserPool request, for the case moto leaves one out of
# DescribeUserPool. moto 5.2.1 echoes all of them (test_aws_layer: SettingsTest), so this is
# a safety net; a pool created directly on moto relies on the echo.
CREATE_SETTINGS = ("UsernameConfiguration", "AliasAttributes", "UsernameAttributes",
                   "LambdaConfig", "UserAttributeUpdateSettings", "AutoVerifiedAttributes",
                   "Schema")
ALIAS_MEDIA = {"email": "EMAIL", "phone_number": "SMS"}
MEDIUM_ATTRIBUTE = {"EMAIL": "email", "SMS": "phone_number"}
SENDER_TRIGGER = {"EMAIL": "CustomEmailSender", "SMS": "CustomSMSSender"}


def schema_from_create(schema):
    """CreateUserPool's `Schema` (bare custom names) in DescribeUserPool's shape."""
    out = []
    for entry in schema or []:
        name = entry.get("Name", "")
        if name not in STANDARD_ATTRIBUTES:
            name = ("dev:custom:" if entry.get("DeveloperOnlyAttribute") else "custom:") + name
        out.append(dict(entry, Name=name))
    return out


def attrs_of(user_or_list):
    """{name: value} of a user record (Attributes / UserAttributes) or a list of attributes."""
    if isinstance(user_or_list, dict):
        user_or_list = user_or_list.get("Attributes") or user_or_list.get("UserAttributes") or []
    return {a.get("Name"): a.get("Value") for a in user_or_list or [] if isinstance(a, dict)}


def is_true(value):
    return isinstance(value, str) and value.lower() == "true"


def is_datetime(value):
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


class PoolSettings:
    """What the layer enforces about one pool, from its DescribeUserPool answer.

    - UsernameConfiguration.CaseSensitive (absent: case-sensitive, as for API-created pools;
      moto itself is always case-sensitive);
    - AliasAttributes (email / phone_number: usernames of that format are refused, a verified
      value belongs to one user);
    - LambdaConfig (which calls would run a trigger);
    - SchemaAttributes (names, types, lengths, ranges, mutability, required; standard
      attributes the answer leaves out — moto lists only those passed at creation — are
      Cognito's defaults)."""

    def __init__(self, pool, created=None):
        created = created or {}

        def get(key):
            return pool.get(key) if pool.get(key) is not None else created.get(key)

        self.case_sensitive = (get("UsernameConfiguration") or {}).get("CaseSensitive", True)
        self.alias_attributes = set(get("AliasAttributes") or [])
        self.username_attributes = set(get("UsernameAttributes") or [])
        self.lambda_config = get("LambdaConfig") or {}
        self.schema = {name: {"Name": name, "AttributeDataType": kind,
                              "Mutable": name not in NOT_WRITABLE, "Required": False}
                       for name, kind in STANDARD_ATTRIBUTES.items()}
        listed = pool.get("SchemaAttributes") or schema_from_create(created.get("Schema"))
        for entry in listed:
            self.schema[entry["Name"]] = entry

    def fold(self, name):
        return name if self.case_sensitive else name.lower()

    def trigger(self, name):
        return bool(self.lambda_config.get(name))

    def entry(self, name):
        """The schema entry a request's attribute name refers to, or None."""
        entry = self.schema.get(name)
        if entry is None:
            return None
        if name.startswith("dev:custom:") != bool(entry.get("DeveloperOnlyAttribute")):
            return None  # custom:X of a developer-only X, or dev:custom:X of a plain one
        return entry

    def value_problems(self, name, entry, value):
        kind = entry.get("AttributeDataType", "String")
        if not isinstance(value, str):
            return [f"{name}: Value must be a string"]
        if kind == "Number":
            if not re.fullmatch(r"-?[0-9]+", value):
                return [f"{name}: Number must be an integer"]
            limits = entry.get("NumberAttributeConstraints") or {}
            if limits.get("MinValue") not in (None, "") and int(value) < int(limits["MinValue"]):
                return [f"{name}: Number must be no less than {limits['MinValue']}"]
            if limits.get("MaxValue") not in (None, "") and int(value) > int(limits["MaxValue"]):
                return [f"{name}: Number must be no greater than {limits['MaxValue']}"]
            return []
        if kind == "Boolean":
            return [] if value.lower() in ("true", "false") else [
                f"{name}: Value must be either true or false"]
        if kind == "DateTime":
            return [] if is_datetime(value) else [f"{name}: Value must be a date and time"]
        limits = entry.get("StringAttributeConstraints") or {}
        longest = int(limits.get("MaxLength") or DEFAULT_MAX_LENGTH)
        shortest = int(limits.get("MinLength") or 0)
        if len(value) > min(longest, DEFAULT_MAX_LENGTH):
            return [f"{name}: String must be no longer than {min(longest, DEFAULT_MAX_LENGTH)} "
                    "characters"]
        if len(value) < shortest:
            return [f"{name}: String must be no shorter than {shortest} characters"]
        if name == "email" and not EMAIL_FORMAT.match(value):
            return ["Invalid email address format."]
        if name == "phone_number" and not PHONE_FORMAT.match(value):
            return ["Invalid phone number format."]
        return []

    def check_attributes(self, op, attrs):
        """InvalidParameterException naming every attribute of a create or update that the
        schema refuses."""
        problems = []
        given = set()
        for a in attrs or []:
            name, value = a.get("Name"), a.get("Value")
            given.add(name)
            if name in NOT_WRITABLE:
                raise invalid(f"Cannot modify the non-mutable attribute {name}")
            entry = self.entry(name) if isinstance(name, str) else None
            if entry is None:
                problems.append(f"{name}: Attribute does not exist in the schema.")
                continue
            if op == "AdminUpdateUserAttributes" and entry.get("Mutable") is False:
                problems.append(f"{name}: Attribute cannot be updated. (changing an immutable "
                                "attribute)")
                continue
            if value is not None:
                problems += self.value_problems(name, entry, value)
        if op == "AdminCreateUser":
            for name, entry in sorted(self.schema.items()):
                if entry.get("Required") and name not in given and name not in NOT_WRITABLE:
                    problems.append(f"{name}: The attribute {name} is required")
        if problems:
            raise invalid("Attributes did not conform to the schema: " + "\n".join(problems))

    def check_deletions(self, names):
        problems = []
        for name in names or []:
            if name in NOT_WRITABLE:
                raise invalid(f"Cannot modify the non-mutable attribute {name}")
            entry = self.entry(name) if isinstance(name, str) else None
            if entry is None:
                problems.append(f"{name}: Attribute does not exist in the schema.")
            elif entry.get("Mutable") is False:
                problems.append(f"{name}: Attribute cannot be updated. (changing an immutable "
                                "attribute)")
            elif entry.get("Required"):
                problems.append(f"{name}: The attribute {name} is required")
        if problems:
            raise invalid("Attributes did not conform to the schema: " + "\n".join(problems))

    def check_username(self, username):
        """Alias pools refuse usernames in the alias's format."""
        if "email" in self.alias_attributes and EMAIL_FORMAT.match(username):
            raise invalid("Username cannot be of email format, since user pool is configured "
                          "for email alias.")
        if "phone_number" in self.alias_attributes and PHONE_FORMAT.match(username):
            raise invalid("Username cannot be of phone number format, since user pool is "
                          "configured for phone number alias.")


class Plan:
    """What the layer does around one forwarded request: the body moto gets, and what
    happens once moto has said yes."""

    def __init__(self, body):
        self.body = body
        self.triggers = []  # trigger sources that would have run
        self.messages = []  # {"op", "medium", "username", "kind"}
        self.unverify = []  # (username, attribute name) whose *_verified becomes false
        self.add_name = None  # a username now in the pool
        self.remove_name = None  # a username no longer in the pool
        self.fold_listing = False  # serve this ListUsers from a case-folding index


# ---------------------------------------------------------------------------------------
# The layer: everything that is decided about a request, independent of HTTP plumbing.

class Layer:
    def __init__(self, args):
        self.args = args
        self.op_latency_ms = {op: float(ms) for op, ms in
                              (spec.split("=", 1) for spec in getattr(args, "op_latency", []))}
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
        self.group_buckets = {}  # (pool id, op) -> TokenBucket of a group operation
        self.settings_cache = {}  # pool id -> PoolSettings
        self.created = {}  # pool id -> the settings its CreateUserPool request gave
        self.names = {}  # pool id -> {folded username: stored username} (case-insensitive pools)
        self.write_locks = {}  # pool id -> lock around checked writes (uniqueness)
        self.triggers = {}  # trigger source -> calls that would have run it
        self.messages = []  # messages Cognito would have sent

    # -- bookkeeping --------------------------------------------------------------------
    def count(self, op, key):
        with self.lock:
            entry = self.stats.setdefault(op, {"calls": 0, "throttled": 0, "faults": 0})
            entry[key] += 1

    def stats_json(self):
        with self.lock:
            ops = {op: dict(v) for op, v in self.stats.items()}
            triggers, messages = dict(self.triggers), list(self.messages)
        return {"ops": ops,
                "total_calls": sum(v["calls"] for v in ops.values()),
                "total_throttled": sum(v["throttled"] for v in ops.values()),
                "total_faults": sum(v["faults"] for v in ops.values()),
                "triggers": triggers, "messages": messages}

    def reset_stats(self):
        with self.lock:
            self.stats = {}
            self.triggers = {}
            self.messages = []

    def record(self, op, body):
        if self.record_file:
            with self.lock:
                self.record_file.write(json.dumps({"op": op, "body": body,
                                                   "at": round(time.time(), 3)}) + "\n")
                self.record_file.flush()

    # -- the checks, in the order AWS would apply them ----------------------------------
    def check_quota(self, op, body):
        bucket = self.buckets.get(CATEGORY_OF.get(op))
        if bucket and not bucket.take():
            self.count(op, "throttled")
            raise AwsError(400, "TooManyRequestsException", "Too many requests")
        if self.args.quotas and op in GROUP_OPS and isinstance(body.get("UserPoolId"), str):
            key = (body["UserPoolId"], op)
            with self.lock:
                if key not in self.group_buckets:
                    rate = self.args.group_rate * max(1.0, self.args.quota_scale)
                    self.group_buckets[key] = TokenBucket(
                        rate, max(1.0, rate * self.args.burst_seconds))
                pool_bucket = self.group_buckets[key]
            if not pool_bucket.take():
                self.count(op, "throttled")
                raise AwsError(400, "TooManyRequestsException",
                               f"Too many requests: {op} is limited per user pool")

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
        if op in ("AdminCreateUser", "AdminUpdateUserAttributes"):
            for attr in body.get("UserAttributes") or []:
                if isinstance(attr, dict) and attr.get("Name") in NOT_WRITABLE:
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
        """A write invalidates the index of its pool (of every pool if it is not Cognito's),
        but for writes that do not change what ListUsers shows, and writes to one user, after
        which `refresh_user` puts that user in place."""
        if op in LISTING_UNCHANGED or op in USER_UPDATES:
            return
        if op is None:
            with self.lock:
                self.indexes.clear()
                self.settings_cache.clear()
                self.names.clear()
                for pool in self.generations:
                    self.generations[pool] += 1
        elif not op.startswith(READ_PREFIXES) and isinstance(body, dict) and body.get("UserPoolId"):
            pool = body["UserPoolId"]
            with self.lock:
                self.indexes.pop(pool, None)
                self.generations[pool] = self.generations.get(pool, 0) + 1

    def refresh_user(self, op, body, headers):
        """After a write to one user went through: that user, read again from moto, in the
        pool's index (a load of the index in progress is not kept: it may predate the write)."""
        pool, username = body.get("UserPoolId"), body.get("Username")
        if op not in USER_UPDATES or not isinstance(pool, str) or not isinstance(username, str):
            return
        with self.lock:
            index = self.indexes.get(pool)
            self.generations[pool] = self.generations.get(pool, 0) + 1
        if index is None:
            return
        status, got = self.upstream(headers, "AdminGetUser",
                                    {"UserPoolId": pool, "Username": username})
        user = {"Username": got.get("Username"), "Attributes": got.get("UserAttributes", []),
                "Enabled": got.get("Enabled"), "UserStatus": got.get("UserStatus"),
                "UserCreateDate": got.get("UserCreateDate"),
                "UserLastModifiedDate": got.get("UserLastModifiedDate")}
        if "MFAOptions" in got:
            user["MFAOptions"] = got["MFAOptions"]
        if status != 200 or not index.replace(user):
            with self.lock:
                self.indexes.pop(pool, None)

    def index_for(self, pool, headers, fold_usernames):
        """The pool's index, loading it from moto first if needed; or moto's error answer."""
        with self.lock:
            load_lock = self.load_locks.setdefault(pool, threading.Lock())
        with load_lock:
            with self.lock:
                if pool in self.indexes:
                    return self.indexes[pool], None
                generation = self.generations.get(pool, 0)
            users, error = self.list_upstream(pool, headers)
            if error:
                return None, error
            index = PoolIndex(users, fold_usernames)
            with self.lock:
                if self.generations.get(pool, 0) == generation:
                    self.indexes[pool] = index
            return index, None

    def serve_list_users(self, headers, body, fold_usernames, cached=True):
        """ListUsers answered from an index of the pool: the cached one (--index-listings),
        or one loaded for this request alone (a username filter in a case-insensitive pool)."""
        pool = body.get("UserPoolId")
        if cached:
            index, error = self.index_for(pool, headers, fold_usernames)
        else:
            users, error = self.list_upstream(pool, headers)
            index = PoolIndex(users or [], fold_usernames)
        if error:
            return error
        with self.lock:
            self.serial += 1
            serial = self.serial
        answer = index.page(body, serial)
        return 200, [("Content-Type", JSON_CONTENT_TYPE),
                     ("x-amzn-RequestId", str(uuid.uuid4()))], json.dumps(answer).encode()

    def upstream(self, headers, op, body):
        """One call of the layer's own to moto (not counted, not recorded): (status, JSON)."""
        h = {k: v for k, v in headers.items() if k.lower() not in ("x-amz-target", "content-type")}
        h.update({"X-Amz-Target": TARGET_PREFIX + op, "Content-Type": JSON_CONTENT_TYPE})
        status, _, data = self.forward("/", h, json.dumps(body).encode())
        try:
            return status, json.loads(data) if data else {}
        except ValueError:
            return status, {}

    def list_upstream(self, pool, headers):
        """Every user of the pool, in moto's order (one big page); or (None, moto's error)."""
        users, token = [], None
        while True:
            req = {"UserPoolId": pool, "Limit": 1_000_000}
            if token:
                req["PaginationToken"] = token
            h = {k: v for k, v in headers.items() if k.lower() != "x-amz-target"}
            h["X-Amz-Target"] = TARGET_PREFIX + "ListUsers"
            status, relayed, data = self.forward("/", h, json.dumps(req).encode())
            if status != 200:
                return None, (status, relayed, data)
            answer = json.loads(data)
            users.extend(answer.get("Users", []))
            token = answer.get("PaginationToken")
            if not token:
                return users, None

    # -- pool settings ------------------------------------------------------------------
    def settings(self, pool, headers):
        """The pool's PoolSettings (DescribeUserPool, cached), or None if moto has no such pool."""
        with self.lock:
            if pool in self.settings_cache:
                return self.settings_cache[pool]
        status, answer = self.upstream(headers, "DescribeUserPool", {"UserPoolId": pool})
        if status != 200 or "UserPool" not in answer:
            return None
        settings = PoolSettings(answer["UserPool"], self.created.get(pool))
        with self.lock:
            self.settings_cache[pool] = settings
        return settings

    def forget_pool(self, pool):
        with self.lock:
            self.settings_cache.pop(pool, None)
            self.names.pop(pool, None)

    def names_of(self, pool, headers, reload=False):
        """{folded username: stored username} of a case-insensitive pool, from a listing."""
        with self.lock:
            names = None if reload else self.names.get(pool)
        if names is None:
            users, _ = self.list_upstream(pool, headers)
            names = {u["Username"].lower(): u["Username"] for u in users or []}
            with self.lock:
                self.names[pool] = names
        return names

    def stored_name(self, pool, username, headers):
        """The spelling a case-insensitive pool stores for `username`, or None. The cached
        names are reloaded when moto's user count says users came or went behind the layer."""
        names = self.names_of(pool, headers)
        if username.lower() in names:
            return names[username.lower()]
        status, answer = self.upstream(headers, "DescribeUserPool", {"UserPoolId": pool})
        if status == 200 and answer["UserPool"].get("EstimatedNumberOfUsers") != len(names):
            names = self.names_of(pool, headers, reload=True)
        return names.get(username.lower())

    def get_user(self, pool, username, headers):
        """{name: value} of a user's attributes (AdminGetUser on moto), or None."""
        status, answer = self.upstream(headers, "AdminGetUser",
                                       {"UserPoolId": pool, "Username": username})
        return attrs_of(answer) if status == 200 else None

    def alias_owners(self, pool, settings, attr, value, username, headers):
        """Usernames of the other users that hold `value` as their verified `attr`."""
        users, _ = self.list_upstream(pool, headers)
        owners = []
        for u in users or []:
            a = attrs_of(u)
            same = (a.get(attr) or "") == value if settings.case_sensitive or attr != "email" \
                else (a.get(attr) or "").lower() == value.lower()
            if same and is_true(a.get(attr + "_verified")) and \
                    settings.fold(u["Username"]) != settings.fold(username):
                owners.append(u["Username"])
        return owners

    # -- what Cognito would do that moto does not ---------------------------------------
    def plan(self, op, body, settings, headers):
        """Checks a user call against the pool's settings (raising Cognito's error), rewrites
        its username to the stored spelling, and says what happens if moto accepts it."""
        plan = Plan(body)
        pool = body["UserPoolId"]
        username = body.get("Username")
        if not isinstance(username, str):
            username = None
        if not settings.case_sensitive and username is not None and op.startswith("Admin") \
                and not (op == "AdminCreateUser" and body.get("MessageAction") != "RESEND"):
            stored = self.stored_name(pool, username, headers)
            if stored is not None and stored != username:
                plan.body = body = dict(body, Username=stored)
                username = stored
        if op == "ListUsers" and not settings.case_sensitive:
            m = re.match(FILTER_SYNTAX, body.get("Filter") or "")
            plan.fold_listing = bool(m and m.group(1) == "username")
        elif op == "AdminCreateUser":
            self.plan_create(plan, body, settings, username, headers)
        elif op == "AdminUpdateUserAttributes":
            settings.check_attributes(op, body.get("UserAttributes"))
            self.plan_update(plan, body, settings, username, headers)
        elif op == "AdminDeleteUserAttributes":
            settings.check_deletions(body.get("UserAttributeNames"))
        elif op == "AdminResetUserPassword" and username is not None:
            current = self.get_user(pool, username, headers) or {}
            medium = "EMAIL" if current.get("email") else "SMS"
            self.message(plan, settings, op, medium, username, "reset_code", "ForgotPassword")
        elif op == "AdminDeleteUser":
            plan.remove_name = username
        elif op == "AdminConfirmSignUp" and settings.trigger("PostConfirmation"):
            plan.triggers.append("PostConfirmation_ConfirmSignUp")
        return plan

    def message(self, plan, settings, op, medium, username, kind, source):
        plan.messages.append({"op": op, "medium": medium, "username": username, "kind": kind})
        for trigger in ("CustomMessage", SENDER_TRIGGER[medium]):
            if settings.trigger(trigger):
                plan.triggers.append(f"{trigger}_{source}")

    def plan_create(self, plan, body, settings, username, headers):
        pool = body["UserPoolId"]
        action = body.get("MessageAction")
        if action == "RESEND":
            current = self.get_user(pool, username, headers) if username else None
            attrs = current or {}
        else:
            if username is not None:
                settings.check_username(username)
            settings.check_attributes("AdminCreateUser", body.get("UserAttributes"))
            attrs = attrs_of(body.get("UserAttributes"))
            # In a pool that signs in with email (phone), the username is the address.
            if username is not None and "email" in settings.username_attributes and \
                    EMAIL_FORMAT.match(username):
                attrs.setdefault("email", username)
            if username is not None and "phone_number" in settings.username_attributes and \
                    PHONE_FORMAT.match(username):
                attrs.setdefault("phone_number", username)
            if username is not None and not settings.case_sensitive:
                if self.stored_name(pool, username, headers) is not None:
                    raise AwsError(400, "UsernameExistsException", "User account already exists")
                plan.add_name = username
            for attr in sorted(settings.alias_attributes & set(ALIAS_MEDIA)):
                value = attrs.get(attr)
                if value and is_true(attrs.get(attr + "_verified")):
                    owners = self.alias_owners(pool, settings, attr, value, username or "",
                                               headers)
                    if owners and body.get("ForceAliasCreation") is not True:
                        raise alias_exists(attr)
                    plan.unverify += [(owner, attr) for owner in owners]
            if settings.trigger("PreSignUp"):
                plan.triggers.append("PreSignUp_AdminCreateUser")
        if action != "SUPPRESS":
            mediums = body.get("DesiredDeliveryMediums") or ["SMS"]
            for medium in mediums:
                attr = MEDIUM_ATTRIBUTE.get(medium)
                if attr is None:
                    raise invalid(f"1 validation error detected: Value '{mediums}' at "
                                  "'desiredDeliveryMediums' failed to satisfy constraint")
                if not attrs.get(attr):
                    raise invalid(f"No {attr} provided but desired delivery medium was "
                                  f"{'Email' if medium == 'EMAIL' else 'Sms'}")
            for medium in mediums:
                self.message(plan, settings, "AdminCreateUser", medium, username,
                             "invitation", "AdminCreateUser")

    def plan_update(self, plan, body, settings, username, headers):
        pool = body["UserPoolId"]
        attrs = attrs_of(body.get("UserAttributes"))
        touched = [a for a in ALIAS_MEDIA if a in attrs or a + "_verified" in attrs]
        if not touched or username is None:
            return
        current = self.get_user(pool, username, headers)
        if current is None:
            return  # moto answers UserNotFoundException
        for attr in touched:
            value = attrs.get(attr, current.get(attr))
            changed = attr in attrs and attrs[attr] != current.get(attr)
            said = attrs.get(attr + "_verified")
            verified = is_true(said) if said is not None else \
                (is_true(current.get(attr + "_verified")) and not changed)
            if attr in settings.alias_attributes and value and verified and \
                    (changed or said is not None) and \
                    self.alias_owners(pool, settings, attr, value, username, headers):
                raise alias_exists(attr)
            if changed and value and not is_true(said):
                self.message(plan, settings, "AdminUpdateUserAttributes", ALIAS_MEDIA[attr],
                             username, "verification_code", "UpdateUserAttribute")

    def apply(self, plan, pool, headers):
        """What follows once moto accepted a planned call."""
        for owner, attr in plan.unverify:
            self.upstream(headers, "AdminUpdateUserAttributes", {
                "UserPoolId": pool, "Username": owner,
                "UserAttributes": [{"Name": attr + "_verified", "Value": "false"}]})
        with self.lock:
            for trigger in plan.triggers:
                self.triggers[trigger] = self.triggers.get(trigger, 0) + 1
            self.messages += plan.messages
            names = self.names.get(pool)
            if names is not None and plan.add_name:
                names[plan.add_name.lower()] = plan.add_name
            if names is not None and plan.remove_name:
                names.pop(plan.remove_name.lower(), None)

    def provisioned_limit(self, body):
        """GetProvisionedLimit, which moto lacks: the rates this layer enforces."""
        if self.args.no_provisioned_limits:
            raise AwsError(400, "UnknownOperationException",
                           "Unknown operation: GetProvisionedLimit")
        definition = body.get("LimitDefinition")
        if not isinstance(definition, dict) or definition.get("LimitClass") != "API_CATEGORY":
            raise invalid("LimitDefinition.LimitClass must be API_CATEGORY")
        category = (definition.get("Attributes") or {}).get("Category")
        if category not in PROVISIONED:
            raise invalid(f"Unknown API category: {category}")
        free = PROVISIONED[category]
        provisioned = max(1, round(free * self.args.quota_scale))
        answer = {"Limit": {"LimitDefinition": definition, "ProvisionedLimitValue": provisioned,
                            "FreeLimitValue": free}}
        return 200, [("Content-Type", JSON_CONTENT_TYPE),
                     ("x-amzn-RequestId", str(uuid.uuid4()))], json.dumps(answer).encode()

    def serve(self, path, op, body, headers, raw):
        """Answers one Cognito call that passed the quota, validation and fault checks."""
        if op == "GetProvisionedLimit":
            return self.provisioned_limit(body)
        pool = body.get("UserPoolId")
        if op == "CreateUserPool":
            status, relayed, data = self.forward(path, headers, raw)
            if status == 200:
                created = json.loads(data).get("UserPool", {}).get("Id")
                with self.lock:
                    self.created[created] = {k: body[k] for k in CREATE_SETTINGS if k in body}
            return status, relayed, data
        if op in ("UpdateUserPool", "DeleteUserPool") and isinstance(pool, str):
            self.forget_pool(pool)
            answer = self.forward(path, headers, raw)
            self.forget_pool(pool)
            return answer
        settings = None
        if isinstance(pool, str) and (op.startswith("Admin") or op == "ListUsers"):
            settings = self.settings(pool, headers)
        if settings is None:  # not a user call, or no such pool: moto answers
            if op == "ListUsers" and self.args.index_listings:
                return self.serve_list_users(headers, body, False)
            return self.forward(path, headers, raw)
        # Writes whose checks read the pool are serialized per pool (uniqueness).
        checked = op == "AdminCreateUser" and (not settings.case_sensitive or
                                               settings.alias_attributes) or \
            op == "AdminUpdateUserAttributes" and settings.alias_attributes
        with self.lock:
            write_lock = self.write_locks.setdefault(pool, threading.Lock())
        with write_lock if checked else contextlib.nullcontext():
            plan = self.plan(op, body, settings, headers)
            if plan.body is not body:
                raw = json.dumps(plan.body).encode()
            if op == "ListUsers" and (self.args.index_listings or plan.fold_listing):
                status, relayed, data = self.serve_list_users(
                    headers, body, not settings.case_sensitive,
                    cached=self.args.index_listings)
            else:
                status, relayed, data = self.forward(path, headers, raw)
            if status == 200:
                self.apply(plan, pool, headers)
        return status, relayed, data


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
        if self.path == "/_layer/forget":  # pools were written behind the layer's back
            layer.note_write(None, None)
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
        latency_ms = layer.op_latency_ms.get(op, layer.args.latency_ms)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if not isinstance(body, dict):
            body = {}
        try:
            layer.check_quota(op, body)
            layer.validate(op, body)
            fault = layer.pick_fault(op)
            if fault == "reset":
                return self.reset_connection()
            if fault == "throttle":
                raise AwsError(400, "TooManyRequestsException", "Rate exceeded (injected)")
            if fault in ("500", "fail"):
                raise AwsError(500, "InternalErrorException", "Internal error (injected)")
            layer.note_write(op, body)
            status, relayed, data = layer.serve(self.path, op, body, headers, raw)
            layer.note_write(op, body)
            if status == 200:
                layer.refresh_user(op, body, headers)
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
    p.add_argument("--op-latency", metavar="OP=MS", action="append", default=[],
                   help="delay before every answer to OP instead (repeatable)")
    p.add_argument("--quotas", action="store_true", help="enforce Cognito's request-rate quotas")
    p.add_argument("--quota-scale", type=float, default=1.0, help="multiply every quota rate (and the per-pool group limits, and what "
                        "GetProvisionedLimit answers)")
    p.add_argument("--group-rate", type=float, default=GROUP_OPS_PER_POOL_RATE,
                   help="with --quotas: requests per second per pool for each of CreateGroup, "
                        "GetGroup, UpdateGroup, DeleteGroup, ListGroups (default: %(default)s; "
                        "multiplied by a --quota-scale above 1)")
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
    p.add_argument("--no-provisioned-limits", action="store_true",
                   help="answer GetProvisionedLimit as an endpoint without it does "
                        "(HTTP 400 UnknownOperationException)")
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
