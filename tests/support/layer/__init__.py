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
* synthetic pools of millions of users generated on demand, never stored, for measuring at
  scale (``--synthetic-pool``; see ``synthetic``), behind the same quotas, latency, faults,
  token expiry, recording and stats;
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

The package, by concern (tests/support/aws_layer.py is the script that runs it):

* ``protocol``: the AWS JSON 1.1 shapes (target prefix, content type, errors, answers);
* ``upstream``: forwarding to moto and the layer's own calls to it;
* ``network``: the HTTP server and handler, latency, faults, connection resets, token
  expiry, the request log and the stats;
* ``quotas``: the categories, token buckets, per-pool group limits, GetProvisionedLimit;
* ``rules``: what Cognito checks and moto does not (validation, PoolSettings, schema,
  aliases, case-insensitive usernames, triggers and messages);
* ``index``: the in-memory ListUsers index (PoolIndex, filters, pages);
* ``synthetic``: pools that exist only in the layer, of millions of generated users
  (``--synthetic-pool POOL_ID=COUNT[:SEED]``, ``--synthetic-empty POOL_ID``), answered
  without moto (``--upstream`` may then be left out);
* ``core``: ``Layer``, which holds the parts and dispatches a call among them;
* ``cli``: the options and ``main``.

It speaks the AWS JSON 1.1 protocol (``X-Amz-Target: AWSCognitoIdentityProviderService.Op``)
and prints ``LISTENING 127.0.0.1:<port>`` on stdout once it accepts connections.
Standard library only.
"""

from .cli import main
from .core import Layer
from .index import FILTER_SYNTAX, SEARCHABLE, PoolIndex, parse_filter, user_value
from .network import parse_faults
from .protocol import AwsError, alias_exists, invalid
from .quotas import (CATEGORY_OF, GROUP_OPS, GROUP_OPS_PER_POOL_RATE, OTHER_CATEGORIES,
                     PROVISIONED, QUOTAS, TokenBucket)
from .rules import (NOT_WRITABLE, STANDARD_ATTRIBUTES, Plan, PoolSettings, attrs_of, is_true,
                    schema_from_create)
from .synthetic import SyntheticPool, SyntheticPools

__all__ = ["main", "Layer", "FILTER_SYNTAX", "SEARCHABLE", "PoolIndex", "parse_filter",
           "user_value", "parse_faults", "AwsError", "alias_exists", "invalid", "CATEGORY_OF",
           "GROUP_OPS", "GROUP_OPS_PER_POOL_RATE", "OTHER_CATEGORIES", "PROVISIONED", "QUOTAS",
           "TokenBucket", "NOT_WRITABLE", "STANDARD_ATTRIBUTES", "Plan", "PoolSettings",
           "attrs_of", "is_true", "schema_from_create", "SyntheticPool", "SyntheticPools"]
