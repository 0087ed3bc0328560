"""Passwords: production Argon2 parameters outside the test suite, and hashes that verify either way."""

from __future__ import annotations

import os
import subprocess
import sys

from argon2 import PasswordHasher


def test_production_parameters_unless_the_suite_asks_for_cheap_ones(store):
    env = {k: v for k, v in os.environ.items() if k != "LIBRA_CHEAP_PASSWORD_HASHING"}
    code = ("from libra import accounts; from traces.store import Store; import sys; s = Store(sys.argv[1]); "
            "accounts.add_user(s, 'prod', 'a long passphrase', 'viewer'); "
            "print(s.scalar(\"SELECT password_hash FROM users WHERE username = 'prod'\"))")
    out = subprocess.run([sys.executable, "-c", code, store.path], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    default = PasswordHasher()
    assert f"m={default.memory_cost},t={default.time_cost},p={default.parallelism}" in out
    from libra import accounts

    # this process hashes cheaply (the suite's setting); each kind of hash verifies the other's way
    assert os.environ.get("LIBRA_CHEAP_PASSWORD_HASHING") == "1"
    accounts.add_user(store, "cheap", "another passphrase", "viewer")
    assert accounts.authenticate(store, "prod", "a long passphrase") is not None
    assert accounts.authenticate(store, "cheap", "another passphrase") is not None
    assert accounts.authenticate(store, "prod", "wrong") is None
