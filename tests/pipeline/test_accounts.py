"""Signing keys come from an environment variable or an encrypted keystore, never from the
command line; a wrong one is one clear line."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from stakelearn.errors import InputError
from stakelearn.pipeline.chain.accounts import load_account


def test_key_from_the_environment(monkeypatch):
    account = Account.create()
    monkeypatch.setenv("SOME_KEY", account.key.hex())
    assert load_account("SOME_KEY").address == account.address


def test_missing_or_bad_key_is_one_line(monkeypatch):
    monkeypatch.delenv("SOME_KEY", raising=False)
    with pytest.raises(InputError, match="put the private key in the environment variable SOME_KEY"):
        load_account("SOME_KEY")
    monkeypatch.setenv("SOME_KEY", "not a key")
    with pytest.raises(InputError, match="is not a private key"):
        load_account("SOME_KEY")


def test_key_from_an_encrypted_keystore(monkeypatch, tmp_path):
    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "correct horse", kdf="pbkdf2", iterations=1_000)))
    monkeypatch.setenv("KEYSTORE_PASSWORD", "correct horse")
    assert load_account(keystore=keystore, password_env="KEYSTORE_PASSWORD").address == account.address
    monkeypatch.setenv("KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(InputError, match="cannot unlock it"):
        load_account(keystore=keystore, password_env="KEYSTORE_PASSWORD")
    monkeypatch.delenv("KEYSTORE_PASSWORD")
    with pytest.raises(InputError, match="needs its password"):
        load_account(keystore=keystore, password_env="KEYSTORE_PASSWORD")
