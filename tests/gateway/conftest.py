"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A fresh gateway signing key."""
    return Ed25519PrivateKey.generate()
