"""Secrets in every error path: the masker on a table of inputs, configured URLs that do not parse refused (masked),
and everything a profiled run, a refused store URL and a failed tracking call leave behind holds no secret."""

import json
import logging
from dataclasses import replace
from urllib.parse import quote, quote_plus

import pytest

from conftest import REPO, free_ports, log_lines, run_ect
from ect.config import load_config
from ect.config.secrets import MlflowSecrets
from ect.errors import ConfigError
from ect.masking import mask, masked_url, url_problem, url_secrets

# Secrets of every kind: ASCII, non-ASCII, and with the characters a URL's user-info must encode.
SECRETS = ["Plain7Secret9xq", "pässwörd✓-Ünï", "sl/ash7Secret", "at@sign7Secret", "co:lon sp ace7Secret"]


def forms(secret: str) -> set[str]:
    """A secret as it may be printed or stored: raw, percent-encoded (both ways) and JSON-escaped."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


@pytest.mark.parametrize("text, expected", [
    # The user-info of a URL, parsed whole: "/", "@" and ":" in the password.
    ("s3://KEYID:SECRET@bucket/ect", "s3://***@bucket/ect"),
    ("failed: https://alice:pa/ss@mlflow.example.org/api refused", "failed: https://***@mlflow.example.org/api refused"),
    ("https://alice:p@ss@mlflow.example.org/x", "https://***@mlflow.example.org/x"),
    ("https://alice:a:b:c@host and http://bob:d@other", "https://***@host and http://***@other"),
    ("RUN_STORE='s3://K:S@b/p'; retrying s3://K:S@b/p", "RUN_STORE='s3://***@b/p'; retrying s3://***@b/p"),
    # Secret query and fragment parameters, by name (case-insensitive, part of the name), in URLs and bare paths.
    ("https://h/x?token=abc&page=2", "https://h/x?token=***&page=2"),
    ("https://h/x?experiment_name=e&X-Amz-Signature=f00&X-Amz-Credential=AK%2F1", "https://h/x?experiment_name=e&X-Amz-Signature=***&X-Amz-Credential=***"),
    ("https://h/cb#access_token=abc&state=1", "https://h/cb#access_token=***&state=1"),
    ("url: /api/2.0/runs?api_key=k1;sig=s2 (Caused by X)", "url: /api/2.0/runs?api_key=***;sig=*** (Caused by X)"),
    ("https://h/?Password=x&PWD=y&secret=z&auth=w&apikey=v", "https://h/?Password=***&PWD=***&secret=***&auth=***&apikey=***"),
    ("AWS_SECRET_ACCESS_KEY=abc MLFLOW_TRACKING_TOKEN=def", "AWS_SECRET_ACCESS_KEY=*** MLFLOW_TRACKING_TOKEN=***"),
    # What holds no credential stays as it is.
    ("https://mlflow.example.org/users/x?page=2&experiment_name=e", "https://mlflow.example.org/users/x?page=2&experiment_name=e"),
    ("file:///shared/ect and /data/metrics", "file:///shared/ect and /data/metrics"),
    ("IMAGE_SIZE = 32, user alice", "IMAGE_SIZE = 32, user alice"),
])
def test_urls_and_secret_parameters_are_masked_by_their_structure(text, expected):
    assert mask(text) == expected


@pytest.mark.parametrize("secret", SECRETS)
def test_a_configured_secret_is_masked_wherever_and_however_it_appears(secret):
    text = (f"raw {secret} | encoded {quote(secret, safe='')} | plus {quote_plus(secret)} | "
            f"json {json.dumps(secret)} | end")
    masked = mask(text, [secret])
    assert not any(form in masked for form in forms(secret)), masked
    assert masked.startswith("raw *** | encoded *** | plus *** | json ") and masked.endswith(" | end")


def test_the_environment_s_secrets_are_masked_and_a_user_name_alone_is_not(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-K7MDENG")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://al:hunter-42@mlflow:5000")
    masked = mask("botocore: wJalrXUtnFEMI-K7MDENG rejected; 401 for user al, password hunter-42")
    assert masked == "botocore: *** rejected; 401 for user al, password ***"
    assert mask("xy", ["xy"]) == "xy"  # shorter than MIN_SECRET_LENGTH: it would hide those letters everywhere


def test_the_mlflow_secrets_mask_password_user_info_and_url_tokens():
    secrets = MlflowSecrets("https://bob:x%2Fy@mlflow.example.org/?token=t0k3n", "bob", "pa ss word")
    message = "https://bob:x%2Fy@mlflow.example.org/?token=t0k3n/api failed; bob:pa ss word; x/y; t0k3n"
    assert mask(message, secrets.secret_values()) == "https://***@mlflow.example.org/?token=*** failed; ***; ***; ***"


@pytest.mark.parametrize("url, shown, problem", [
    ("s3://KEYID:SECRET@bucket/ect", "s3://***@bucket/ect", None),
    ("s3://KEYID:pa/ss@bucket/ect", "s3://***@bucket/ect", "host or port does not parse"),
    ("s3://KEYID:12/ss@bucket/ect", "s3://***@bucket/ect", "an '@' follows the host"),
    ("s3://KEYID:p@ss@bucket/ect", "s3://***@bucket/ect", "an '@' follows the host"),
    ("https://u:p ss@h/x?token=a b&x=1", "https://***@h/x?token=***&x=1", "space"),
    ("https://u:pä@h", "https://***@h", "non-ASCII"),
    ("https://u:100%sure@h", "https://***@h", "'%'"),
    ("https://u:p%C3%A4%2F@h:8080/x?sig=s", "https://***@h:8080/x?sig=***", None),
    ("http://h:99999", "http://h:99999", "port"),
    ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock", None),
    ("ssh://deploy@gpu-host", "ssh://***@gpu-host", None),
    ("/shared/ect store", "/shared/ect store", None),  # a path, not a URL
])
def test_a_configured_url_is_shown_masked_and_refused_when_it_does_not_parse(url, shown, problem):
    assert masked_url(url) == shown
    found = url_problem(url)
    assert (found is None) if problem is None else (problem in found), found
    assert not any(secret in (found or "") for secret in url_secrets(url))


@pytest.mark.parametrize("key, secret", [(key, s) for key in ("RUN_STORE", "PROMETHEUS_PUSHGATEWAY") for s in SECRETS])
def test_a_refused_url_setting_never_shows_its_secret(key, secret):
    refused = [f"http://KEYID:{secret}@host:9091/ect", f"http://KEYID:{quote(secret, safe='')}@host:9091/ect"]
    if key == "PROMETHEUS_PUSHGATEWAY":  # a Pushgateway URL has no query string
        refused.append(f"http://host:9091/ect?token={quote(secret, safe='')}")
    for url in refused:
        with pytest.raises(ConfigError) as error:
            load_config(REPO, overrides={key: url}, env={})
        message = str(error.value)
        assert f"{key}='http://" in message and not any(form in message for form in forms(secret)), message


def test_a_docker_url_or_an_mlflow_url_that_does_not_parse_is_refused_masked(project):
    (project / "config" / "environments.yaml").write_text(
        "local:\n  RUNNER: docker\n  DOCKER_URL: tcp://me:sl/ash7Secret@gpu-host:2376\n")
    with pytest.raises(ConfigError, match=r"DOCKER_URL='tcp://\*\*\*@gpu-host:2376'.*percent-encode") as error:
        load_config(project, env={})
    assert "ash7Secret" not in str(error.value)
    secrets = MlflowSecrets("https://ann:at@sign7Secret@mlflow:5000", "ann", None, "environment",
                            "environment variable MLFLOW_TRACKING_URI")
    with pytest.raises(ConfigError, match=r"MLFLOW_TRACKING_URI: the MLflow tracking URL 'https://\*\*\*@mlflow:5000' "
                                          r"cannot be used: an '@' follows the host.*%40") as error:
        secrets.require_url()
    assert "sign7Secret" not in str(error.value)


def test_a_secrets_file_that_is_not_yaml_is_named_without_quoting_its_lines(tmp_path):
    from ect.config import load_secrets

    (tmp_path / "secrets.yaml").write_text("MLFLOW:\n  PASSWORD: p: Sekr1t-pw\n")
    with pytest.raises(ConfigError, match="secrets.yaml: not a valid secrets file .at line 2, column 14.") as error:
        load_secrets(tmp_path, env={})
    assert "Sekr1t" not in str(error.value)


def test_publish_json_and_the_store_s_errors_hold_the_masked_store_url(tmp_path):
    from ect.raw.layout import PUBLISH_FILE, RunKey
    from ect.runs.publish import publish_run
    from ect.store import RunStore
    from raw_runs import write_valid_run

    key = RunKey("local", "vgg16", "n1-rep00")
    folder = write_valid_run(key.folder(tmp_path / "scratch"))
    (tmp_path / "a-file").write_text("the store's disk is gone")
    store = RunStore(f"file://{tmp_path}/a-file/store?token={quote(SECRETS[1], safe='')}")
    with log_lines() as lines:
        assert publish_run(store, folder, key) is False
    record = (folder / PUBLISH_FILE).read_text()
    assert "?token=***" in json.loads(record)["store"] and "not a directory" in json.loads(record)["error"].lower()
    assert not any(form in record + "\n".join(lines) for form in forms(SECRETS[1]))


def test_a_pushgateway_that_is_down_is_named_masked(caplog):
    from ect.tracking.prometheus import push_verdicts

    gateway = f"http://127.0.0.1:{free_ports(1)[0]}/?token={SECRETS[0]}"
    result = {"environment": "local", "latest_campaign": "n1",
              "architectures": {"vgg16": {"status": "no baseline", "relative_change": None}}}
    with caplog.at_level(logging.WARNING, logger="ect"):
        assert push_verdicts(gateway, result) is False
    assert "?token=***" in caplog.text and SECRETS[0] not in caplog.text


def test_the_cli_masks_every_error_it_prints(monkeypatch, capsys):
    from ect import cli

    def fails(args):
        raise RuntimeError(f"client said: https://ann:{SECRETS[2]}@mlflow:5000/api?token={quote(SECRETS[3])} refused")

    monkeypatch.setitem(cli.COMMANDS, "pools", replace(cli.COMMANDS["pools"], run=fails))
    assert cli.main(["pools"]) == 3
    printed = capsys.readouterr()
    assert "https://***@mlflow:5000/api?token=*** refused" in printed.err and "Traceback" in printed.err
    assert not any(form in printed.out + printed.err for s in SECRETS[2:4] for form in forms(s))


def test_credentials_are_registered_with_airflow_s_secrets_masker():
    from airflow.sdk._shared.secrets_masker import redact

    from ect.runners.credentials import mask_in_task_logs

    values = {"MLFLOW_TRACKING_URI": f"http://ann:{quote(SECRETS[4], safe='')}@mlflow:5000",
              "MLFLOW_TRACKING_PASSWORD": SECRETS[1], "AWS_SECRET_ACCESS_KEY": SECRETS[0]}
    assert mask_in_task_logs(values) is values
    for secret in (SECRETS[4], SECRETS[1], SECRETS[0]):
        for form in forms(secret):
            assert form not in redact(f"the task printed {form} here"), form


# Everything that a profiled run with a failed tracking call, later syncs and refused URLs leave behind.

def _tracking_env(port: int, rotation: int) -> dict:
    """MLflow's URL with one secret as the password of its user-info and three in its query string, a fifth as
    MLFLOW_TRACKING_PASSWORD; each rotation moves every secret to the next place."""
    s = SECRETS[rotation:] + SECRETS[:rotation]
    query = f"token={quote(s[2], safe='')}&X-Amz-Signature={quote(s[3], safe='')}&api_key={quote(s[4], safe='')}"
    return {"MLFLOW_TRACKING_URI": f"http://ann:{quote(s[0], safe='')}@127.0.0.1:{port}/?{query}",
            "MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": s[1]}


def test_no_secret_is_left_in_any_output_file_or_log(synthetic_dataset, tmp_path):
    port = free_ports(1)[0]  # nothing listens: every tracking call fails
    dirs = {"METRICS_DIR": tmp_path / "metrics", "MODELS_DIR": tmp_path / "models", "OUTPUT_DIR": tmp_path / "out"}
    env = {"ECT_HOME": str(REPO), "ECT_SECRETS_FILE": str(tmp_path / "no-secrets.yaml"),
           **{f"ECT_{key}": str(folder) for key, folder in dirs.items()}}
    results = []

    profiled = run_ect("profile", "local", "--profile", "demo", "-d", str(synthetic_dataset), "--architectures",
                       "tiny_cnn", "--experiment-name", "ect-masking", "--set", "MLFLOW_ENABLED=true", cwd=tmp_path,
                       env={**env, **_tracking_env(port, 0)}, timeout=900)
    results.append(profiled)
    assert profiled.returncode == 0, profiled.stdout + profiled.stderr
    [tracking] = list(dirs["METRICS_DIR"].glob("raw/local/tiny_cnn/*/tracking.json"))
    assert json.loads(tracking.read_text())["synced"] is False and "not synced" in profiled.stdout
    for rotation in range(1, len(SECRETS)):  # every secret in the user-info, the password and the query string
        synced = run_ect("mlflow-sync", cwd=tmp_path, env={**env, **_tracking_env(port, rotation)})
        results.append(synced)
        assert synced.returncode == 1 and "not synced" in synced.stdout, synced.stdout + synced.stderr

    for secret in SECRETS:
        store = f"s3://KEYID:{secret}@bucket/ect"
        for refused in (run_ect("config", cwd=tmp_path, env={**env, "ECT_RUN_STORE": store}),
                        run_ect("config", "--set", f"RUN_STORE=s3://KEYID:{quote(secret, safe='')}@bucket/ect",
                                cwd=tmp_path, env=env)):
            results.append(refused)
            assert refused.returncode == 2 and "RUN_STORE='s3://***@bucket/ect'" in refused.stderr, refused.stderr
        shown = run_ect("config", "--set", f"RUN_STORE=s3://bucket/ect?token={quote(secret, safe='')}",
                        cwd=tmp_path, env=env)
        results.append(shown)
        assert shown.returncode == 0 and "RUN_STORE = 's3://bucket/ect?token=***'" in shown.stdout, shown.stderr
        unencoded = run_ect("mlflow-sync", cwd=tmp_path, env={**env, "MLFLOW_TRACKING_URI":
                                                              f"http://ann:{secret}@127.0.0.1:{port}/"})
        results.append(unencoded)
        if url_problem(f"http://ann:{secret}@127.0.0.1:{port}/"):
            assert unencoded.returncode == 2 and "percent-encode" in unencoded.stderr, unencoded.stderr
        else:  # a password that needs no encoding: the call is made, and fails
            assert unencoded.returncode == 1 and "not synced" in unencoded.stdout, unencoded.stdout

    files = [path for folder in dirs.values() for path in folder.rglob("*") if path.is_file()]
    assert len(files) > 5 and any(path.name == "manifest.json" for path in files)
    for secret in SECRETS:
        for form in forms(secret):
            for result in results:
                assert form not in result.stdout + result.stderr, (form, result.args, result.stdout + result.stderr)
            for path in files:
                assert form.encode() not in path.read_bytes() and form not in str(path), (form, path)
