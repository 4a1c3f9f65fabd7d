"""A participant's signing key, from an environment variable or an encrypted keystore file;
never from the command line, where other users of the machine can read it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from stakelearn.errors import InputError

DEFAULT_KEY_ENV = "STAKELEARN_KEY"


def load_account(
    private_key_env: str = DEFAULT_KEY_ENV,
    keystore: Path | None = None,
    password_env: str = "STAKELEARN_KEYSTORE_PASSWORD",
) -> LocalAccount:
    """The key in the environment variable ``private_key_env``, or, given ``keystore``, the key
    in that encrypted JSON keystore (geth, foundry and eth_account write them), unlocked with
    the password in ``password_env``."""
    if keystore is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise InputError(f"--keystore needs its password in the environment variable {password_env}")
        try:
            return Account.from_key(Account.decrypt(json.loads(Path(keystore).read_text()), password))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{keystore}: not a readable keystore file ({error})") from None
        except ValueError as error:  # a wrong password, or a file that is not a keystore
            raise InputError(f"{keystore}: cannot unlock it with the password in {password_env} ({error})") from None
    key = os.environ.get(private_key_env)
    if not key:
        raise InputError(
            f"no key: put the private key in the environment variable {private_key_env} "
            "(never on the command line), or give --keystore"
        )
    try:
        return Account.from_key(key)
    except ValueError as error:
        raise InputError(f"the key in {private_key_env} is not a private key: {error}") from None
