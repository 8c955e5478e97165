"""Cognito's rules that moto ignores, and the checks Cognito makes with them:

* strict validation of the parameters moto lets through (Limit/MaxResults above 60, a
  supplied ``sub`` or ``identities``): ``validate``;
* ``PoolSettings``: what the layer enforces about one pool, from its DescribeUserPool answer
  (and the CreateUserPool request, for what moto leaves out): case-insensitive usernames,
  alias attributes (format and uniqueness), username attributes, the attribute schema
  (names, types, lengths, ranges, mutability, required), Lambda triggers;
* ``Rules``: the settings of each pool (cached, dropped on UpdateUserPool/DeleteUserPool),
  the stored spelling of usernames in case-insensitive pools, and for each user call a
  ``Plan``: the checks (raising Cognito's error), the body moto gets, the triggers that
  would run and the messages Cognito would send (recorded once moto accepted the call).
"""

import datetime
import re
import threading

from .index import FILTER_SYNTAX
from .protocol import AwsError, alias_exists, invalid

LIMITED_LISTS = ("ListUsers", "ListUsersInGroup", "ListGroups", "AdminListGroupsForUser")


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


def delivery_mediums(body, attrs):
    """AdminCreateUser's DesiredDeliveryMediums (SMS when absent), each checked: a known medium,
    and the user has the address it needs."""
    mediums = body.get("DesiredDeliveryMediums") or ["SMS"]
    for medium in mediums:
        attr = MEDIUM_ATTRIBUTE.get(medium)
        if attr is None:
            raise invalid(f"1 validation error detected: Value '{mediums}' at "
                          "'desiredDeliveryMediums' failed to satisfy constraint")
        if not attrs.get(attr):
            raise invalid(f"No {attr} provided but desired delivery medium was "
                          f"{'Email' if medium == 'EMAIL' else 'Sms'}")
    return mediums


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


def validate(op, body):
    """Cognito's limits on parameters that moto does not check."""
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


class Rules:
    """The settings of the pools behind the layer and what they mean for each user call."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.settings_cache = {}  # pool id -> PoolSettings
        self.created = {}  # pool id -> the settings its CreateUserPool request gave
        self.names = {}  # pool id -> {folded username: stored username} (case-insensitive pools)
        self.write_locks = {}  # pool id -> lock around checked writes (uniqueness)
        self.triggers = {}  # trigger source -> calls that would have run it
        self.messages = []  # messages Cognito would have sent

    # -- what the stats report ----------------------------------------------------------
    def snapshot(self):
        """(triggers, messages) so far, as copies."""
        with self.lock:
            return dict(self.triggers), list(self.messages)

    def reset_stats(self):
        with self.lock:
            self.triggers = {}
            self.messages = []

    def remember_created(self, pool, body):
        """A CreateUserPool request moto accepted for `pool`."""
        with self.lock:
            self.created[pool] = {k: body[k] for k in CREATE_SETTINGS if k in body}

    def write_lock(self, pool):
        with self.lock:
            return self.write_locks.setdefault(pool, threading.Lock())

    # -- pool settings ------------------------------------------------------------------
    def settings(self, pool, headers):
        """The pool's PoolSettings (DescribeUserPool, cached), or None if moto has no such pool."""
        with self.lock:
            if pool in self.settings_cache:
                return self.settings_cache[pool]
        status, answer = self.upstream.call(headers, "DescribeUserPool", {"UserPoolId": pool})
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

    def forget_all(self):
        """Pools were written behind the layer's back: every setting and name is read again."""
        with self.lock:
            self.settings_cache.clear()
            self.names.clear()

    def names_of(self, pool, headers, reload=False):
        """{folded username: stored username} of a case-insensitive pool, from a listing."""
        with self.lock:
            names = None if reload else self.names.get(pool)
        if names is None:
            users, _ = self.upstream.list_users(pool, headers)
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
        status, answer = self.upstream.call(headers, "DescribeUserPool", {"UserPoolId": pool})
        if status == 200 and answer["UserPool"].get("EstimatedNumberOfUsers") != len(names):
            names = self.names_of(pool, headers, reload=True)
        return names.get(username.lower())

    def get_user(self, pool, username, headers):
        """{name: value} of a user's attributes (AdminGetUser on moto), or None."""
        status, answer = self.upstream.call(headers, "AdminGetUser",
                                            {"UserPoolId": pool, "Username": username})
        return attrs_of(answer) if status == 200 else None

    def alias_owners(self, pool, settings, attr, value, username, headers):
        """Usernames of the other users that hold `value` as their verified `attr`."""
        users, _ = self.upstream.list_users(pool, headers)
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
            for medium in delivery_mediums(body, attrs):
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

    def record(self, plan):
        """Counts the plan's triggers and keeps its messages: the call was accepted."""
        with self.lock:
            for trigger in plan.triggers:
                self.triggers[trigger] = self.triggers.get(trigger, 0) + 1
            self.messages += plan.messages

    def apply(self, plan, pool, headers):
        """What follows once moto accepted a planned call."""
        for owner, attr in plan.unverify:
            self.upstream.call(headers, "AdminUpdateUserAttributes", {
                "UserPoolId": pool, "Username": owner,
                "UserAttributes": [{"Name": attr + "_verified", "Value": "false"}]})
        self.record(plan)
        with self.lock:
            names = self.names.get(pool)
            if names is not None and plan.add_name:
                names[plan.add_name.lower()] = plan.add_name
            if names is not None and plan.remove_name:
                names.pop(plan.remove_name.lower(), None)
