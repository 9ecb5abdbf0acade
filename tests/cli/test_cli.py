import pytest

from conftest import REPO, run_ect
from ect.cli import build_parser
from ect.errors import ConfigError, StoreError


def test_help_lists_every_command():
    help_text = build_parser().format_help()
    for command in ("make-dataset", "train", "profile", "profile-run", "warmup", "validate", "aggregate", "publish",
                    "import-legacy", "export", "analyze", "check-regression", "compare", "mlflow-sync", "pools", "config"):
        assert command in help_text


@pytest.mark.parametrize("command, options", [
    ("train", ["ENVIRONMENT", "ARCHITECTURE", "-d DIR, --data DIR", "--experiment-name", "--experiment_name",
               "--profile", "--set KEY=VALUE", "--skip-corrupt", "--backend NAME"]),
    ("make-dataset", ["DIR", "--source", "--images", "--size", "--seed", "--classes", "--idx-dir", "--force"]),
    ("config", ["--profile", "--explain", "--set KEY=VALUE"]),
    ("profile", ["ENVIRONMENT", "-d DIR, --data DIR", "--architectures", "--backends", "--repetitions", "--experiment-name",
                 "--experiment_name", "--profile", "--set KEY=VALUE"]),
    ("profile-run", ["ENVIRONMENT", "ARCHITECTURE", "--repetition", "--run-id", "--experiment-name", "-d DIR",
                     "--backend NAME"]),
    ("warmup", ["ENVIRONMENT", "--minutes", "--profile", "--backend NAME"]),
    ("predict", ["ENVIRONMENT", "--architectures A,B", "--epochs N", "--processed FILE", "--backtest", "--json"]),
])
def test_each_command_documents_its_options(command, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text


def test_python_dash_m_ect_and_make_dataset(tmp_path):
    result = run_ect("make-dataset", "shapes", "--images", "10", "--size", "16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 10 images (5 circles, 5 squares)" in result.stdout
    assert len(list((tmp_path / "shapes" / "squares").glob("*.png"))) == 5
    again = run_ect("make-dataset", "shapes", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


def test_config_shows_values_and_their_origins(tmp_path):
    result = run_ect("config", "--profile", "demo", "--set", "BATCH_SIZE=8", cwd=REPO,
                     env={"ECT_SEED": "5"})
    assert result.returncode == 0, result.stderr
    assert "BATCH_SIZE = 8    # command line" in result.stdout
    assert "SEED = 5    # environment variable ECT_SEED" in result.stdout
    assert "IMAGE_SIZE = 32    # " + str(REPO / "config" / "profiles" / "demo.yaml") in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["train", "local", "tiny_cnn", "-d", "missing-folder"], ["DATASET_DIR", "missing-folder", "does not exist"]),
    (["train", "mars", "tiny_cnn", "--profile", "demo"], ["unknown environment 'mars'", "cloud, local"]),
    (["train", "local", "xception", "--profile", "demo"], ["xception needs images of at least 71x71", "IMAGE_SIZE is 32"]),
    (["train", "local", "vgg16", "--set", "INITIAL_EPOCHS=0"], ["command line: INITIAL_EPOCHS='0'", "integer >= 1"]),
    (["train", "local", "vgg16", "--profile", "nope"], ["unknown profile 'nope'", "demo"]),
])
def test_bad_input_fails_fast_with_a_message_naming_the_culprit(args, expected, tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    result = run_ect(*args, cwd=tmp_path, env={"ECT_HOME": str(REPO)})
    assert result.returncode == 2, result.stdout + result.stderr
    for fragment in expected:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_dataset_content_is_reported_by_train(tmp_path):
    (tmp_path / "d" / "only_class").mkdir(parents=True)
    result = run_ect("train", "local", "tiny_cnn", "--profile", "demo", "-d", "d", cwd=tmp_path,
                     env={"ECT_HOME": str(REPO)})
    assert result.returncode == 2
    assert "1 class sub-folders (only_class)" in result.stderr and "exactly two" in result.stderr


def test_unknown_architecture_is_rejected_by_the_parser(tmp_path):
    result = run_ect("train", "local", "alexnet", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'alexnet'" in result.stderr


def test_readme_documents_every_setting():
    from ect.config.settings import SECTIONS, Environment, keys_of

    readme = (REPO / "README.md").read_text()
    for cls in [*SECTIONS.values(), Environment]:
        for key in keys_of(cls):
            parts = key.split("_")
            spellings = [f"`{key}`"] + [f"`{'_'.join(parts[:i])}: {'_'.join(parts[i:])}`" for i in range(1, len(parts))]
            assert any(s in readme for s in spellings), f"{key} is not documented in README.md"


@pytest.mark.parametrize("raised, status, says", [
    (None, 0, None),
    ("quarantined", 1, None),
    (ConfigError("config/experiment.yaml: BATCH_SIZE=0: expected a positive integer"), 2, "error: config/experiment"),
    (StoreError("s3://bucket/ect: unreachable"), 3, "error: s3://bucket/ect: unreachable"),
    (RuntimeError("a bug"), 3, "internal error: RuntimeError: a bug (a bug in ect"),
])
def test_exit_status_says_what_happened(monkeypatch, capsys, raised, status, says):
    """0 all good, 1 items did not pass, 2 usage or configuration error, 3 internal error (README: Exit status)."""
    import ect.cli as cli

    def command(args):
        if raised == "quarantined":
            return 1
        if raised is not None:
            raise raised
        return 0

    monkeypatch.setattr(cli, "validate", command)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.prog.endswith(" validate"):
            action.set_defaults(func=command)
    assert cli.main(["validate"]) == status
    if says:
        assert says in capsys.readouterr().err
