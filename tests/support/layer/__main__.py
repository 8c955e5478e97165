"""``python -m layer`` (from tests/support): the same as running tests/support/aws_layer.py."""

from .cli import main

main()
