"""The shared exponential-family mechanism: log_prob, combine and KL written once for every family.

A family is stateless maths over tensors (parameters are dicts of tensors whose trailing
`event_ndims` axes are the event); Keras layers hold the weights and hand their outputs here.
"""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def event_axes(event_ndims):
    """The last `event_ndims` axes as negative indices (`tf.reduce_sum` over [] is the identity)."""
    return list(range(-event_ndims, 0))


def kl_divergence(q, p, z=None, analytic=True):
    """KL[q || p] = E_q[log q(z) - log p(z)], per batch element.

    With `analytic=True` and a closed form registered in TFP for the pair (e.g. Gaussian vs
    Gaussian: log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2), that closed form;
    otherwise the Monte Carlo estimate log q(z) - log p(z) at samples `z` drawn from q
    (reparameterized, so it is differentiable too; one value per sample).

    Args:
        q, p: `tfd.Distribution`s with the same event shape.
        z: samples of q, [*sample, *batch, *event]; needed unless the closed form is used.
        analytic: use the closed form when one exists.

    Returns:
        The KL, of shape [*batch] (closed form) or [*sample, *batch] (Monte Carlo).
    """
    if analytic:
        try:
            return tfd.kl_divergence(q, p)
        except NotImplementedError:
            pass
    if z is None:
        raise ValueError(f"No closed-form KL between {type(q).__name__} and {type(p).__name__} "
                         "(or analytic=False): pass samples z of q for the Monte Carlo estimate.")
    return q.log_prob(z) - p.log_prob(z)


class Family:
    """An exponential family p(x; eta) = h(x) exp(<T(x), eta> - A(eta)), unit by unit.

    Units are independent; an event is the trailing `event_ndims` axes, over which log-densities
    and KLs are summed (tfd.Independent(..., reinterpreted_batch_ndims=event_ndims)).

    Written once here: `log_prob` (the formula above), `combine` (the normalized product of
    densities of one family: natural parameters add, e.g. precision weighting for Gaussians,
    Sonderby et al. 2016, eq. 17-18), `kl` (TFP's registered closed form, else Monte Carlo),
    and the config (the constructor is the config: store every argument under its own name and
    list it in `_config_names`).

    A new family (say Categorical) is one file that subclasses `Family`, is registered with
    `@keras.saving.register_keras_serializable(package="tfvae")`, and implements:
      - `param_names`, `raw_size` (network outputs per unit) and `estimators` (its sample
        estimators, the first the default);
      - `params_from_raw(raw)`: raw [..., raw_size * n] (parameter blocks on the last axis)
        -> params;
      - `natural_params(params)` / `from_natural_params(natural)` (dicts, the same keys as
        `sufficient_statistics`), `log_normalizer(natural)` A, `log_base_measure(x)` log h,
        `sufficient_statistics(x)` T, all per unit (not summed);
      - `mean(params)`, `sample(params, seed, estimator, num_samples)`, `unit_distribution(params)`
        (the per-unit `tfd` object, so TFP's KL registry applies);
    plus its test (tests/test_families.py shows the checks: natural-parameter round trip,
    log_prob vs TFP vs numpy, grad A = E[T], combine vs the normalized product, KL).

    Example:

    ```python
    family = tfvae.families.Gaussian()
    q = family.params_from_raw(raw)             # raw [batch, 2 * 16] -> loc, scale [batch, 16]
    z = family.sample(q, seed=0)                # pathwise
    kl = family.kl(q, {"loc": tf.zeros_like(z), "scale": tf.ones_like(z)})   # [batch]
    merged = family.combine(q, prior_params)    # precision weighting
    ```
    """

    param_names = ()
    raw_size = 1
    estimators = ()
    _config_names = ()

    # -- implemented by each family ---------------------------------------------------------
    def params_from_raw(self, raw):
        raise NotImplementedError

    def natural_params(self, params):
        raise NotImplementedError

    def from_natural_params(self, natural):
        raise NotImplementedError

    def log_normalizer(self, natural):
        """A(eta) per unit."""
        raise NotImplementedError

    def log_base_measure(self, x):
        """log h(x) per unit."""
        raise NotImplementedError

    def sufficient_statistics(self, x):
        """T(x) per unit, a dict keyed like `natural_params`."""
        raise NotImplementedError

    def mean(self, params):
        """E[x] per unit."""
        raise NotImplementedError

    def sample(self, params, seed, estimator=None, num_samples=None):
        raise NotImplementedError

    def unit_distribution(self, params):
        """The `tfd` distribution of each unit (batch shape = the parameters' shape)."""
        raise NotImplementedError

    # -- written once -----------------------------------------------------------------------
    def unit_log_prob(self, params, x):
        """log p(x) per unit: <T(x), eta> - A(eta) + log h(x)."""
        params, x = self._as_tensors(params, x)
        natural = self.natural_params(params)
        stats = self.sufficient_statistics(x)
        inner = tf.add_n([stats[name] * natural[name] for name in natural])
        return inner - self.log_normalizer(natural) + self.log_base_measure(x)

    def log_prob(self, params, x, event_ndims=1):
        """sum over the event axes of <T(x), eta> - A(eta) + log h(x).

        Args:
            params: dict of tensors [*batch, *event].
            x: [*sample, *batch, *event] (broadcasting against the parameters).
            event_ndims: number of trailing event axes.

        Returns:
            log p(x), [*sample, *batch].
        """
        return tf.reduce_sum(self.unit_log_prob(params, x), axis=event_axes(event_ndims))

    def distribution(self, params, event_ndims=1):
        """tfd.Independent(unit distribution, reinterpreted_batch_ndims=event_ndims)."""
        return tfd.Independent(self.unit_distribution(params), reinterpreted_batch_ndims=event_ndims)

    def combine(self, *params):
        """The normalized product of densities of this family: their natural parameters add.

        prod_j h(x) exp(<T(x), eta_j> - A(eta_j)) is proportional to h(x)^k exp(<T(x), sum_j eta_j>);
        with a constant base measure h (Gaussian, Bernoulli, Categorical) the normalized product
        is the member with natural parameters sum_j eta_j. A family whose h is not constant
        overrides this.
        """
        naturals = [self.natural_params(p) for p in params]
        return self.from_natural_params({name: tf.add_n([n[name] for n in naturals])
                                         for name in naturals[0]})

    def kl(self, q_params, p_params, event_ndims=1, z=None, analytic=True):
        """KL[q || p] summed over the event axes: TFP's registered closed form when `analytic`
        (and one exists), else the Monte Carlo estimate log q(z) - log p(z) at samples z of q.

        Returns [*batch] (closed form) or [*sample, *batch] (Monte Carlo)."""
        return kl_divergence(self.distribution(q_params, event_ndims),
                             self.distribution(p_params, event_ndims), z, analytic)

    @staticmethod
    def _as_tensors(params, x):
        """Tensors, x in the parameters' dtype (as TFP's log_prob converts a numpy x)."""
        params = {k: tf.convert_to_tensor(v) for k, v in params.items()}
        return params, tf.convert_to_tensor(x, dtype=next(iter(params.values())).dtype)

    def _check_estimator(self, estimator):
        estimator = estimator or self.estimators[0]
        if estimator not in self.estimators:
            raise ValueError(f"{type(self).__name__}: estimator must be one of {self.estimators}. "
                             f"Received: estimator={estimator!r}")
        return estimator

    def get_config(self):
        return {name: getattr(self, name) for name in self._config_names}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
