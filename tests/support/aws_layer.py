#!/usr/bin/env python3
"""A strict, AWS-like HTTP layer in front of a moto server, for tests and benchmarks.

This script runs the package beside it, ``layer/`` (one module per concern; its docstring
describes what the layer does and every option): ``python tests/support/aws_layer.py
--upstream URL [options]`` prints ``LISTENING 127.0.0.1:<port>`` and serves until
interrupted. Imported (``import aws_layer``, or loaded by path as build/bench.py does), it
offers the package's names (QUOTAS, PoolSettings, PoolIndex, ...) as the single-file layer
did. Standard library only.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from layer import *  # noqa: E402,F401,F403 - the names importers of this script use
from layer import main  # noqa: E402

if __name__ == "__main__":
    main()
