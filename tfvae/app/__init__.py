"""The app: what runs on top of the library (`tfvae.models`, `latents`, `likelihoods`, `priors`,
`networks`, `evaluation`, `export`, ...), which never imports it (tests/test_import_rule.py).

- `cli`: the `tfvae` command;
- `train`: a training run from a config (`RunContext`: strategy, chief or not, where to write,
  decided once), and the final evaluation (`evaluate`) that `tfvae evaluate` and zoo/build.py call;
- `zoo`: load, list, publish and pack zoo entries (`archives`: their download and checks);
- `config`: run configs (Python files or dicts, `--set` overrides, old spellings);
- `multi_worker`: running one config on several processes (`tf.distribute`).

`tfvae.zoo`, `tfvae.train`, `tfvae.multi_worker` and `tfvae.config` stay attributes of the
package (`tfvae.zoo.load(name)`), loaded on first use.
"""
