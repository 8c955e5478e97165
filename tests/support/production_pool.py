"""Pools as they are in production, for the tests and the benchmark.

Generated pools where every user is CONFIRMED, enabled and ASCII hide most of what goes wrong
(see ../shared/docs/cognito-facts.md, "Pools as they are in production"). This module makes
the other kind, deterministically from a seed:

* ``SHAPES``: the pool settings that change what a restore may do, as CreateUserPool
  parameters (``username``, ``case_insensitive``, ``email_sign_in``, ``phone_sign_in``,
  ``email_alias``, ``preferred_username_alias``), each with the same custom schema
  (``CUSTOM_SCHEMA``: ``custom:tier`` String 0..256, ``custom:score`` Number 0..1,000,000,
  ``custom:beta`` Boolean, ``custom:joined`` DateTime, ``custom:code`` immutable String ..64).
  moto echoes them in DescribeUserPool, so tests/support/aws_layer.py enforces them (case
  folding, alias uniqueness and format, the schema's types and limits).
* ``production_users(shape, count, seed, groups)``: user records as ListUsers answers them
  (``Username``, ``Attributes``, ``Enabled``, ``UserStatus``, ``UserCreateDate`` and
  ``UserLastModifiedDate`` in epoch seconds with milliseconds as moto serializes them) plus
  ``Groups`` (names), the shape of a ``cbr`` backup record. For any count of 40 or more
  every kind below is present; the shares scale with the count:

  - statuses: UNCONFIRMED ~20 %, CONFIRMED ~35 %, FORCE_CHANGE_PASSWORD ~10 %,
    RESET_REQUIRED ~10 %, COMPROMISED ~5 %, EXTERNAL_PROVIDER ~15 % (``Google_…``,
    ``Facebook_…``, ``SignInWithApple_…``, ``LoginWithAmazon_…``, ``SAML-Okta_…``
    usernames with Cognito's ``identities`` JSON), and CONFIRMED native users linked to a
    provider (``identities`` too) ~5 %;
  - disabled users ~10 %, at least one of each kind;
  - groups (``DEFAULT_GROUPS``: 30 names, one in CJK, one with an emoji): ~40 % of the users
    in none, the others in one, a few or many; one user in every group (at most 100);
  - names and values in Latin with diacritics, Cyrillic, Greek, CJK, Arabic, Devanagari,
    Hangul and emoji (ZWJ sequences included) in ``name``, ``given_name``, ``family_name``,
    ``custom:tier``; usernames in those scripts (no spaces, no ZWJ: Cognito's pattern is
    ``[\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+``) in the username shapes, and usernames with upper
    case letters (``ALICE``, ``Ärger.Müller``) so case folding matters;
  - values at the schema's limits: ``custom:tier`` of exactly 256 code points (multi-byte
    characters included), ``custom:score`` "0" and "1000000", ``custom:code`` of 64
    characters, ``name`` of 2,048 code points;
  - email and phone verified ("true"), unverified ("false") and absent; emails lower-case
    and unique, phones ``+1555…`` and unique, in every shape.

  Per shape: in case-insensitive shapes no two usernames are equal after ``lower()`` or
  ``casefold()``; ``username`` (case-sensitive) holds ``ALICE`` and ``alice``, two users;
  in ``email_sign_in`` / ``phone_sign_in`` every native user has an email / a phone number
  and a generated UUID username (not its sub); in ``email_alias`` no username looks like an
  email; in ``preferred_username_alias`` about half the native users have a unique
  ``preferred_username`` (not email- or phone-like, not another user's username).
  Every user has a ``sub``: a lower-case UUID4 drawn from the seeded generator.
* ``as_restored(shape, users, seed)``: the same users as ``cbr restore`` (default password
  mode) leaves them in an empty pool: federated users absent, new subs, no ``identities``,
  CONFIRMED / RESET_REQUIRED / COMPROMISED become CONFIRMED, UNCONFIRMED /
  FORCE_CHANGE_PASSWORD become FORCE_CHANGE_PASSWORD, new usernames in sign-in shapes.
* ``create_pool(backend, name, shape)`` and ``seed(backend, pool_id, users)``: write such a
  pool straight into moto's in-process Cognito backend
  (``moto.cognitoidp.models.cognitoidp_backends[account][region]``), which moto's admin API
  cannot do (it cannot make a user UNCONFIRMED, COMPROMISED or EXTERNAL_PROVIDER, nor link
  identities, and it replaces a given ``sub``). tests/support/moto_server.py serves this as
  ``POST /_test/production-pool``.

Standard library only; moto is imported only by the functions that touch its backend.
Determinism: everything is drawn from ``random.Random`` seeded with a string made of the
shape and the seed (string seeds hash with SHA-512, independent of PYTHONHASHSEED), so the
same (shape, count, seed) always gives the same users, and two shapes never share subs.
"""

import calendar
import copy
import datetime
import json
import random
import re
import unicodedata
import uuid

# ---------------------------------------------------------------------------------------
# Pool shapes

CUSTOM_SCHEMA = [
    {"Name": "tier", "AttributeDataType": "String", "Mutable": True,
     "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "256"}},
    {"Name": "score", "AttributeDataType": "Number", "Mutable": True,
     "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "1000000"}},
    {"Name": "beta", "AttributeDataType": "Boolean", "Mutable": True},
    {"Name": "joined", "AttributeDataType": "DateTime", "Mutable": True},
    {"Name": "code", "AttributeDataType": "String", "Mutable": False,
     "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "64"}},
]
TIER_MAX, CODE_MAX, SCORE_MIN, SCORE_MAX, NAME_MAX = 256, 64, 0, 1_000_000, 2048


def _shape(**settings):
    return dict(settings, Schema=CUSTOM_SCHEMA)


# CreateUserPool parameters (besides PoolName) of each shape.
SHAPES = {
    "username": _shape(UsernameConfiguration={"CaseSensitive": True}),
    "case_insensitive": _shape(UsernameConfiguration={"CaseSensitive": False}),
    "email_sign_in": _shape(UsernameAttributes=["email"],
                            UsernameConfiguration={"CaseSensitive": False}),
    "phone_sign_in": _shape(UsernameAttributes=["phone_number"],
                            UsernameConfiguration={"CaseSensitive": False}),
    "email_alias": _shape(AliasAttributes=["email"],
                          UsernameConfiguration={"CaseSensitive": True}),
    "preferred_username_alias": _shape(AliasAttributes=["preferred_username"],
                                       UsernameConfiguration={"CaseSensitive": False}),
}


def case_sensitive(shape):
    return SHAPES[shape]["UsernameConfiguration"]["CaseSensitive"]


def sign_in_attribute(shape):
    """"email" / "phone_number" for the sign-in shapes, else None."""
    names = SHAPES[shape].get("UsernameAttributes") or []
    return names[0] if names else None


# 30 group names: one in CJK, one with an emoji, one with upper case letters.
DEFAULT_GROUPS = [
    "admins", "editors", "viewers", "billing", "support", "engineering", "marketing",
    "sales", "hr", "finance", "legal", "operations", "security", "beta-testers", "partners",
    "contractors", "interns", "managers", "auditors", "moderators", "premium", "free-tier",
    "eu-west", "us-east", "apac", "mobile", "web", "Api.Clients", "管理者", "🚀-launch-team",
]


def group_definitions(groups):
    """CreateGroup settings for each name: a description, precedence and role on some."""
    defs = []
    for i, name in enumerate(groups):
        d = {"GroupName": name}
        if i % 3 == 0:
            d["Description"] = f"{name}: Λειτουργία / 運用 / ✓" if i % 9 == 0 else f"The {name}"
        if i % 2 == 0:
            d["Precedence"] = i
        if i % 5 == 0:
            d["RoleArn"] = f"arn:aws:iam::123456789012:role/cognito-group-{i}"
        defs.append(d)
    return defs


# ---------------------------------------------------------------------------------------
# What users are made of

# (given, family, romanized given, romanized family) per script.
PEOPLE = {
    "latin": [("Ada", "Lovelace", "ada", "lovelace"), ("Grace", "Hopper", "grace", "hopper"),
              ("Alan", "Turing", "alan", "turing"), ("Barbara", "Liskov", "barbara", "liskov"),
              ("Donald", "Knuth", "donald", "knuth"), ("Radia", "Perlman", "radia", "perlman"),
              ("Ken", "Thompson", "ken", "thompson"), ("Frances", "Allen", "frances", "allen")],
    "latin_diacritics": [("Zoë", "Ñandú", "zoe", "nandu"), ("Ärger", "Müller", "arger", "muller"),
                         ("José", "García", "jose", "garcia"),
                         ("Łukasz", "Wałęsa", "lukasz", "walesa"),
                         ("Søren", "Kierkegård", "soren", "kierkegard"),
                         ("Çağla", "Öztürk", "cagla", "ozturk"),
                         ("Antonín", "Dvořák", "antonin", "dvorak"),
                         ("François", "Lefèvre", "francois", "lefevre")],
    "cyrillic": [("Анна", "Петрова", "anna", "petrova"), ("Дмитрий", "Иванов", "dmitry", "ivanov"),
                 ("Ольга", "Смирнова", "olga", "smirnova"), ("Юрий", "Гагарин", "yuri", "gagarin")],
    "greek": [("Ελένη", "Παπαδοπούλου", "eleni", "papadopoulou"),
              ("Γιώργος", "Νικολάου", "giorgos", "nikolaou"),
              ("Σοφία", "Καραγιάννη", "sofia", "karagianni")],
    "cjk": [("太郎", "山田", "taro", "yamada"), ("美咲", "佐藤", "misaki", "sato"),
            ("明", "王", "ming", "wang"), ("秀英", "李", "xiuying", "li")],
    "arabic": [("فاطمة", "الزهراء", "fatima", "alzahraa"), ("محمد", "العلي", "mohammed", "alali"),
               ("ليلى", "حداد", "layla", "haddad")],
    "devanagari": [("प्रिया", "शर्मा", "priya", "sharma"), ("राहुल", "वर्मा", "rahul", "verma"),
                   ("अनन्या", "गुप्ता", "ananya", "gupta")],
    "hangul": [("민준", "김", "minjun", "kim"), ("서연", "이", "seoyeon", "lee"),
               ("지호", "박", "jiho", "park")],
    "emoji": [("Sam 🎉", "Lee", "sam", "lee"), ("Kai", "Nakamura 👩‍💻", "kai", "nakamura"),
              ("Robin 🏳️‍🌈", "Stone", "robin", "stone"), ("Alex", "Rivera 👨‍👩‍👧‍👦", "alex", "rivera"),
              ("🦊", "Fox", "fox", "fox")],
}
SCRIPTS = list(PEOPLE)
FAMILY_FIRST = {"cjk", "hangul"}  # "山田太郎", "김민준"

TIERS = ["free", "pro", "enterprise", "gold", "серебро", "金", "χρυσό", "ذهبي", "स्वर्ण", "골드",
         "💎 diamond", "👩‍💻 dev-tier", "🏳️‍🌈 pride", "beta tester ✨", "Ünïcödé ⚡"]
LOCALES = ["en-US", "de-DE", "ja-JP", "ar-EG", "hi-IN", "ko-KR", "el-GR", "ru-RU", "fr-FR"]
ZONES = ["Europe/Berlin", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "Africa/Cairo",
         "Asia/Seoul", "Europe/Athens", "Europe/Moscow"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com",
           "corp.example.co.uk", "example.io"]

# The kinds of users, their share of the pool, and the status each has.
KINDS = [("UNCONFIRMED", 0.20), ("CONFIRMED", 0.35), ("FORCE_CHANGE_PASSWORD", 0.10),
         ("RESET_REQUIRED", 0.10), ("COMPROMISED", 0.05), ("EXTERNAL_PROVIDER", 0.15),
         ("LINKED", 0.05)]
STATUS_OF = {k: ("CONFIRMED" if k == "LINKED" else k) for k, _ in KINDS}
# Which kinds a small pool (fewer users than kinds) gets first.
KIND_PRIORITY = ["CONFIRMED", "UNCONFIRMED", "EXTERNAL_PROVIDER", "FORCE_CHANGE_PASSWORD",
                 "RESET_REQUIRED", "COMPROMISED", "LINKED"]
STATUSES = ["UNCONFIRMED", "CONFIRMED", "FORCE_CHANGE_PASSWORD", "RESET_REQUIRED",
            "COMPROMISED", "EXTERNAL_PROVIDER"]

# Email and phone states (verified, unverified, absent) by kind, as weights.
EMAIL_STATES = {"UNCONFIRMED": (0, 75, 25), "CONFIRMED": (65, 15, 20),
                "FORCE_CHANGE_PASSWORD": (45, 25, 30), "RESET_REQUIRED": (80, 0, 20),
                "COMPROMISED": (85, 15, 0), "LINKED": (100, 0, 0),
                "EXTERNAL_PROVIDER": (35, 45, 20)}
PHONE_STATES = {"UNCONFIRMED": (0, 20, 80), "CONFIRMED": (25, 10, 65),
                "FORCE_CHANGE_PASSWORD": (15, 10, 75), "RESET_REQUIRED": (30, 0, 70),
                "COMPROMISED": (30, 0, 70), "LINKED": (10, 0, 90),
                "EXTERNAL_PROVIDER": (0, 5, 95)}

# Federated providers: (provider name, provider type, share).
PROVIDERS = [("Google", "Google", 45), ("Facebook", "Facebook", 15),
             ("SignInWithApple", "SignInWithApple", 15), ("SAML-Okta", "SAML", 20),
             ("LoginWithAmazon", "LoginWithAmazon", 5)]
OKTA_ISSUER = "http://www.okta.com/exk1a2b3c4d5e6f7g8h9"

START = datetime.datetime(2019, 1, 1)
END = datetime.datetime(2025, 6, 1)
EPOCH = datetime.datetime(1970, 1, 1)

EMAIL_FORMAT = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # as aws_layer.py checks it
PHONE_FORMAT = re.compile(r"^\+[0-9]{4,15}$")
UUID_FORMAT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def is_valid_username(name):
    """Cognito's username pattern, [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+, at most 128 characters."""
    return 0 < len(name) <= 128 and all(unicodedata.category(c)[0] in "LMSNP" for c in name)


def _username_chars(text):
    """`text` with spaces as dots and every character the username pattern refuses removed
    (spaces, ZWJ and other format characters)."""
    text = text.replace(" ", ".")
    return "".join(c for c in text if unicodedata.category(c)[0] in "LMSNP")


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def moto_time(dt):
    """A datetime as moto's JSON answers give it: epoch seconds, milliseconds as a fraction
    (an int when there are none)."""
    base = calendar.timegm(dt.timetuple())
    return base + (dt.microsecond // 1000) / 1000.0 if dt.microsecond else base


def parse_time(value):
    """A record's date (epoch seconds, or an ISO 8601 string) as a naive UTC datetime."""
    if isinstance(value, (int, float)):
        return EPOCH + datetime.timedelta(milliseconds=round(value * 1000))
    dt = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return dt


def _spread(rng, n, weights):
    """`n` labels in proportion to `weights` ([(label, weight)]), shuffled: largest
    remainder, and every label of positive weight at least once when n allows."""
    labels = [(label, w) for label, w in weights if w > 0]
    if n <= 0 or not labels:
        return []
    total = sum(w for _, w in labels)
    exact = [n * w / total for _, w in labels]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(labels)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:n - sum(counts)]:
        counts[i] += 1
    if n >= len(labels):
        for i in range(len(labels)):
            while counts[i] == 0:
                donor = max(range(len(labels)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    out = [label for (label, _), c in zip(labels, counts) for _ in range(c)]
    rng.shuffle(out)
    return out


def _kinds(rng, count):
    """The kind of each user, shuffled."""
    if count < len(KINDS):
        kinds = KIND_PRIORITY[:count]
    else:
        counts = {k: max(1, round(count * share)) for k, share in KINDS if k != "CONFIRMED"}
        counts["CONFIRMED"] = count - sum(counts.values())
        kinds = [k for k, _ in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    return kinds


class _Names:
    """Usernames (or aliases) handed out so far; `fold` makes the check case-insensitive
    under both lower() and casefold()."""

    def __init__(self, fold=True):
        self.fold, self.taken = fold, set()

    def keys(self, name):
        return {name.lower(), name.casefold()} if self.fold else {name}

    def free(self, name):
        return not (self.keys(name) & self.taken)

    def take(self, name):
        self.taken |= self.keys(name)
        return name

    def unique(self, rng, name):
        """`name`, or `name` with a number appended, whichever is free; taken."""
        candidate = name
        while not self.free(candidate):
            candidate = f"{name}.{rng.randrange(10, 100000)}"
        return self.take(candidate)


def _long_text(pattern, length):
    """`pattern` repeated to exactly `length` code points, ending in a letter."""
    text = (pattern * (length // len(pattern) + 2))[:length - 1]
    return text + "z"


def _federated_id(rng, provider, person, for_email_alias):
    """(username suffix, userId) as Cognito names a federated user of `provider`."""
    if provider == "Google":
        uid = str(rng.randrange(10**20, 10**21))
    elif provider == "Facebook":
        uid = str(rng.randrange(10**15, 10**16))
    elif provider == "SignInWithApple":
        uid = f"{rng.randrange(10**5, 10**6):06d}.{rng.getrandbits(128):032x}.{rng.randrange(1000, 10000)}"
    elif provider == "LoginWithAmazon":
        uid = "amzn1.account." + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                         for _ in range(28))
    elif for_email_alias:  # SAML NameID: an Okta user id (an email would look like one)
        uid = "00u" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                              for _ in range(17))
    else:  # SAML NameID: the user's corporate email
        uid = f"{person[2]}.{person[3]}{rng.randrange(1, 1000)}@corp.example.com"
    return uid


def _identities(entries):
    """Cognito's `identities` attribute: a compact JSON string."""
    return json.dumps([{"userId": uid, "providerName": name, "providerType": ptype,
                        "issuer": OKTA_ISSUER if ptype == "SAML" else None,
                        "primary": primary, "dateCreated": created_ms}
                       for uid, name, ptype, primary, created_ms in entries],
                      separators=(",", ":"), ensure_ascii=False)


def production_users(shape, count, seed=0, groups=None):
    """`count` users of a pool of `shape` as ListUsers lists them, with their `Groups`
    (names from `groups`, by default DEFAULT_GROUPS). Deterministic in (shape, count, seed);
    see the module's docstring for the mix."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")
    if not isinstance(count, int) or count < 0:
        raise ValueError("count must be a non-negative integer")
    groups = list(DEFAULT_GROUPS if groups is None else groups)
    rng = random.Random(f"cbr production pool/{shape}/{seed}")
    sign_in = sign_in_attribute(shape)
    # Usernames never differ only in case (in case-sensitive shapes either: no accidental
    # twins), but for ALICE and alice, placed on purpose in the `username` shape.
    names = _Names(fold=True)
    kinds = _kinds(rng, count)
    scripts = _spread(rng, count, [(s, 1) for s in SCRIPTS])
    natives = [i for i, k in enumerate(kinds) if k != "EXTERNAL_PROVIDER"]

    # Email and phone states, spread within each kind so every state occurs.
    email_state, phone_state = [None] * count, [None] * count
    for kind, _ in KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        ew, pw = list(EMAIL_STATES[kind]), list(PHONE_STATES[kind])
        native = kind != "EXTERNAL_PROVIDER"
        if native and sign_in == "email":
            ew = [0, 1, 0] if kind == "UNCONFIRMED" else [ew[0] + ew[2], ew[1], 0]
        if native and sign_in == "phone_number":
            pw = [0, 1, 0] if kind == "UNCONFIRMED" else [max(pw[0], 80), max(pw[1], 20), 0]
        for i, s in zip(idx, _spread(rng, len(idx), list(zip("vua", ew)))):
            email_state[i] = s
        for i, s in zip(idx, _spread(rng, len(idx), list(zip("vua", pw)))):
            phone_state[i] = s
        if kind == "RESET_REQUIRED":  # an import needs a verified email or phone number
            for i in idx:
                if email_state[i] != "v" and phone_state[i] != "v":
                    phone_state[i] = "v"

    phone_numbers = rng.sample(range(10**7), count)
    emails = _Names(fold=True)
    users = []
    for i, kind in enumerate(kinds):
        script = scripts[i]
        person = rng.choice(PEOPLE[script])
        given, family, rg, rf = person
        created = START + datetime.timedelta(
            milliseconds=rng.randrange(int((END - START).total_seconds() * 1000)))
        if kind == "UNCONFIRMED" or rng.random() < 0.3:
            modified = created
        else:
            modified = min(created + datetime.timedelta(milliseconds=rng.randrange(400 * 86400_000)),
                           END + datetime.timedelta(days=29))
        created_ms = int((created - EPOCH).total_seconds() * 1000)
        attrs = {"sub": _uuid(rng)}

        # Username (and the identities of federated and linked users).
        if kind == "EXTERNAL_PROVIDER":
            provider, ptype = rng.choices([(p, t) for p, t, _ in PROVIDERS],
                                          [w for _, _, w in PROVIDERS])[0]
            uid = _federated_id(rng, provider, person, shape == "email_alias")
            username = names.unique(rng, f"{provider}_{uid}")
            attrs["identities"] = _identities([(uid, provider, ptype, True, created_ms)])
        elif sign_in:
            username = names.take(_uuid(rng))
        else:
            username = None  # chosen below, once the special names are placed
        if kind == "LINKED":
            links = [("Google", "Google")] + ([("SAML-Okta", "SAML")] if rng.random() < 0.3 else [])
            attrs["identities"] = _identities(
                [(_federated_id(rng, p, person, shape == "email_alias"), p, t, n == 0,
                  created_ms + n * 86400_000) for n, (p, t) in enumerate(links)])

        # Names.
        if rng.random() < 0.92:
            attrs["name"] = f"{family}{given}" if script in FAMILY_FIRST else f"{given} {family}"
        if rng.random() < 0.85:
            attrs["given_name"] = given
            attrs["family_name"] = family

        # Email and phone number.
        es, ps = email_state[i], phone_state[i]
        if es != "a":
            local = rng.choice([f"{rg}.{rf}", f"{rg}{rf}{rng.randrange(1, 100)}", f"{rg}_{rf}",
                                f"{rg[0]}{rf}", f"{rg}+{rng.choice(['news', 'shop', 'work'])}"])
            domain, candidate = rng.choice(DOMAINS), local
            while not emails.free(f"{candidate}@{domain}"):
                candidate = f"{local}{rng.randrange(2, 100000)}"
            attrs["email"] = emails.take(f"{candidate}@{domain}".lower())
            attrs["email_verified"] = "true" if es == "v" else "false"
        if ps != "a":
            attrs["phone_number"] = f"+1555{phone_numbers[i]:07d}"
            attrs["phone_number_verified"] = "true" if ps == "v" else "false"

        # Other standard attributes, now and then.
        if rng.random() < 0.3:
            attrs["locale"] = rng.choice(LOCALES)
        if rng.random() < 0.2:
            attrs["zoneinfo"] = rng.choice(ZONES)
        if rng.random() < 0.15:
            attrs["birthdate"] = f"{rng.randrange(1940, 2008)}-{rng.randrange(1, 13):02d}-" \
                                 f"{rng.randrange(1, 29):02d}"
        if rng.random() < 0.1:
            attrs["nickname"] = rng.choice([rg, given, f"{rg} ✌️"])

        # Custom attributes.
        if rng.random() < 0.6:
            attrs["custom:tier"] = rng.choice(TIERS)
        if rng.random() < 0.5:
            attrs["custom:score"] = str(rng.randrange(SCORE_MIN + 1, SCORE_MAX))
        if rng.random() < 0.4:
            attrs["custom:beta"] = rng.choice(["true", "false"])
        if rng.random() < 0.5:
            attrs["custom:joined"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        if rng.random() < 0.4:
            attrs["custom:code"] = f"REF-{rng.getrandbits(32):08X}"

        users.append({"Username": username, "Attributes": attrs, "Enabled": True,
                      "UserStatus": STATUS_OF[kind], "UserCreateDate": moto_time(created),
                      "UserLastModifiedDate": moto_time(modified), "Groups": [],
                      "_person": person, "_script": script})

    # Native usernames in the username shapes: a few special ones, then from the names.
    if not sign_in:
        specials = ["ALICE", "Ärger.Müller", "Bob.SMITH", "Юлия.Смирнова", "rocket🚀"]
        if shape == "username":
            specials.insert(1, "alice")  # case-sensitive: ALICE and alice are two users
        for n, i in enumerate(natives):
            if n < len(specials):
                name = specials[n]
                users[i]["Username"] = names.take(name) if shape == "username" and \
                    name == "alice" else names.unique(rng, name)
                continue
            given, family, rg, rf = users[i]["_person"]
            style = rng.random()
            if style < 0.35:
                base = f"{rg}.{rf}"
            elif style < 0.5:
                base = f"{rg}{rng.randrange(1, 10000)}"
            elif style < 0.75 and users[i]["_script"] != "latin":
                base = _username_chars(f"{given}.{family}") or rg
            elif style < 0.85:
                base = f"{rg.capitalize()}.{rf.upper()}"
            else:
                base = f"user_{rng.randrange(10**6):06d}"
            users[i]["Username"] = names.unique(rng, base)

    # preferred_username: about half the native users, unique, after every username is known.
    if shape == "preferred_username_alias":
        usernames = _Names(fold=True)
        for u in users:
            usernames.take(u["Username"])
        aliases = _Names(fold=True)
        for i in natives:
            if rng.random() >= 0.5:
                continue
            given, family, rg, rf = users[i]["_person"]
            base = rng.choice([f"{rg}_{rf}", f"{rg}{rng.randrange(1, 1000)}",
                               _username_chars(given) or rg])
            candidate = base
            while not (aliases.free(candidate) and usernames.free(candidate)):
                candidate = f"{base}_{rng.randrange(1, 100000)}"
            users[i]["Attributes"]["preferred_username"] = aliases.take(candidate)

    # Values at the schema's limits, each on its own native user.
    if len(natives) >= 5:
        tier, low, high, code, long_name = rng.sample(natives, 5)
        users[tier]["Attributes"]["custom:tier"] = _long_text("Tier-Ω·金🚀é·ß·", TIER_MAX)
        users[low]["Attributes"]["custom:score"] = str(SCORE_MIN)
        users[high]["Attributes"]["custom:score"] = str(SCORE_MAX)
        users[code]["Attributes"]["custom:code"] = "".join(
            rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(CODE_MAX))
        users[long_name]["Attributes"]["name"] = _long_text(
            "Zoë Ñandú 山田太郎 Анна 👩‍💻 ", NAME_MAX)

    # Disabled: one of each kind, then others at random, ~10 % in all.
    target = round(count * 0.10)
    disabled = []
    for kind, _ in KINDS:
        of_kind = [i for i, k in enumerate(kinds) if k == kind]
        if of_kind and len(disabled) < target:
            disabled.append(rng.choice(of_kind))
    picked = set(disabled)
    rest = [i for i in range(count) if i not in picked]
    disabled += rng.sample(rest, max(0, target - len(disabled)))
    for i in disabled:
        users[i]["Enabled"] = False

    # Groups: ~40 % in none; one user in every group (at most 100).
    if groups and count:
        shares = _spread(rng, count, [("none", 40), ("one", 33), ("few", 18), ("many", 9)])
        for i, share in enumerate(shares):
            k = {"none": 0, "one": 1, "few": rng.randrange(2, 4),
                 "many": rng.randrange(4, 9)}[share]
            chosen = set(rng.sample(range(len(groups)), min(k, len(groups))))
            users[i]["Groups"] = [g for n, g in enumerate(groups) if n in chosen]
        members = [i for i, s in enumerate(shares) if s != "none"]
        candidates = [i for i in members if kinds[i] == "CONFIRMED"] or members or [0]
        power = rng.choice(candidates)
        users[power]["Groups"] = groups[:100]

    for u in users:
        attrs = u.pop("Attributes")
        del u["_person"], u["_script"]
        u["Attributes"] = [{"Name": n, "Value": v} for n, v in attrs.items()]
    return [{k: u[k] for k in ("Username", "Attributes", "Enabled", "UserStatus",
                               "UserCreateDate", "UserLastModifiedDate", "Groups")}
            for u in users]


def as_restored(shape, users, seed=0):
    """The users as `cbr restore` (default password mode) leaves them in an empty pool of
    `shape`: federated users absent (they come back on their next sign-in), a new sub each,
    no `identities` (nobody can write it), CONFIRMED, RESET_REQUIRED and COMPROMISED users
    CONFIRMED (a random permanent password), UNCONFIRMED and FORCE_CHANGE_PASSWORD users
    FORCE_CHANGE_PASSWORD, a new UUID username in the sign-in shapes, created at restore
    time; enabled flags and groups as they were."""
    rng = random.Random(f"cbr restored pool/{shape}/{seed}")
    restored_at = datetime.datetime(2025, 7, 1)
    out = []
    for n, u in enumerate(users):
        if u["UserStatus"] == "EXTERNAL_PROVIDER":
            continue
        attrs = [dict(a) for a in u["Attributes"]
                 if a["Name"] not in ("sub", "identities") and not a["Name"].startswith("cognito:")]
        at = moto_time(restored_at + datetime.timedelta(milliseconds=n * 37))
        out.append({
            "Username": _uuid(rng) if sign_in_attribute(shape) else u["Username"],
            "Attributes": [{"Name": "sub", "Value": _uuid(rng)}] + attrs,
            "Enabled": u["Enabled"],
            "UserStatus": "CONFIRMED" if u["UserStatus"] in (
                "CONFIRMED", "RESET_REQUIRED", "COMPROMISED") else "FORCE_CHANGE_PASSWORD",
            "UserCreateDate": at, "UserLastModifiedDate": at,
            "Groups": list(u.get("Groups") or []),
        })
    return out


# ---------------------------------------------------------------------------------------
# Writing into moto's backend (in the moto server's own process)

def backend_for(region="us-east-1", account_id=None):
    """moto's Cognito backend of the account (moto's default one) and region."""
    from moto.cognitoidp.models import cognitoidp_backends
    from moto.core import DEFAULT_ACCOUNT_ID
    return cognitoidp_backends[account_id or DEFAULT_ACCOUNT_ID][region]


def create_pool(backend, name, shape):
    """A pool of `shape` created as CreateUserPool would (DescribeUserPool echoes the
    settings); returns its id."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")
    return backend.create_user_pool(name, copy.deepcopy(SHAPES[shape])).id


def seed(backend, pool_id, users, groups=None):
    """Puts `users` (records as production_users makes them) into the pool as they are:
    username, attributes in their order (the `sub` given becomes moto's user id, which moto
    reports as the sub), status (any string, moto's enum member where it has one), enabled
    flag, dates, and memberships on both sides (user.groups and group.users). `groups`
    (names, or CreateGroup-like dicts) are created first; any other group a user names is
    created bare. A record without a sub gets a random one (written into the record)."""
    from moto.cognitoidp.models import CognitoIdpUser, UserStatus

    pool = backend.describe_user_pool(pool_id)
    for g in groups or []:
        d = {"GroupName": g} if isinstance(g, str) else g
        if d["GroupName"] not in pool.groups:
            backend.create_group(pool_id, d["GroupName"], d.get("Description"),
                                 d.get("RoleArn"), d.get("Precedence"))
    statuses = {s.value: s for s in UserStatus}
    seen = set()
    for u in users:
        name = u["Username"]
        if name in pool.users or name in seen:
            raise ValueError(f"user {name!r} twice in the pool")
        seen.add(name)
        attrs = [{"Name": a["Name"], "Value": a["Value"]} for a in u.get("Attributes") or []]
        sub = next((a["Value"] for a in attrs if a["Name"] == "sub"), None)
        if sub is None:
            sub = str(uuid.uuid4())
            attrs.insert(0, {"Name": "sub", "Value": sub})
            u.setdefault("Attributes", []).insert(0, {"Name": "sub", "Value": sub})
        status = u.get("UserStatus") or "CONFIRMED"
        user = CognitoIdpUser(pool_id, name, None, statuses.get(status, status), [])
        user.id = sub
        user.attributes = attrs
        user.attribute_lookup = {a["Name"]: a["Value"] for a in attrs}
        user.enabled = bool(u.get("Enabled", True))
        if u.get("UserCreateDate") is not None:
            user.create_date = parse_time(u["UserCreateDate"])
        if u.get("UserLastModifiedDate") is not None:
            user.last_modified_date = parse_time(u["UserLastModifiedDate"])
        pool.users[name] = user
        for g in u.get("Groups") or []:
            if g not in pool.groups:
                backend.create_group(pool_id, g, None, None, None)
            group = pool.groups[g]
            group.users.add(user)
            user.groups.add(group)
    return pool_id


def production_pool(body):
    """What POST /_test/production-pool does with its JSON body (see moto_server.py):
    {"pool_id", "users", "groups"}. Raises ValueError on a bad request."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    shape = body.get("shape")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    seed_value = body.get("seed", 0)
    count = body.get("count", 0)
    users = body.get("users")
    if users is None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1_000_000:
            raise ValueError("count must be an integer from 0 to 1000000")
        if isinstance(seed_value, bool) or not isinstance(seed_value, (int, str)):
            raise ValueError("seed must be an integer or a string")
    elif not isinstance(users, list) or not all(
            isinstance(u, dict) and isinstance(u.get("Username"), str) for u in users):
        raise ValueError("users must be a list of user records with a Username")
    names = body.get("groups")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(g, str) and g for g in names)):
        raise ValueError("groups must be a list of group names")
    region = body.get("region") or "us-east-1"
    name = body.get("name") or f"production-{shape}-{seed_value}"
    if not isinstance(region, str) or not isinstance(name, str):
        raise ValueError("region and name must be strings")
    backend = backend_for(region)
    if users is None:
        users = production_users(shape, count, seed_value, names)
    definitions = group_definitions(DEFAULT_GROUPS if names is None else names) if users else []
    pool_id = create_pool(backend, name, shape)
    try:
        seed(backend, pool_id, users, definitions)
    except Exception:
        backend.delete_user_pool(pool_id)
        raise
    return {"pool_id": pool_id, "users": users, "groups": definitions}
