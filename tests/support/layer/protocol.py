"""The AWS JSON 1.1 protocol as the layer speaks it: the target header's prefix, the content
type, errors in AWS's shape (``AwsError`` and its common kinds) and a 200 answer of a JSON
document. Every other module raises and answers through these."""

import json
import uuid

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TOKEN_KEYS = ("PaginationToken", "NextToken")


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


def answer_headers():
    """The headers of an answer the layer gives itself (a fresh request id)."""
    return [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]


def json_answer(doc):
    """(status, headers, body) of a 200 answer holding `doc` (a dict, or JSON text already)."""
    body = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
    return 200, answer_headers(), body
