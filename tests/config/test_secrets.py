"""Credentials in URLs are masked by parsing each URL's user-info, never by replacing a user name's letters."""

import pytest

from ect.config.secrets import MlflowSecrets, mask_url, url_userinfo


@pytest.mark.parametrize("url, userinfo", [
    ("https://alice:s3cret@mlflow.example.org/api", "alice:s3cret"),
    ("https://alice:pa/ss@mlflow.example.org", "alice:pa/ss"),        # "/" in the password
    ("https://alice:p@ss@mlflow.example.org/x", "alice:p@ss"),        # "@" in the password: the last "@" counts
    ("https://alice:a:b:c@host", "alice:a:b:c"),                      # ":" in the password
    ("s3://KEY:SECRET@bucket/prefix", "KEY:SECRET"),
    ("https://mlflow.example.org/users/x", None),
    ("file:///shared/ect", None),
    ("not a url", None),
])
def test_the_user_info_is_parsed_whole(url, userinfo):
    assert url_userinfo(url) == userinfo


@pytest.mark.parametrize("message, secret", [
    ("ConnectionError: https://alice:pa/ss@mlflow.example.org/api/2.0 refused", "pa/ss"),
    ("HTTPError 401 for url https://alice:p@ss@mlflow.example.org/api", "p@ss"),
    ("RUN_STORE='s3://KEY:SECRET@bucket/p': unreachable; retrying s3://KEY:SECRET@bucket/p", "SECRET"),
])
def test_every_url_in_a_message_is_masked(message, secret):
    masked = mask_url(message)
    assert secret not in masked and "***@" in masked
    assert masked.count("***@") == message.count("://") - message.count(":///")


def test_a_password_with_a_space_is_masked_with_the_configured_secrets():
    secrets = MlflowSecrets("https://alice:pa ss@mlflow.example.org", "alice", "pa ss")
    message = "could not reach https://alice:pa ss@mlflow.example.org/api (password pa ss rejected)"
    masked = mask_url(message, secrets)
    assert "pa ss" not in masked and "ss@" not in masked
    assert masked == "could not reach https://***@mlflow.example.org/api (password *** rejected)"


def test_a_short_user_name_is_not_masked_everywhere():
    secrets = MlflowSecrets("https://mlflow.example.org", "al", "correct horse battery")
    message = "alpha run failed for user al: 401 (https://al:correct horse battery@mlflow.example.org)"
    masked = mask_url(message, secrets)
    assert masked.startswith("alpha run failed for user al: 401")  # "al" left alone where it is not a credential
    assert "correct horse battery" not in masked


def test_what_tracking_json_stores_holds_no_credentials(tmp_path):
    from ect.tracking.mlflow_runs import _scrub

    secrets = MlflowSecrets("https://bob:x/y@z@mlflow.example.org", "bob", "x/y@z")
    stored = _scrub("MlflowException: API request to https://bob:x/y@z@mlflow.example.org/api failed", secrets)
    assert "x/y" not in stored and "y@z" not in stored and stored.endswith("https://***@mlflow.example.org/api failed")
