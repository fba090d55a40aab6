"""Mutation measurement: does the test suite catch one-line maths mistakes?

Each mistake below replaces one exact line fragment of the library with a wrong one. For each
mistake (and each repetition), the repository is copied to a scratch directory, the fragment is
replaced there, and the mistake's test files are run in a fresh process with PYTHONPATH pointing
at the copy. A mistake is caught when a test fails (or errors) that passes on the unmodified
copy. The result is a markdown table: mistake, file, caught (runs caught / runs), by which tests.

Not collected by pytest (not a test_*.py file); not part of the default run. From the repository:

    nice -n 10 python tests/mutations.py                       # every mistake, once
    nice -n 10 python tests/mutations.py --repeat 5 --only issue   # the issue-22 cases, 5 times
    nice -n 10 python tests/mutations.py --commit HEAD         # a commit rather than the working tree
    python tests/mutations.py --list

A mistake whose original fragment is not found exactly once makes the script stop with an error
before anything runs, so the list cannot go stale silently. Exit status: 0 when every mistake
was caught in every run, 1 otherwise, 2 for a stale list or a failing baseline.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXACT = "tests/test_maths_exact.py"


class Mistake:
    def __init__(self, name, path, old, new, tests, issue=False):
        self.name, self.path, self.old, self.new = name, path, old, new
        self.tests = [EXACT] + list(tests)
        self.issue = issue  # one of the cases named in issue 22


MISTAKES = [
    # -- objectives -------------------------------------------------------------------------------
    Mistake("IWAE bound without - log k (k > 1)", "tfvae/objectives.py",
            "return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(k)",
            "return tf.reduce_logsumexp(values, axis=axis)",
            ["tests/test_vae.py"], issue=True),
    Mistake("IWAE bound with log(k + 1) for log k", "tfvae/objectives.py",
            "return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(k)",
            "return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(k + 1.0)",
            ["tests/test_vae.py"], issue=True),
    Mistake("IWAE training objective ignores beta (log_weight for the tempered weights)",
            "tfvae/models/base.py",
            "objective = objectives.iwae_bound(log_likelihood + rate_weight * log_prior_ratio)",
            "objective = objectives.iwae_bound(log_weight)",
            ["tests/test_vae.py"]),
    Mistake("log_prob: - log(k + 1) for - log k", "tfvae/models/base.py",
            "return total - math.log(num_samples)",
            "return total - math.log(num_samples + 1)",
            ["tests/test_vae.py", "tests/test_evaluation.py"]),
    Mistake("ELBO metric with 0.99 * rate", "tfvae/models/base.py",
            "elbo=tf.reduce_mean(log_likelihood - rate, axis=0),",
            "elbo=tf.reduce_mean(log_likelihood - 0.99 * rate, axis=0),",
            ["tests/test_vae.py"]),
    Mistake("one-layer log-weight with + log q - log p", "tfvae/models/base.py",
            "log_weight=log_likelihood - log_ratio,",
            "log_weight=log_likelihood + log_ratio,",
            ["tests/test_vae.py"]),
    Mistake("free bits floor the units above the floor", "tfvae/objectives.py",
            "floored = tf.where(average > free_bits, rate_per_unit,",
            "floored = tf.where(average < free_bits, rate_per_unit,",
            ["tests/test_vae.py"]),
    # -- KL divergences ---------------------------------------------------------------------------
    Mistake("Monte Carlo KL fallback times 1.01", "tfvae/families/base.py",
            "return q.log_prob(z) - p.log_prob(z)",
            "return 1.01 * (q.log_prob(z) - p.log_prob(z))",
            ["tests/test_families.py", "tests/test_distributions.py", "tests/test_ladder.py"], issue=True),
    Mistake("ladder/hierarchical layer log-ratio with q and p swapped", "tfvae/models/ladder.py",
            "unit_ratio = latent.unit_log_ratio(q_params, p_params, point, training)",
            "unit_ratio = latent.unit_log_ratio(p_params, q_params, point, training)",
            ["tests/test_ladder.py"]),
    # -- exponential families (tfvae/families) ---------------------------------------------------
    Mistake("precision weighting: scale 1/precision for 1/sqrt(precision)", "tfvae/families/gaussian.py",
            '"scale": tf.math.rsqrt(precision)}',
            '"scale": 1.0 / precision}',
            ["tests/test_families.py", "tests/test_ladder.py"]),
    Mistake("combine averages the natural parameters instead of adding them", "tfvae/families/base.py",
            "return self.from_natural_params({name: tf.add_n([n[name] for n in naturals])",
            "return self.from_natural_params({name: tf.add_n([n[name] for n in naturals]) / len(naturals)",
            ["tests/test_families.py", "tests/test_ladder.py"]),
    Mistake("Gaussian natural parameter -precision for -precision / 2", "tfvae/families/gaussian.py",
            '"neg_half_precision": -0.5 * precision}',
            '"neg_half_precision": -precision}',
            ["tests/test_families.py", "tests/test_ladder.py"]),
    Mistake("Gaussian log-normalizer eta_1^2 / (2 eta_2) for eta_1^2 / (4 eta_2)", "tfvae/families/gaussian.py",
            "return -tf.square(eta_1) / (4.0 * eta_2) - 0.5 * tf.math.log(-2.0 * eta_2)",
            "return -tf.square(eta_1) / (2.0 * eta_2) - 0.5 * tf.math.log(-2.0 * eta_2)",
            ["tests/test_families.py"]),
    Mistake("Bernoulli natural parameter probs for logits", "tfvae/families/bernoulli.py",
            'return {"logits": params["logits"]}',
            'return {"logits": params["probs"]}',
            ["tests/test_families.py", "tests/test_distributions.py", "tests/test_ladder.py"]),
    # -- likelihoods and densities ----------------------------------------------------------------
    # log p(x) = x l - A(l) + log h: the generic Family.unit_log_prob with A = softplus (Bernoulli)
    Mistake("Bernoulli log-likelihood with softplus(-l) for softplus(l)", "tfvae/families/bernoulli.py",
            'return tf.nn.softplus(natural["logits"])',
            'return tf.nn.softplus(-natural["logits"])',
            ["tests/test_families.py", "tests/test_distributions.py"]),
    Mistake("Gaussian base measure with log(pi) for log(2 pi)", "tfvae/families/gaussian.py",
            "_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)",
            "_LOG_SQRT_2PI = 0.5 * math.log(math.pi)",
            ["tests/test_evaluation.py", "tests/test_distributions.py"]),
    Mistake("mixture prior with raw logits for log-softmax weights", "tfvae/priors.py",
            'log_p = tf.reduce_logsumexp(log_components + tf.nn.log_softmax(params["logits"]), axis=-1)',
            'log_p = tf.reduce_logsumexp(log_components + params["logits"], axis=-1)',
            ["tests/test_priors.py"]),
    Mistake("tied Gaussian harmonium log-normalizer |eta|^2 for |eta|^2 / 2", "tfvae/models/harmonium.py",
            "return 0.5 * tf.reduce_sum(tf.square(eta), axis=-1)",
            "return tf.reduce_sum(tf.square(eta), axis=-1)",
            ["tests/test_harmonium.py"]),
    # -- gradient estimators ----------------------------------------------------------------------
    Mistake("straight-through gradient doubled", "tfvae/estimators.py",
            "return hard + (probs - tf.stop_gradient(probs))",
            "return hard + 2.0 * (probs - tf.stop_gradient(probs))",
            ["tests/test_harmonium.py", "tests/test_ladder.py"], issue=True),
    Mistake("straight-through gradient through the logits (d b / d logit = 1)", "tfvae/estimators.py",
            "return hard + (probs - tf.stop_gradient(probs))",
            "return hard + ((tf.math.log(probs) - tf.math.log1p(-probs))"
            " - tf.stop_gradient(tf.math.log(probs) - tf.math.log1p(-probs)))",
            ["tests/test_harmonium.py", "tests/test_ladder.py"], issue=True),
    Mistake("pathwise sample with sqrt(scale) for scale", "tfvae/estimators.py",
            "return loc + scale * eps",
            "return loc + tf.sqrt(scale) * eps",
            ["tests/test_distributions.py"]),
    Mistake("score-function surrogate doubled", "tfvae/estimators.py",
            "return advantage * (log_q - tf.stop_gradient(log_q))",
            "return 2.0 * advantage * (log_q - tf.stop_gradient(log_q))",
            ["tests/test_harmonium.py"]),
    Mistake("relaxed (logistic) log-density with softplus once", "tfvae/estimators.py",
            "return tf.math.log(temperature) + a - 2.0 * tf.nn.softplus(a)",
            "return tf.math.log(temperature) + a - tf.nn.softplus(a)",
            ["tests/test_harmonium.py"]),
    # -- evaluation -------------------------------------------------------------------------------
    Mistake("ELBO surgery: log(N - 1) for log N in the aggregate posterior", "tfvae/evaluation.py",
            "log_q_marginal = _log_mixture_density(posterior_layer, params, z) - math.log(n)",
            "log_q_marginal = _log_mixture_density(posterior_layer, params, z) - math.log(n - 1)",
            ["tests/test_evaluation.py"], issue=True),
    Mistake("ELBO surgery: average KL summed over examples", "tfvae/evaluation.py",
            "avg_kl = None if avg_kl is None else float(tf.reduce_mean(avg_kl))",
            "avg_kl = None if avg_kl is None else float(tf.reduce_sum(avg_kl))",
            ["tests/test_evaluation.py"]),
    Mistake("standard error with ddof=0", "tfvae/evaluation.py",
            "return float(np.std(values, ddof=1) / math.sqrt(len(values)))",
            "return float(np.std(values, ddof=0) / math.sqrt(len(values)))",
            ["tests/test_evaluation.py"]),
    # -- the per-layer accumulator (issue 30) -----------------------------------------------------
    Mistake("score-function learning signal without the rates that depend on a draw",
            "tfvae/models/base.py",
            "            if dependent:\n",
            "            if False:\n",
            ["tests/test_layer_terms.py"]),
    Mistake("score-function learning signal with every rate, closed forms included",
            "tfvae/models/base.py",
            "if layer.depends_on_draws]",
            "]",
            ["tests/test_layer_terms.py"]),
]


def check_fragments(mistakes, root):
    """Every original fragment occurs exactly once in its file; raises otherwise."""
    problems = []
    for m in mistakes:
        text = open(os.path.join(root, m.path)).read()
        count = text.count(m.old)
        if count != 1:
            problems.append(f"{m.name!r}: {m.path} contains the original fragment {count} times "
                            f"(need exactly 1): {m.old!r}")
        for test in m.tests:
            if not os.path.exists(os.path.join(root, test)):
                problems.append(f"{m.name!r}: no test file {test}")
    if problems:
        raise SystemExit("Stale mutation list:\n  " + "\n  ".join(problems))


def scratch_copy(root, commit=None):
    """A copy of the repository without .git, saved models and caches: of the working tree, or
    of `commit` (git archive)."""
    target = tempfile.mkdtemp(prefix="tfvae-mutation-")
    if commit:
        archive = subprocess.run(["git", "-C", root, "archive", commit, "--", ".", ":!saved_models"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
        return target
    ignore = shutil.ignore_patterns(".git", "saved_models", "__pycache__", ".pytest_cache", "*.pyc")
    for name in os.listdir(root):
        source = os.path.join(root, name)
        if name in (".git", "saved_models", ".pytest_cache"):
            continue
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, name), ignore=ignore)
        else:
            shutil.copy2(source, os.path.join(target, name))
    return target


def run_tests(copy, tests, timeout):
    """Runs pytest on `tests` in `copy` (a fresh process); returns (status, failed node ids)."""
    env = dict(os.environ, PYTHONPATH=copy, PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
               "--no-header", "-o", "addopts=-m 'not slow'"] + tests
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", set()
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE))
    return result.returncode, failed


def run_mistake(mistake, root, timeout, commit=None):
    copy = scratch_copy(root, commit)
    try:
        path = os.path.join(copy, mistake.path)
        text = open(path).read()
        assert text.count(mistake.old) == 1, mistake.name
        with open(path, "w") as f:
            f.write(text.replace(mistake.old, mistake.new))
        return run_tests(copy, mistake.tests, timeout)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def short(node):
    """tests/test_x.py::test_name[param] -> test_x::test_name[param]"""
    path, _, name = node.partition("::")
    return f"{os.path.splitext(os.path.basename(path))[0]}::{name}"


def catchers_text(catchers, repeat):
    """test_x::test_a (3 cases), test_y::test_b (2/5 runs): failing tests grouped by function."""
    groups = {}
    for node, runs in catchers.items():
        function = short(node).split("[")[0]
        cases, most = groups.get(function, (0, 0))
        groups[function] = (cases + 1, max(most, runs))
    return ", ".join(f"{function}" + (f" ({cases} cases)" if cases > 1 else "")
                     + (f" ({runs}/{repeat} runs)" if runs != repeat else "")
                     for function, (cases, runs) in sorted(groups.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mistake, each in a fresh process")
    parser.add_argument("--only", default="",
                        help="'issue' (the issue-22 cases), or comma-separated numbers from --list")
    parser.add_argument("--tests", default="", help="comma-separated test files instead of each mistake's own")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run on the unmodified copy")
    parser.add_argument("--commit", help="measure this commit (git archive) instead of the working tree")
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--list", action="store_true", help="list the mistakes and exit")
    args = parser.parse_args(argv)

    if args.commit:
        source = scratch_copy(ROOT, args.commit)
        try:
            check_fragments(MISTAKES, source)
        finally:
            shutil.rmtree(source, ignore_errors=True)
    else:
        check_fragments(MISTAKES, ROOT)  # the whole list, whatever is selected
    numbered = list(enumerate(MISTAKES, 1))
    if args.list:
        for i, m in numbered:
            print(f"{i:2d}. {m.name} ({m.path}){' [issue 22]' if m.issue else ''}: {', '.join(m.tests)}")
        return 0
    if args.only == "issue":
        numbered = [(i, m) for i, m in numbered if m.issue]
    elif args.only:
        wanted = {int(n) for n in args.only.split(",")}
        numbered = [(i, m) for i, m in numbered if i in wanted]
    if args.tests:
        for _, m in numbered:
            m.tests = args.tests.split(",")

    baseline_failures = set()
    if not args.no_baseline:
        tests = sorted({t for _, m in numbered for t in m.tests})
        copy = scratch_copy(ROOT, args.commit)
        try:
            start = time.time()
            status, baseline_failures = run_tests(copy, tests, args.timeout)
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        print(f"baseline ({', '.join(tests)}): status {status}, {time.time() - start:.0f} s, "
              f"failing: {sorted(baseline_failures) or 'none'}", file=sys.stderr, flush=True)
        if status not in (0, 1):
            print("The unmodified copy does not run its tests; stopping.", file=sys.stderr)
            return 2

    rows, all_caught = [], True
    for i, m in numbered:
        caught_runs, catchers = 0, {}
        for r in range(args.repeat):
            start = time.time()
            status, failed = run_mistake(m, ROOT, args.timeout, args.commit)
            new = failed - baseline_failures
            caught = bool(new) or status not in (0, 1)
            caught_runs += caught
            for node in new:
                catchers[node] = catchers.get(node, 0) + 1
            print(f"[{i}] {m.name}, run {r + 1}/{args.repeat}: {'caught' if caught else 'MISSED'} "
                  f"(status {status}, {len(new)} new failures, {time.time() - start:.0f} s)",
                  file=sys.stderr, flush=True)
        all_caught &= caught_runs == args.repeat
        by = catchers_text(catchers, args.repeat)
        if not catchers and caught_runs:
            by = "(pytest did not run: error or timeout)"
        verdict = ("yes" if caught_runs == args.repeat else "partly" if caught_runs else "NO")
        rows.append(f"| {i} | {m.name}{' (issue 22)' if m.issue else ''} | {m.path} | "
                    f"{verdict} ({caught_runs}/{args.repeat}) | {by or '-'} |")

    table = "\n".join(["| # | mistake | file | caught | by |", "|---|---|---|---|---|"] + rows)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0 if all_caught else 1


if __name__ == "__main__":
    sys.exit(main())
