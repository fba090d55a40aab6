"""Run by tests/test_zoo_install.py with the python of a venv holding a non-editable install of
tfvae, from a folder outside the repository (this file is copied there first):

    python zoo_install_client.py OUT.json REPO NAME URL_NAME CASES.json

Loads NAME twice from the cache folder $TFVAE_HOME (the first load fetches from $TFVAE_ZOO_URL),
URL_NAME (an archive URL) twice, lists the zoo, then runs each failure case of CASES.json
({case: {"url": TFVAE_ZOO_URL, "source": name or archive URL}}) in a fresh $TFVAE_HOME through
`tfvae sample` (in this process) and `tfvae.zoo.load`, and writes what happened to OUT.json.
"""
import contextlib
import io
import json
import os
import sys


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names)


def run_cli(argv):
    """(status, stdout, stderr) of `tfvae ARGV`, or the exception's name if it escaped."""
    from tfvae.app import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except BaseException as e:  # (a traceback would be the bug under test)
            status = f"raised {type(e).__name__}: {e}"
    return status, out.getvalue(), err.getvalue()


def main(out_path, repo, name, url_source, cases_path):
    import numpy as np

    import tfvae
    from tfvae.app import zoo

    home = os.environ["TFVAE_HOME"]
    result = {"tfvae_file": tfvae.__file__, "prefix": sys.prefix,
              "repo_on_path": [p for p in sys.path if os.path.realpath(p or ".") == os.path.realpath(repo)],
              "zoo_dir": zoo.zoo_dir(), "cache_dir": zoo.cache_dir(),
              "config_file": zoo.config_file(name)}
    first, second = zoo.load(name), zoo.load(name)
    result["weights_equal"] = all(np.array_equal(a, b)
                                  for a, b in zip(first.get_weights(), second.get_weights()))
    result["sample_mean"] = np.asarray(first.sample(4, seed=zoo.CHECK_SEED)).mean(axis=1).tolist()
    result["metadata"] = zoo.metadata(name)
    result["cached_files"] = files_under(os.path.join(home, "zoo", name))
    zoo.load(url_source)
    result["url_folder"] = zoo.entry(url_source)
    result["list"] = run_cli(["zoo", "list"])

    failures = {}
    for case, spec in json.load(open(cases_path)).items():
        case_home = os.path.join(os.path.dirname(home), f"home-{case}")
        os.environ["TFVAE_HOME"] = case_home
        os.environ["TFVAE_ZOO_URL"] = spec["url"]
        report = {"cli": run_cli(["sample", spec["source"], "--out", os.path.join(case_home, "grid.png")])}
        try:
            zoo.load(spec["source"])
            report["load"] = "loaded"
        except zoo.ZooError as e:
            report["load"] = f"ZooError: {e}"
        except Exception as e:  # (any other exception is the bug under test)
            report["load"] = f"{type(e).__name__}: {e}"
        report["left"] = files_under(case_home) if os.path.isdir(case_home) else []
        failures[case] = report
    result["failures"] = failures
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
