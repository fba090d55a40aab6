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


FAMILIES = {}  # name -> Family subclass, filled by `register_family`


def register_family(name):
    """Class decorator: the family's short name for `tfvae.families.get` and models' `latent=`."""
    def register(cls):
        FAMILIES[name] = cls
        cls.name = name
        return cls
    return register


def get(family, **options):
    """A Family from its name (with the options it takes, e.g. `min_scale`; others are
    ignored), a Family, or a Family's serialization."""
    if isinstance(family, dict):
        family = keras.saving.deserialize_keras_object(family)
    if isinstance(family, Family):
        return family
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {tuple(FAMILIES)} or a tfvae.families.Family. "
                         f"Received: family={family!r}")
    cls = FAMILIES[family]
    return cls(**{k: v for k, v in options.items() if k in cls._config_names})


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
        (the per-unit `tfd` object, so TFP's KL registry applies), `standard_params(shape)`
        (the standard member, a latent layer's default prior);
      - `draw` / `draw_unit_log_prob` only for an estimator whose density is not the family's
        (the relaxed Bernoulli's);
      - `@register_family("name")` on the class, so `tfvae.families.get("name")`, every latent
        layer (`tfvae.latents.Latent`) and every model's `latent=` take it;
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

    def standard_params(self, shape):
        """The family's standard member, each parameter of `shape`: the default prior of a
        latent layer (N(0, 1), Bernoulli(1/2))."""
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

    def draw(self, params, seed, estimator=None, num_samples=None):
        """(value, point): a draw with `estimator` for the network that reads it, and the point
        at which `draw_unit_log_prob` evaluates its density: the value itself, except where the
        estimator's density lives elsewhere (a relaxed Bernoulli draw: in logit space)."""
        value = self.sample(params, seed, estimator, num_samples)
        return value, value

    def draw_unit_log_prob(self, params, point, estimator=None):
        """The per-unit log density of a `draw`'s point under `params` (for the estimator's
        draws: a relaxed draw's density is not the family's)."""
        return self.unit_log_prob(params, point)

    matrix_dtype = tf.float32  # of `log_prob_matrix`'s products

    def log_prob_matrix(self, params, x):
        """[N, M] matrix of log p(x_n; params_m) for flat events x [N, D], params [M, D]:
        sum_d <T(x_nd), eta_md> - A(eta_md) + log h(x_nd) as matrix products (the cost of a
        mixture of M components at N points), in `matrix_dtype` (float64 where the expanded
        terms cancel, as the Gaussian's (x - m)^2 / s^2 does)."""
        dtype = self.matrix_dtype
        params = {k: tf.cast(v, dtype) for k, v in params.items()}
        x = tf.cast(x, dtype)
        natural = self.natural_params(params)
        stats = self.sufficient_statistics(x)
        inner = tf.add_n([tf.matmul(stats[k], natural[k], transpose_b=True) for k in natural])
        log_normalizer = tf.reduce_sum(self.log_normalizer(natural), -1)
        log_base = tf.reduce_sum(self.log_base_measure(x), -1)
        return tf.cast(inner - log_normalizer[None, :] + log_base[:, None], tf.float32)

    def free_parameters(self, params):
        """Unconstrained coordinates of the parameters (what an optimizer may move freely):
        the natural parameters, unless a family constrains them (the Gaussian's)."""
        return self.natural_params(params)

    def from_free_parameters(self, free):
        return self.from_natural_params(free)

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
