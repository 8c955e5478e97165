"""ListUsers served from memory (``--index-listings``): ``PoolIndex`` holds one pool's users in
moto's order with sorted columns for the filters (``attr = "v"``, ``attr ^= "v"``) and pages
with the layer's own pagination tokens; ``Indexes`` loads one per pool from moto, drops it
after writes that change the listing and puts a user written through the layer back in
place. Also the filter syntax and the searchable attributes, which other modules share."""

import base64
import bisect
import json
import re
import threading

from .protocol import invalid, json_answer

FILTER_SYNTAX = r'^\s*([\w:]+)\s*(\^?=)\s*"(.*)"\s*$'
SEARCHABLE = {"username", "email", "phone_number", "name", "given_name", "family_name",
              "preferred_username", "cognito:user_status", "status", "sub"}

READ_PREFIXES = ("List", "Describe", "Get", "AdminList", "AdminGet")
# Writes that leave what ListUsers shows as it was.
LISTING_UNCHANGED = {"AdminAddUserToGroup", "AdminRemoveUserFromGroup", "CreateGroup",
                     "UpdateGroup", "DeleteGroup", "AdminUserGlobalSignOut"}
# Writes that change one existing user: the index takes that user again from moto.
USER_UPDATES = {"AdminUpdateUserAttributes", "AdminDeleteUserAttributes", "AdminEnableUser",
                "AdminDisableUser", "AdminSetUserPassword", "AdminResetUserPassword",
                "AdminConfirmSignUp"}


def parse_filter(filt):
    """(attribute, "=" or "^=", value) of a ListUsers filter, or InvalidParameterException."""
    m = re.match(FILTER_SYNTAX, filt)
    if not m:
        raise invalid("Error while parsing filter")
    attr, op, value = m.groups()
    if attr not in SEARCHABLE:
        raise invalid(f"Invalid search attribute: {attr}")
    return attr, op, value


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
            attr, op, value = parse_filter(filt)
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


class Indexes:
    """The PoolIndex of each pool listed through the layer, kept current with its writes."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.indexes = {}  # pool id -> PoolIndex
        self.generations = {}  # pool id -> count of writes seen (guards racing loads)
        self.load_locks = {}  # pool id -> lock held while loading its index
        self.serial = 0

    def note_write(self, op, body):
        """A write invalidates the index of its pool (of every pool if it is not Cognito's),
        but for writes that do not change what ListUsers shows, and writes to one user, after
        which `refresh_user` puts that user in place."""
        if op in LISTING_UNCHANGED or op in USER_UPDATES:
            return
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
        status, got = self.upstream.call(headers, "AdminGetUser",
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
            users, error = self.upstream.list_users(pool, headers)
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
            users, error = self.upstream.list_users(pool, headers)
            index = PoolIndex(users or [], fold_usernames)
        if error:
            return error
        with self.lock:
            self.serial += 1
            serial = self.serial
        return json_answer(index.page(body, serial))
