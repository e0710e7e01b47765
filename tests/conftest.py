"""Shared test settings."""

from __future__ import annotations

import os

# Tests build small models, which step fastest on one thread on a 2-core
# machine; child processes inherit this through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
