"""Synthetic pools: user pools that exist only in the layer, of millions of users that are
never stored (``--synthetic-pool POOL_ID=COUNT[:SEED]``, ``--synthetic-empty POOL_ID``).

moto cannot hold a pool of a million users (its ListUsers costs O(pool) per page), yet that is
the size cbr must be measured at. A synthetic pool's user ``i`` (0 <= i < COUNT) is a pure
function of (SEED, COUNT, i): one BLAKE2b digest of the seed and ``i`` gives every choice,
shaped like tests/support/production_pool.py's pools:

* status: UNCONFIRMED ~20 %, CONFIRMED ~35 %, FORCE_CHANGE_PASSWORD ~10 %, RESET_REQUIRED
  ~10 %, COMPROMISED ~5 %, EXTERNAL_PROVIDER ~15 % (``Google_…``, ``Facebook_…``,
  ``SignInWithApple_…``, ``LoginWithAmazon_…``, ``SAML-Okta_…`` with ``identities``) and
  CONFIRMED users linked to Google (``identities``) ~5 %; ~10 % disabled;
* usernames ending in ``i`` (``ada.lovelace.17``, ``Ada.LOVELACE.17``, ``Анна.Петрова.17``,
  ``user_17``, ``Google_100000000000000000017``), so a username leads back to its user;
  the pool is case-insensitive (``UsernameConfiguration.CaseSensitive`` false);
* attributes: ``sub``, ``name``, ``given_name``/``family_name``, ``email`` (+ verified or
  not, or absent; RESET_REQUIRED users always have a verified one), ``phone_number``
  (sometimes), ``custom:tier`` (60 %, values in several scripts and emoji), and dates;
* groups (``--synthetic-groups``, default 20): ~40 % of the users in none, 33 % in one, 18 %
  in 2-3, 9 % in 4-7; user COUNT // 2 in every group; with ``--synthetic-everyone POOL_ID``
  a group ``everyone`` holds every user.

The ``sub`` is monotonic in ``i``: its first 8 hex digits are ``(i * 2**32 + F) // COUNT``
(F < COUNT a function of the seed), the rest is hash. So users sorted by sub are users sorted
by ``i``, a ``sub ^= "3f"`` prefix is a range of ``i`` found arithmetically, and a ListUsers
page costs O(page) whatever the pool's size (more than a thousand 60-user pages a second).

The layer answers every call on a synthetic pool itself (no upstream call), after the same
quota, latency, fault, token-expiry, recording and stats machinery as forwarded calls:

* reads: DescribeUserPool (EstimatedNumberOfUsers, the schema with ``custom:tier``),
  ListUsers (Limit <= 60, PaginationToken, any filter; ``sub ^=``, ``sub =`` and
  ``username =`` cost O(page), other filters scan the pool), ListGroups, GetGroup,
  ListUsersInGroup (a scan of cached membership masks), AdminListGroupsForUser,
  AdminGetUser, GetCSVHeader, and the configuration reads (GetUserPoolMfaConfig,
  ListUserPoolClients, ListIdentityProviders, ListResourceServers, GetUICustomization,
  DescribeRiskConfiguration, GetLogDeliveryConfiguration, ListTerms) with an empty
  configuration; ListUserPools lists the synthetic pools after moto's;
* writes, kept in an overlay (small: meant for modest numbers of writes): AdminCreateUser
  (a new sub; schema, username and delivery checks as rules.py makes them; messages
  recorded), AdminUpdateUserAttributes, AdminDeleteUserAttributes, AdminDisableUser,
  AdminEnableUser, AdminSetUserPassword, AdminResetUserPassword, AdminConfirmSignUp,
  AdminDeleteUser, AdminAddUserToGroup, AdminRemoveUserFromGroup, AdminUserGlobalSignOut,
  CreateGroup, UpdateGroup, DeleteGroup. Later reads see them: a changed user keeps its place
  in sub order, an added user takes the place of its sub (a sorted list merged into pages);
* anything else: UnsupportedOperationException.

``GET /_layer/synthetic`` describes the synthetic pools (``?members=1`` adds each group's
member count, which reads the whole pool once).
"""

import array
import base64
import bisect
import collections
import hashlib
import json
import math
import re
import threading
import time

from .index import parse_filter, user_value
from .protocol import AwsError, invalid, json_answer
from .rules import (DEFAULT_MAX_LENGTH, STANDARD_ATTRIBUTES, Plan, delivery_mediums,
                    PoolSettings, attrs_of, is_true)

MAX_COUNT = 2 ** 32  # the first 8 hex digits of the sub must differ from user to user
MAX_GROUPS = 64  # membership masks are 64-bit
DEFAULT_GROUPS = 20
EVERYONE = "everyone"
CHUNK = 4096  # users per cached chunk of membership masks
REGION = "us-east-1"
ACCOUNT = "123456789012"

# Group names (one in CJK, one with an emoji), as production_pool.DEFAULT_GROUPS has them.
GROUP_NAMES = [
    "admins", "editors", "viewers", "billing", "support", "engineering", "marketing",
    "sales", "hr", "finance", "legal", "operations", "security", "beta-testers", "partners",
    "contractors", "interns", "管理者", "🚀-launch-team", "Api.Clients", "managers",
    "auditors", "moderators", "premium", "free-tier", "eu-west", "us-east", "apac", "mobile",
    "web"]

# (given, family, romanized given, romanized family, script): names without spaces, so they
# fit in usernames.
PEOPLE = [
    ("Ada", "Lovelace", "ada", "lovelace", "latin"), ("Grace", "Hopper", "grace", "hopper", "latin"),
    ("Alan", "Turing", "alan", "turing", "latin"), ("Barbara", "Liskov", "barbara", "liskov", "latin"),
    ("Donald", "Knuth", "donald", "knuth", "latin"), ("Radia", "Perlman", "radia", "perlman", "latin"),
    ("Zoë", "Ñandú", "zoe", "nandu", "latin"), ("Ärger", "Müller", "arger", "muller", "latin"),
    ("José", "García", "jose", "garcia", "latin"), ("Łukasz", "Wałęsa", "lukasz", "walesa", "latin"),
    ("Анна", "Петрова", "anna", "petrova", "cyrillic"),
    ("Дмитрий", "Иванов", "dmitry", "ivanov", "cyrillic"),
    ("Ελένη", "Παπαδοπούλου", "eleni", "papadopoulou", "greek"),
    ("太郎", "山田", "taro", "yamada", "cjk"), ("美咲", "佐藤", "misaki", "sato", "cjk"),
    ("فاطمة", "الزهراء", "fatima", "alzahraa", "arabic"),
    ("प्रिया", "शर्मा", "priya", "sharma", "devanagari"),
    ("민준", "김", "minjun", "kim", "hangul"), ("서연", "이", "seoyeon", "lee", "hangul"),
    ("Kai", "Nakamura", "kai", "nakamura", "latin")]
FAMILY_FIRST = {"cjk", "hangul"}
TIERS = ["free", "pro", "enterprise", "gold", "серебро", "金", "χρυσό", "ذهبي", "स्वर्ण", "골드",
         "💎 diamond", "👩‍💻 dev-tier", "🏳️‍🌈 pride", "beta tester ✨", "Ünïcödé ⚡"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com",
           "corp.example.co.uk", "example.io"]
# (provider name, provider type, weight out of 20).
PROVIDERS = [("Google", "Google", 9), ("Facebook", "Facebook", 3),
             ("SignInWithApple", "SignInWithApple", 3), ("SAML-Okta", "SAML", 4),
             ("LoginWithAmazon", "LoginWithAmazon", 1)]
OKTA_ISSUER = "http://www.okta.com/exk1a2b3c4d5e6f7g8h9"
# Statuses by share of 256: UNCONFIRMED 20 %, CONFIRMED 35 %, FORCE_CHANGE_PASSWORD 10 %,
# RESET_REQUIRED 10 %, COMPROMISED 5 %, EXTERNAL_PROVIDER 15 %, LINKED (CONFIRMED, with
# identities) 5 %.
KIND_SHARES = [("UNCONFIRMED", 51), ("CONFIRMED", 90), ("FORCE_CHANGE_PASSWORD", 26),
               ("RESET_REQUIRED", 26), ("COMPROMISED", 13), ("EXTERNAL_PROVIDER", 38),
               ("LINKED", 12)]
KIND_TABLE = [kind for kind, n in KIND_SHARES for _ in range(n)]
PROVIDER_TABLE = [(name, ptype) for name, ptype, n in PROVIDERS for _ in range(n)]
START = 1546300800  # 2019-01-01
SPAN = 202_003_200  # seconds to 2025-06-01
CUSTOM_SCHEMA = [{"Name": "custom:tier", "AttributeDataType": "String",
                  "DeveloperOnlyAttribute": False, "Mutable": True, "Required": False,
                  "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "256"}}]
CSV_HEADER = ["name", "given_name", "family_name", "middle_name", "nickname",
              "preferred_username", "profile", "picture", "website", "email", "email_verified",
              "gender", "birthdate", "zoneinfo", "locale", "phone_number",
              "phone_number_verified", "address", "updated_at", "custom:tier",
              "cognito:mfa_enabled", "cognito:username"]
TRAILING_DIGITS = re.compile(r"([0-9]+)$")

N_PEOPLE, N_TIERS, N_DOMAINS, N_PROVIDER_TABLE = len(PEOPLE), len(TIERS), len(DOMAINS), \
    len(PROVIDER_TABLE)


def esc(text):
    """`text` as the inside of a JSON string."""
    return json.dumps(text)[1:-1]


# Per person: (lower-case username and email stem, capitalized username stem, username stem
# in the person's script, the `name` attribute, the given_name and family_name attributes),
# escaped for JSON once. Each fragment but the stems starts with a comma.
PERSON_FRAGMENTS = [
    (f"{rg}.{rf}.", f"{rg.capitalize()}.{rf.upper()}.", esc(f"{given}.{family}."),
     ',{"Name":"name","Value":"%s"}' % esc(f"{family}{given}" if script in FAMILY_FIRST
                                          else f"{given} {family}"),
     ',{"Name":"given_name","Value":"%s"},{"Name":"family_name","Value":"%s"}'
     % (esc(given), esc(family)))
    for given, family, rg, rf, script in PEOPLE]
VARIANT = "89ab"
TIER_FRAGMENTS = [',{"Name":"custom:tier","Value":"%s"}' % esc(t) for t in TIERS]


def parse_count(text):
    """"1000000", "1_000_000", "250k", "1M", "10m" -> an int."""
    t = text.strip().replace("_", "").replace(",", "")
    scale = 1
    if t[-1:].lower() in ("k", "m"):
        scale = 1000 if t[-1].lower() == "k" else 1_000_000
        t = t[:-1]
    value = float(t) * scale if "." in t else int(t) * scale
    if value != int(value):
        raise ValueError(text)
    return int(value)


def parse_spec(spec):
    """POOL_ID=COUNT[:SEED] -> (pool id, count, seed as a string)."""
    pool, sep, rest = spec.partition("=")
    if not sep or not pool:
        raise ValueError(f"--synthetic-pool wants POOL_ID=COUNT[:SEED], not {spec!r}")
    count_text, _, seed = rest.partition(":")
    try:
        count = parse_count(count_text)
    except ValueError:
        raise ValueError(f"--synthetic-pool {spec!r}: COUNT must be a number "
                         "(e.g. 1000000, 1M, 250k)") from None
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"--synthetic-pool {spec!r}: COUNT must be from 0 to {MAX_COUNT}")
    return pool, count, seed or "0"


def user_not_found():
    return AwsError(400, "UserNotFoundException", "User does not exist.")


def group_not_found():
    return AwsError(400, "ResourceNotFoundException", "Group not found.")


def encode_token(doc):
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def decode_token(token, **expected):
    """The token's JSON, checked to hold `expected` (the filter or group it was made for)."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(token))
        if not isinstance(doc, dict):
            raise ValueError
    except (ValueError, TypeError):
        raise invalid("Invalid pagination token") from None
    for key, value in expected.items():
        if doc.get(key) != value:
            raise invalid("Invalid pagination token: it belongs to another query")
    return doc


def now_epoch():
    return round(time.time(), 3)


class SyntheticPool:
    """One synthetic pool: `count` generated users of `seed`, and the overlay of what was
    written to it."""

    def __init__(self, pool_id, count, seed="0", groups=DEFAULT_GROUPS, everyone=False):
        if not 0 <= count <= MAX_COUNT:
            raise ValueError(f"count must be from 0 to {MAX_COUNT}")
        if not 0 <= groups <= MAX_GROUPS:
            raise ValueError(f"groups must be from 0 to {MAX_GROUPS}")
        self.pool_id, self.count, self.seed = pool_id, count, str(seed)
        self.name = f"synthetic-{pool_id}"
        self.created_at = START + SPAN  # fixed, so answers do not depend on the clock
        key = f"cbr synthetic pool/{self.seed}".encode()
        self.hasher = hashlib.blake2b(key, digest_size=40)
        seed_digest = hashlib.blake2b(key + b"/offset", digest_size=8).digest()
        self.offset = int.from_bytes(seed_digest, "little") % count if count else 0
        self.power_user = count // 2  # in every generated group
        self.lock = threading.RLock()
        # Groups: name -> definition (CreateGroup's fields), generated ones first; bits of
        # the generated ones in the membership masks.
        self.n_groups = groups if count else 0
        self.groups = {}
        self.bit_of = {}
        for g in range(self.n_groups):
            name = GROUP_NAMES[g] if g < len(GROUP_NAMES) else f"group-{g:02d}"
            d = {"GroupName": name}
            if g % 3 == 0:
                d["Description"] = f"The {name}"
            if g % 2 == 0:
                d["Precedence"] = g
            if g % 5 == 0:
                d["RoleArn"] = f"arn:aws:iam::{ACCOUNT}:role/cognito-group-{g}"
            self.groups[name] = d
            self.bit_of[name] = g
        self.everyone = bool(everyone)
        if self.everyone:
            self.groups[EVERYONE] = {"GroupName": EVERYONE, "Description": "Every user"}
        self.live_bits = (1 << self.n_groups) - 1  # bits of generated groups not deleted
        # Steps between a user's groups: coprime with the number of groups, so k steps from
        # any start reach k different groups.
        self.steps = [s for s in range(1, max(2, self.n_groups))
                      if math.gcd(s, max(1, self.n_groups)) == 1]
        self.mask_chunks = {}  # chunk number -> array of membership masks
        self.size_table, self.mask_table = self.group_tables() if self.n_groups else ([], [])
        # The overlay.
        self.changed = {}  # i -> the record of a generated user written to
        self.deleted = set()  # i of deleted generated users
        self.regrouped = {}  # i -> set of group names of a generated user whose groups changed
        self.added = {}  # sub -> record of a user created here
        self.added_groups = {}  # sub -> set of group names
        self.added_subs = []  # sorted
        self.added_names = {}  # folded username -> sub
        self.serial = 0  # users created so far (their subs come from it)
        self.settings = PoolSettings(self.describe()["UserPool"])

    # -- the generated users --------------------------------------------------------------
    # The digest of user i has 40 bytes; each choice reads its own:
    #   0 kind, 1 disabled, 3-6 groups (class, size, start, step), 7 person, 8 username style,
    #   9 email, 10 phone, 11 name, 12 given/family names, 13 tier, 14 provider, 15 domain,
    #   16-26 the sub's hex digits after the first 8, 27 the sub's variant and the creation
    #   milliseconds, 28-31 creation time, 32-34 time to the last change, 35 unchanged or
    #   not and its milliseconds, 36-39 federated ids.
    def digest(self, i):
        h = self.hasher.copy()
        h.update(i.to_bytes(8, "little"))
        return h.digest()

    def top(self, i):
        """The sub's first 8 hex digits of user i, as a number: increasing with i."""
        return ((i << 32) + self.offset) // self.count

    def first_with_top(self, t):
        """The first i whose top is >= t (self.count if none)."""
        if t <= 0:
            return 0
        i = -((self.offset - t * self.count) >> 32)  # ceil((t * count - offset) / 2**32)
        return min(max(i, 0), self.count)

    def sub(self, i, d=None):
        d = self.digest(i) if d is None else d
        x = d[16:27].hex()
        return (f"{((i << 32) + self.offset) // self.count:08x}-{x[:4]}-4{x[4:7]}-"
                f"{VARIANT[d[27] & 3]}{x[7:10]}-{x[10:]}")

    def group_tables(self):
        """SIZE[class byte << 2 | size bits] -> number of groups; MASK[k][start][step] ->
        the mask of k groups from `start`, `step` apart."""
        n = self.n_groups
        sizes = []
        for c in range(256):
            for b in range(4):
                # 40 %: no group; 33 %: one; 18 %: two or three; 9 %: four to seven.
                sizes.append(0 if c < 102 else 1 if c < 187 else 2 + (b & 1) if c < 233
                             else 4 + b)
        masks = []
        for k in range(8):
            masks.append([[sum({1 << ((start + j * step) % n) for j in range(min(k, n))})
                           for step in self.steps] for start in range(n)])
        return sizes, masks

    def mask_of(self, i, d):
        """The generated groups of user i (digest d), as bits."""
        n = self.n_groups
        if not n:
            return 0
        if i == self.power_user:
            return (1 << n) - 1
        return self.mask_table[self.size_table[d[3] << 2 | d[4] & 3]][d[5] % n][
            d[6] % len(self.steps)]

    def username(self, i, d=None):
        d = self.digest(i) if d is None else d
        if KIND_TABLE[d[0]] == "EXTERNAL_PROVIDER":
            provider, _ = PROVIDER_TABLE[d[14] % N_PROVIDER_TABLE]
            return f"{provider}_{self.federated_id(provider, i, d)}"
        given, family, rg, rf, script = PEOPLE[d[7] % N_PEOPLE]
        style = d[8] & 0xF
        if style < 6:
            return f"{rg}.{rf}.{i}"
        if style < 9:
            return f"{rg.capitalize()}.{rf.upper()}.{i}"
        if style < 12:
            return f"{given}.{family}.{i}"
        return f"user_{i}"

    @staticmethod
    def federated_id(provider, i, d):
        """The provider's user id; its trailing digits are i (mod 10**12)."""
        if provider == "Google":
            return str(10 ** 20 + i)
        if provider == "Facebook":
            return str(10 ** 15 + i)
        if provider == "SignInWithApple":
            return f"{int.from_bytes(d[36:39], 'little') % 900000 + 100000:06d}.{d[16:32].hex()}.{i}"
        if provider == "LoginWithAmazon":
            return f"amzn1.account.AE{d[36:40].hex().upper()}Q{i}"
        return f"00u{d[36:39].hex()}x{i}"  # an Okta user id

    def user_json(self, i):
        """User i as ListUsers answers it, as JSON text (the fast path: fragments escaped
        once, in PERSON_FRAGMENTS and TIER_FRAGMENTS)."""
        d = self.hasher.copy()
        d.update(i.to_bytes(8, "little"))
        d = d.digest()
        kind = KIND_TABLE[d[0]]
        lower, capital, scripted, name, given_family = PERSON_FRAGMENTS[d[7] % N_PEOPLE]
        created = START + int.from_bytes(d[28:32], "little") % SPAN
        created_ms = (d[27] >> 2) * 15
        x = d[16:27].hex()
        parts = ['{"Username":"', None, '","Attributes":[{"Name":"sub","Value":"',
                 f"{((i << 32) + self.offset) // self.count:08x}-{x[:4]}-4{x[4:7]}-"
                 f"{VARIANT[d[27] & 3]}{x[7:10]}-{x[10:]}", '"}']
        if kind == "EXTERNAL_PROVIDER":
            provider, ptype = PROVIDER_TABLE[d[14] % N_PROVIDER_TABLE]
            uid = self.federated_id(provider, i, d)
            parts[1] = f"{provider}_{uid}"
        else:
            style = d[8] & 0xF
            parts[1] = f"{lower}{i}" if style < 6 else f"{capital}{i}" if style < 9 else \
                f"{scripted}{i}" if style < 12 else f"user_{i}"
            if kind == "LINKED":
                provider, ptype, uid = "Google", "Google", str(10 ** 20 + 10 ** 13 + i)
        if kind == "EXTERNAL_PROVIDER" or kind == "LINKED":
            issuer = f'\\"{OKTA_ISSUER}\\"' if ptype == "SAML" else "null"
            parts.append(f',{{"Name":"identities","Value":"[{{\\"userId\\":\\"{uid}\\",'
                         f'\\"providerName\\":\\"{provider}\\",\\"providerType\\":'
                         f'\\"{ptype}\\",\\"issuer\\":{issuer},\\"primary\\":true,'
                         f'\\"dateCreated\\":{created * 1000 + created_ms}}}]"}}')
        if d[11] < 235:  # 92 %
            parts.append(name)
        if d[12] < 218:  # 85 %
            parts.append(given_family)
        e = 0 if kind == "RESET_REQUIRED" else d[9]  # an import needs a verified email
        if e < 205:  # 55 % verified, 25 % not, 20 % none
            parts.append(f',{{"Name":"email","Value":"{lower}{i}@{DOMAINS[d[15] % N_DOMAINS]}"}},'
                         f'{{"Name":"email_verified","Value":"{"true" if e < 141 else "false"}"}}')
        if d[10] < 64:  # 15 % verified, 10 % not
            parts.append(f',{{"Name":"phone_number","Value":"+1{5550000000 + i}"}},'
                         f'{{"Name":"phone_number_verified","Value":"'
                         f'{"true" if d[10] < 38 else "false"}"}}')
        if d[13] < 154:  # 60 %
            parts.append(TIER_FRAGMENTS[d[13] % N_TIERS])
        if kind == "UNCONFIRMED" or d[35] < 77:  # 30 % of the others unchanged
            modified, modified_ms = created, created_ms
        else:
            modified = min(created + int.from_bytes(d[32:35], "little") * 2,
                           START + SPAN + 29 * 86400)
            modified_ms = (d[35] & 0x3F) * 15
        parts.append(f'],"UserCreateDate":{created}.{created_ms:03d},"UserLastModifiedDate":'
                     f'{modified}.{modified_ms:03d},"Enabled":'
                     f'{"false" if d[1] < 26 else "true"},"UserStatus":"'
                     f'{"CONFIRMED" if kind == "LINKED" else kind}"}}')
        return "".join(parts)

    def user_dict(self, i):
        """User i as a dict (the same record as user_json's)."""
        return json.loads(self.user_json(i))

    def masks(self, chunk):
        """The membership masks of users chunk * CHUNK ... (cached)."""
        got = self.mask_chunks.get(chunk)
        if got is None:
            lo = chunk * CHUNK
            got = array.array("Q", bytes(8 * (min(lo + CHUNK, self.count) - lo)))
            if self.n_groups:
                hasher, n, ns = self.hasher, self.n_groups, len(self.steps)
                sizes, table = self.size_table, self.mask_table
                for j in range(len(got)):
                    h = hasher.copy()
                    h.update((lo + j).to_bytes(8, "little"))
                    d = h.digest()
                    got[j] = table[sizes[d[3] << 2 | d[4] & 3]][d[5] % n][d[6] % ns]
                if lo <= self.power_user < lo + len(got):
                    got[self.power_user - lo] = (1 << n) - 1
            self.mask_chunks[chunk] = got
        return got

    def generated_groups(self, i):
        mask = self.masks(i // CHUNK)[i % CHUNK] & self.live_bits
        names = [name for name, bit in self.bit_of.items() if mask >> bit & 1]
        if self.everyone:
            names.append(EVERYONE)
        return names

    # -- the overlay's view of users ------------------------------------------------------
    def find(self, username):
        """("a", sub) of a user created here, ("g", i) of a generated one, or None."""
        if not isinstance(username, str) or not username:
            return None
        folded = username.lower()
        sub = self.added_names.get(folded)
        if sub is not None:
            return ("a", sub)
        m = TRAILING_DIGITS.search(username)
        if m and self.count:
            i = int(m.group(1)) % 10 ** 12
            if i < self.count and i not in self.deleted and \
                    self.username(i).lower() == folded:
                return ("g", i)
        return None

    def find_sub(self, sub):
        """The ref of the user whose sub is `sub`, or None."""
        if sub in self.added:
            return ("a", sub)
        if self.count and len(sub) == 36 and re.fullmatch(r"[0-9a-f]{8}", sub[:8]):
            i = self.first_with_top(int(sub[:8], 16))
            if i < self.count and i not in self.deleted and self.sub(i) == sub:
                return ("g", i)
        return None

    def record(self, ref):
        kind, key = ref
        if kind == "a":
            return self.added[key]
        return self.changed.get(key) or self.user_dict(key)

    def store(self, ref, record):
        record["UserLastModifiedDate"] = now_epoch()
        kind, key = ref
        if kind == "a":
            self.added[key] = record
        else:
            self.changed[key] = record

    def groups_of(self, ref):
        """The user's groups, in the pool's group order."""
        kind, key = ref
        if kind == "a":
            names = self.added_groups[key]
        elif key in self.regrouped:
            names = self.regrouped[key]
        else:
            names = self.generated_groups(key)
        return [g for g in self.groups if g in names]

    def user_count(self):
        return self.count - len(self.deleted) + len(self.added)

    def entry_json(self, ref):
        kind, key = ref
        if kind == "a":
            return json.dumps(self.added[key])
        if key in self.changed:
            return json.dumps(self.changed[key])
        return self.user_json(key)

    # -- walking users in sub order ---------------------------------------------------------
    def after(self, sub):
        """(first generated i, first index into added_subs) of the users whose sub sorts
        after `sub`."""
        a = bisect.bisect_right(self.added_subs, sub)
        if not self.count:
            return 0, a
        try:
            t = int(sub[:8], 16) if len(sub) >= 8 else None
        except ValueError:
            t = None
        if t is None:
            raise invalid("Invalid pagination token")
        i = self.first_with_top(t)
        if i < self.count and self.top(i) == t and self.sub(i) <= sub:
            i += 1
        return i, a

    def prefix_range(self, prefix):
        """(i_lo, i_hi, a_lo, a_hi): the users whose sub starts with `prefix`."""
        a_lo = bisect.bisect_left(self.added_subs, prefix)
        a_hi = bisect.bisect_left(self.added_subs, prefix + "\U0010ffff")
        n = self.count
        head = prefix[:8]
        if not n or (head and not re.fullmatch(r"[0-9a-f]*", head)):
            return 0, 0, a_lo, a_hi
        if len(prefix) <= 8:
            shift = 4 * (8 - len(prefix))
            value = int(prefix, 16) if prefix else 0
            return (self.first_with_top(value << shift),
                    self.first_with_top((value + 1) << shift), a_lo, a_hi)
        i = self.first_with_top(int(head, 16))
        if i < n and self.sub(i).startswith(prefix):
            return i, i + 1, a_lo, a_hi
        return 0, 0, a_lo, a_hi

    def walk(self, i, i_hi, a, a_hi, limit, keep=None):
        """Up to `limit` refs in sub order from generated users [i, i_hi) and added users
        added_subs[a:a_hi] that `keep(ref)` accepts (all by default, but deleted ones);
        and whether more follow."""
        out = []
        deleted, added = self.deleted, self.added_subs
        if a >= a_hi and not deleted and keep is None:  # the common case: arithmetic only
            stop = min(i_hi, i + limit)
            return [("g", j) for j in range(i, stop)], stop < i_hi
        next_g = None
        while True:
            if next_g is None:
                while i < i_hi and (i in deleted or (keep is not None and not keep(("g", i)))):
                    i += 1
                next_g = i if i < i_hi else -1
            while a < a_hi and keep is not None and not keep(("a", added[a])):
                a += 1
            has_g, has_a = next_g >= 0, a < a_hi
            if not has_g and not has_a:
                return out, False
            if len(out) == limit:
                return out, True
            if has_g and (not has_a or self.sub(next_g) < added[a]):
                out.append(("g", next_g))
                i, next_g = next_g + 1, None
            else:
                out.append(("a", added[a]))
                a += 1

    def members(self, bit, i, limit):
        """walk() for the members of a generated group when nothing was written: a scan of
        the cached membership masks, chunk by chunk."""
        out = []
        while i < self.count:
            chunk = i // CHUNK
            base, masks = chunk * CHUNK, self.masks(chunk)
            out += [("g", base + j) for j in range(i - base, len(masks)) if masks[j] >> bit & 1]
            i = base + len(masks)
            if len(out) > limit:
                return out[:limit], True
        return out, False

    def group_keeper(self, group):
        """keep(ref) for the members of `group`, fast on generated users (cached masks)."""
        if group == EVERYONE and self.everyone:
            regrouped = self.regrouped

            def keep(ref):
                kind, key = ref
                if kind == "a":
                    return group in self.added_groups[key]
                return key not in regrouped or group in regrouped[key]
            return keep
        bit = self.bit_of.get(group)
        regrouped, masks = self.regrouped, self.masks

        def keep(ref):
            kind, key = ref
            if kind == "a":
                return group in self.added_groups[key]
            if key in regrouped:
                return group in regrouped[key]
            if bit is None:
                return False
            return bool(masks(key // CHUNK)[key % CHUNK] >> bit & 1)
        return keep

    def filter_keeper(self, attr, op, value):
        """keep(ref) for a filter the pool cannot answer arithmetically (a scan)."""
        fold = attr == "username"
        if fold:
            value = value.lower()

        def keep(ref):
            v = user_value(self.record(ref), attr)
            if v is None:
                return False
            if fold:
                v = v.lower()
            return v == value if op == "=" else v.startswith(value)
        return keep

    # -- answering ------------------------------------------------------------------------
    def serve(self, op, body, rules):
        """The answer to `op` on this pool: (status, headers, body)."""
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            raise AwsError(400, "UnsupportedOperationException",
                           f"{op} is not supported on the layer's synthetic pool "
                           f"{self.pool_id}")
        with self.lock:
            return handler(body, rules)

    def describe(self):
        schema = []
        for name, kind in STANDARD_ATTRIBUTES.items():
            entry = {"Name": name, "AttributeDataType": kind, "DeveloperOnlyAttribute": False,
                     "Mutable": name != "sub", "Required": name == "sub"}
            if kind == "String":
                entry["StringAttributeConstraints"] = {
                    "MinLength": "1" if name == "sub" else "0",
                    "MaxLength": str(DEFAULT_MAX_LENGTH)}
            elif kind == "Number":
                entry["NumberAttributeConstraints"] = {"MinValue": "0"}
            schema.append(entry)
        schema += [dict(e) for e in CUSTOM_SCHEMA]
        return {"UserPool": {
            "Id": self.pool_id, "Name": self.name,
            "Arn": f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{self.pool_id}",
            "Status": "Enabled", "CreationDate": self.created_at,
            "LastModifiedDate": self.created_at,
            "Policies": {"PasswordPolicy": {
                "MinimumLength": 8, "RequireUppercase": True, "RequireLowercase": True,
                "RequireNumbers": True, "RequireSymbols": True,
                "TemporaryPasswordValidityDays": 7}},
            "DeletionProtection": "INACTIVE", "LambdaConfig": {},
            "SchemaAttributes": schema, "AutoVerifiedAttributes": ["email"],
            "UsernameConfiguration": {"CaseSensitive": False},
            "VerificationMessageTemplate": {"DefaultEmailOption": "CONFIRM_WITH_CODE"},
            "MfaConfiguration": "OFF",
            "EstimatedNumberOfUsers": self.user_count(),
            "EmailConfiguration": {"EmailSendingAccount": "COGNITO_DEFAULT"},
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
            "AccountRecoverySetting": {"RecoveryMechanisms": [
                {"Priority": 1, "Name": "verified_email"},
                {"Priority": 2, "Name": "verified_phone_number"}]},
            "UserPoolTier": "ESSENTIALS"}}

    def summary(self):
        """The pool as ListUserPools lists it."""
        return {"Id": self.pool_id, "Name": self.name, "LambdaConfig": {},
                "CreationDate": self.created_at, "LastModifiedDate": self.created_at}

    def info(self, members=False):
        """GET /_layer/synthetic's view of the pool."""
        with self.lock:
            doc = {"count": self.count, "seed": self.seed, "users": self.user_count(),
                   "groups": list(self.groups), "everyone": self.everyone,
                   "added": len(self.added), "changed": len(self.changed),
                   "deleted": len(self.deleted), "regrouped": len(self.regrouped)}
            if members:
                by_mask = collections.Counter()
                for chunk in range((self.count + CHUNK - 1) // CHUNK):
                    by_mask.update(self.masks(chunk))
                for i in (*self.deleted, *self.regrouped):  # not as generated
                    by_mask[self.masks(i // CHUNK)[i % CHUNK]] -= 1
                counts = dict.fromkeys(self.groups, 0)
                for mask, n in by_mask.items():
                    mask &= self.live_bits
                    for name, bit in self.bit_of.items():
                        if mask >> bit & 1:
                            counts[name] += n
                if self.everyone:
                    counts[EVERYONE] += sum(by_mask.values())
                for names in (*self.regrouped.values(), *self.added_groups.values()):
                    for name in names:
                        if name in counts:
                            counts[name] += 1
                doc["members"] = counts
            return doc

    # Reads ------------------------------------------------------------------------------
    def op_DescribeUserPool(self, body, rules):
        return json_answer(self.describe())

    def op_ListUsers(self, body, rules):
        filt = body.get("Filter") or ""
        limit = body.get("Limit") or 60
        wanted = body.get("AttributesToGet")
        token = body.get("PaginationToken")
        last = decode_token(token, f=filt)["a"] if token else None
        if last is not None and not isinstance(last, str):
            raise invalid("Invalid pagination token")
        refs, keep, more = None, None, False
        span = (0, self.count, 0, len(self.added_subs))
        if filt:
            attr, op, value = parse_filter(filt)
            if op == "=" and attr in ("sub", "username"):  # one user at most
                ref = self.find_sub(value) if attr == "sub" else self.find(value)
                refs = [ref] if ref is not None and last is None else []
            elif attr == "sub":
                span = self.prefix_range(value)
            else:
                keep = self.filter_keeper(attr, op, value)
        if refs is None:
            i_lo, i_hi, a_lo, a_hi = span
            if last is not None:
                i_after, a_after = self.after(last)
                i_lo, a_lo = max(i_lo, i_after), max(a_lo, a_after)
            refs, more = self.walk(i_lo, i_hi, a_lo, a_hi, limit, keep)
        if wanted:
            users = []
            for ref in refs:
                user = self.record(ref)
                users.append(json.dumps(dict(user, Attributes=[
                    a for a in user["Attributes"] if a["Name"] in wanted])))
        elif not self.changed and not self.added:  # generated users only: the fast path
            user_json = self.user_json
            users = [user_json(i) for _, i in refs]
        else:
            users = [self.entry_json(ref) for ref in refs]
        text = '{"Users":[' + ",".join(users) + "]"
        if more:
            last_sub = self.sub_of(refs[-1])
            text += f',"PaginationToken":"{encode_token({"f": filt, "a": last_sub})}"'
        return json_answer(text + "}")

    def sub_of(self, ref):
        kind, key = ref
        return key if kind == "a" else self.sub(key)

    def op_AdminGetUser(self, body, rules):
        ref = self.find(body.get("Username"))
        if ref is None:
            raise user_not_found()
        user = self.record(ref)
        return json_answer({"Username": user["Username"], "UserAttributes": user["Attributes"],
                            "UserCreateDate": user["UserCreateDate"],
                            "UserLastModifiedDate": user["UserLastModifiedDate"],
                            "Enabled": user["Enabled"], "UserStatus": user["UserStatus"]})

    def group_doc(self, name):
        return dict(self.groups[name], UserPoolId=self.pool_id,
                    CreationDate=self.created_at, LastModifiedDate=self.created_at)

    def page_of(self, items, body, what):
        """A page of a list by offset (NextToken holds it): (items, next token or None)."""
        limit = body.get("Limit") or 60
        start = 0
        if body.get("NextToken"):
            start = decode_token(body["NextToken"], w=what).get("o")
            if not isinstance(start, int) or start < 0:
                raise invalid("Invalid pagination token")
        page = items[start:start + limit]
        more = start + limit < len(items)
        return page, encode_token({"w": what, "o": start + limit}) if more else None

    def op_ListGroups(self, body, rules):
        groups, token = self.page_of(list(self.groups), body, "groups")
        answer = {"Groups": [self.group_doc(g) for g in groups]}
        if token:
            answer["NextToken"] = token
        return json_answer(answer)

    def op_GetGroup(self, body, rules):
        name = body.get("GroupName")
        if name not in self.groups:
            raise group_not_found()
        return json_answer({"Group": self.group_doc(name)})

    def op_AdminListGroupsForUser(self, body, rules):
        ref = self.find(body.get("Username"))
        if ref is None:
            raise user_not_found()
        groups, token = self.page_of(self.groups_of(ref), body,
                                     "user:" + self.sub_of(ref))
        answer = {"Groups": [self.group_doc(g) for g in groups]}
        if token:
            answer["NextToken"] = token
        return json_answer(answer)

    def op_ListUsersInGroup(self, body, rules):
        group = body.get("GroupName")
        if group not in self.groups:
            raise group_not_found()
        limit = body.get("Limit") or 60
        i_lo, a_lo = 0, 0
        if body.get("NextToken"):
            last = decode_token(body["NextToken"], g=group).get("a")
            if not isinstance(last, str):
                raise invalid("Invalid pagination token")
            i_lo, a_lo = self.after(last)
        bit = self.bit_of.get(group)
        if bit is not None and not (self.added_subs or self.regrouped or self.deleted):
            refs, more = self.members(bit, i_lo, limit)
        else:
            refs, more = self.walk(i_lo, self.count, a_lo, len(self.added_subs), limit,
                                   self.group_keeper(group))
        text = '{"Users":[' + ",".join(self.entry_json(ref) for ref in refs) + "]"
        if more:
            text += f',"NextToken":"{encode_token({"g": group, "a": self.sub_of(refs[-1])})}"'
        return json_answer(text + "}")

    def op_GetCSVHeader(self, body, rules):
        return json_answer({"UserPoolId": self.pool_id, "CSVHeader": CSV_HEADER})

    def op_GetUserPoolMfaConfig(self, body, rules):
        return json_answer({"MfaConfiguration": "OFF"})

    def op_ListUserPoolClients(self, body, rules):
        return json_answer({"UserPoolClients": []})

    def op_ListIdentityProviders(self, body, rules):
        return json_answer({"Providers": []})

    def op_ListResourceServers(self, body, rules):
        return json_answer({"ResourceServers": []})

    def op_GetUICustomization(self, body, rules):
        return json_answer({"UICustomization": {"UserPoolId": self.pool_id, "ClientId": "ALL"}})

    def op_DescribeRiskConfiguration(self, body, rules):
        return json_answer({"RiskConfiguration": {"UserPoolId": self.pool_id}})

    def op_GetLogDeliveryConfiguration(self, body, rules):
        return json_answer({"LogDeliveryConfiguration": {"UserPoolId": self.pool_id,
                                                         "LogConfigurations": []}})

    def op_ListTerms(self, body, rules):
        return json_answer({"Terms": []})

    # Writes -----------------------------------------------------------------------------
    def existing(self, body):
        ref = self.find(body.get("Username"))
        if ref is None:
            raise user_not_found()
        return ref

    def new_sub(self):
        """A sub no user of the pool has: uuid4-shaped, from the seed and a counter."""
        while True:
            self.serial += 1
            h = hashlib.blake2b(f"cbr synthetic pool/{self.seed}/added/{self.serial}".encode(),
                                digest_size=16).digest()
            n = int.from_bytes(h, "big")
            n = (n & ~(0xF << 76)) | (0x4 << 76)  # version 4
            n = (n & ~(0x3 << 62)) | (0x2 << 62)  # variant 10xx
            hexed = f"{n:032x}"
            sub = f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
            if self.find_sub(sub) is None:
                return sub

    def deliver(self, rules, op, body, attrs, username, kind, source):
        """The invitation/code Cognito would send (rules.py's checks and records)."""
        plan = Plan(body)
        for medium in delivery_mediums(body, attrs):
            rules.message(plan, self.settings, op, medium, username, kind, source)
        rules.record(plan)

    def op_AdminCreateUser(self, body, rules):
        username = body.get("Username")
        if not isinstance(username, str) or not username:
            raise invalid("1 validation error detected: Value at 'username' failed to satisfy "
                          "constraint: Member must not be null")
        if body.get("MessageAction") == "RESEND":
            ref = self.existing(body)
            user = self.record(ref)
            self.deliver(rules, "AdminCreateUser", body, attrs_of(user), user["Username"],
                         "invitation", "AdminCreateUser")
            return json_answer({"User": user})
        self.settings.check_username(username)
        self.settings.check_attributes("AdminCreateUser", body.get("UserAttributes"))
        if self.find(username) is not None:
            raise AwsError(400, "UsernameExistsException", "User account already exists")
        given = attrs_of(body.get("UserAttributes"))
        if body.get("MessageAction") != "SUPPRESS":
            self.deliver(rules, "AdminCreateUser", body, given, username, "invitation",
                         "AdminCreateUser")
        sub = self.new_sub()
        at = now_epoch()
        user = {"Username": username,
                "Attributes": [{"Name": "sub", "Value": sub}] +
                              [{"Name": n, "Value": v} for n, v in given.items()],
                "UserCreateDate": at, "UserLastModifiedDate": at, "Enabled": True,
                "UserStatus": "FORCE_CHANGE_PASSWORD"}
        self.added[sub] = user
        self.added_groups[sub] = set()
        bisect.insort(self.added_subs, sub)
        self.added_names[username.lower()] = sub
        return json_answer({"User": user})

    def op_AdminUpdateUserAttributes(self, body, rules):
        self.settings.check_attributes("AdminUpdateUserAttributes", body.get("UserAttributes"))
        ref = self.existing(body)
        user = json.loads(json.dumps(self.record(ref)))
        current = attrs_of(user)
        changes = attrs_of(body.get("UserAttributes"))
        for attr, medium in (("email", "EMAIL"), ("phone_number", "SMS")):
            said = changes.get(attr + "_verified")
            if attr in changes and changes[attr] != current.get(attr) and changes[attr]:
                if said is None:
                    changes[attr + "_verified"] = "false"
                if not is_true(said):
                    plan = Plan(body)
                    rules.message(plan, self.settings, "AdminUpdateUserAttributes", medium,
                                  user["Username"], "verification_code", "UpdateUserAttribute")
                    rules.record(plan)
        names = [a["Name"] for a in user["Attributes"]]
        for name, value in changes.items():
            if name in current:
                user["Attributes"][names.index(name)]["Value"] = value
            else:
                user["Attributes"].append({"Name": name, "Value": value})
                names.append(name)
        self.store(ref, user)
        return json_answer({})

    def op_AdminDeleteUserAttributes(self, body, rules):
        self.settings.check_deletions(body.get("UserAttributeNames"))
        ref = self.existing(body)
        gone = set(body.get("UserAttributeNames") or [])
        user = dict(self.record(ref))
        user["Attributes"] = [a for a in user["Attributes"] if a["Name"] not in gone]
        self.store(ref, user)
        return json_answer({})

    def set_field(self, body, **fields):
        ref = self.existing(body)
        user = dict(self.record(ref), **fields)
        self.store(ref, user)
        return json_answer({})

    def op_AdminDisableUser(self, body, rules):
        return self.set_field(body, Enabled=False)

    def op_AdminEnableUser(self, body, rules):
        return self.set_field(body, Enabled=True)

    def op_AdminSetUserPassword(self, body, rules):
        if not isinstance(body.get("Password"), str) or not body["Password"]:
            raise invalid("1 validation error detected: Value at 'password' failed to satisfy "
                          "constraint: Member must not be null")
        status = "CONFIRMED" if body.get("Permanent") is True else "FORCE_CHANGE_PASSWORD"
        return self.set_field(body, UserStatus=status)

    def op_AdminResetUserPassword(self, body, rules):
        ref = self.existing(body)
        user = self.record(ref)
        plan = Plan(body)
        medium = "EMAIL" if attrs_of(user).get("email") else "SMS"
        rules.message(plan, self.settings, "AdminResetUserPassword", medium, user["Username"],
                      "reset_code", "ForgotPassword")
        rules.record(plan)
        return self.set_field(body, UserStatus="RESET_REQUIRED")

    def op_AdminConfirmSignUp(self, body, rules):
        user = self.record(self.existing(body))
        if user["UserStatus"] != "UNCONFIRMED":
            raise AwsError(400, "NotAuthorizedException",
                           f"User cannot be confirmed. Current status is {user['UserStatus']}")
        return self.set_field(body, UserStatus="CONFIRMED")

    def op_AdminUserGlobalSignOut(self, body, rules):
        self.existing(body)
        return json_answer({})

    def op_AdminDeleteUser(self, body, rules):
        kind, key = self.existing(body)
        if kind == "a":
            user = self.added.pop(key)
            self.added_groups.pop(key, None)
            del self.added_subs[bisect.bisect_left(self.added_subs, key)]
            self.added_names.pop(user["Username"].lower(), None)
        else:
            self.deleted.add(key)
            self.changed.pop(key, None)
            self.regrouped.pop(key, None)
        return json_answer({})

    def regroup(self, body, add):
        group = body.get("GroupName")
        if group not in self.groups:
            raise group_not_found()
        ref = self.existing(body)
        names = set(self.groups_of(ref))
        (names.add if add else names.discard)(group)
        kind, key = ref
        if kind == "a":
            self.added_groups[key] = names
        else:
            self.regrouped[key] = names
        return json_answer({})

    def op_AdminAddUserToGroup(self, body, rules):
        return self.regroup(body, True)

    def op_AdminRemoveUserFromGroup(self, body, rules):
        return self.regroup(body, False)

    def op_CreateGroup(self, body, rules):
        name = body.get("GroupName")
        if not isinstance(name, str) or not name:
            raise invalid("1 validation error detected: Value at 'groupName' failed to satisfy "
                          "constraint: Member must not be null")
        if name in self.groups:
            raise AwsError(400, "GroupExistsException",
                           f"A group with the name {name} already exists.")
        self.groups[name] = {k: body[k] for k in ("GroupName", "Description", "Precedence",
                                                  "RoleArn") if k in body}
        return json_answer({"Group": self.group_doc(name)})

    def op_UpdateGroup(self, body, rules):
        name = body.get("GroupName")
        if name not in self.groups:
            raise group_not_found()
        for k in ("Description", "Precedence", "RoleArn"):
            if k in body:
                self.groups[name][k] = body[k]
        return json_answer({"Group": self.group_doc(name)})

    def op_DeleteGroup(self, body, rules):
        name = body.get("GroupName")
        if name not in self.groups:
            raise group_not_found()
        del self.groups[name]
        bit = self.bit_of.pop(name, None)
        if bit is not None:
            self.live_bits &= ~(1 << bit)
        if name == EVERYONE:
            self.everyone = False
        for names in (*self.regrouped.values(), *self.added_groups.values()):
            names.discard(name)
        return json_answer({})


class SyntheticPools:
    """The synthetic pools of a layer, by id."""

    def __init__(self, specs=(), empty=(), groups=DEFAULT_GROUPS, everyone=()):
        self.pools = {}
        for spec in specs:
            pool, count, seed = parse_spec(spec)
            self.add(SyntheticPool(pool, count, seed, groups, pool in everyone))
        for pool in empty:
            self.add(SyntheticPool(pool, 0, "empty", 0, pool in everyone))
        unknown = set(everyone) - set(self.pools)
        if unknown:
            raise ValueError(f"--synthetic-everyone names no synthetic pool: "
                             f"{', '.join(sorted(unknown))}")

    def add(self, pool):
        if pool.pool_id in self.pools:
            raise ValueError(f"synthetic pool {pool.pool_id} given twice")
        self.pools[pool.pool_id] = pool

    def get(self, pool_id):
        return self.pools.get(pool_id) if isinstance(pool_id, str) else None

    def __bool__(self):
        return bool(self.pools)

    def summaries(self):
        return [p.summary() for p in self.pools.values()]

    def info(self, members=False):
        return {pool_id: p.info(members) for pool_id, p in self.pools.items()}
