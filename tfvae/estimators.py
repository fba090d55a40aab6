"""How a latent sample is drawn and differentiated.

Four gradient estimators for E_q[f(z)] with respect to q's parameters:
- `pathwise` (Gaussian z = loc + scale * eps): unbiased, low variance.
- `straight_through` (Bernoulli): the hard draw forward, d z / d p = 1 backward; biased.
- `score_function` (REINFORCE, any q): (f(z) - b) grad log q(z), unbiased for any baseline b
  that does not depend on z; its variance falls as b approaches f.
- `relaxed` (Concrete / Gumbel-sigmoid): a continuous draw sigmoid(y), y in logit space;
  biased towards the relaxed objective, the bias shrinking with the temperature.

All sampling is stateless and keyed by an explicit int32 seed pair, so training (seeds from a
`keras.random.SeedGenerator`) and serving (seeds from the request) run the same code, and a
draw is reproducible from its seed.

The noise comes from the Threefry generator inside a small XLA-compiled function. On this
project's CPUs XLA's default (Philox) generator drew about 1 million normals per second, 30x
slower than TensorFlow's own kernel, and dominated the IWAE evaluation; Threefry under XLA is
as fast as TensorFlow's kernel, and gives the same numbers eagerly, in graphs with dynamic
shapes, and inside jit-compiled train steps (TensorFlow's own CPU kernels lack Threefry).
"""
import keras
import tensorflow as tf


def seed_pair(seed):
    """An int32 [2] stateless seed from a `SeedGenerator` (advancing it), an int, or a tensor."""
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif isinstance(seed, int):
        seed = tf.constant([seed, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.dtype != tf.int32:
        # The generator's state is int64; XLA's stateless ops want int32.
        seed = tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1), tf.int32)
    return seed


@tf.function(jit_compile=True)
def standard_normal(shape, seed, dtype=tf.float32):
    """N(0, 1) noise of the given shape from an int32 [2] seed (Threefry, XLA-compiled)."""
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg="threefry")


@tf.function(jit_compile=True)
def standard_uniform(shape, seed, dtype=tf.float32):
    """U[0, 1) noise of the given shape from an int32 [2] seed (Threefry, XLA-compiled)."""
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype, alg="threefry")


def pathwise_gaussian(loc, scale, seed, num_samples=None):
    """Reparameterized Gaussian sample z = loc + scale * eps, eps ~ N(0, I).

    Kingma & Welling 2014, section 2.4: the gradient of E[f(z)] flows through loc and scale.
    Returns [num_samples, *loc.shape], or loc.shape when `num_samples` is None.
    """
    shape = tf.shape(loc) if num_samples is None else tf.concat([[num_samples], tf.shape(loc)], 0)
    eps = standard_normal(shape, seed_pair(seed), dtype=loc.dtype)
    return loc + scale * eps


def straight_through_bernoulli(probs, seed):
    """A {0, 1} draw b = 1[u < p] whose gradient is that of p (Bengio, Leonard & Courville
    2013, "straight-through"): the value is b + (p - stop_gradient(p)) = b, the derivative
    d b / d p is taken as 1. Biased, but low-variance and as cheap as the forward pass."""
    u = standard_uniform(tf.shape(probs), seed_pair(seed), dtype=probs.dtype)
    hard = tf.cast(u < probs, probs.dtype)
    return hard + (probs - tf.stop_gradient(probs))  # exactly 0 or 1: p - p is exactly 0


def score_function_surrogate(log_q, signal, baseline=0.0):
    """A term whose value is 0 and whose gradient is (f - b) grad log q(z) (Williams 1992).

    Added to an objective whose samples z carry no gradient, it gives the REINFORCE estimate
    of grad E_q[f(z)]: `log_q` = log q(z) at the (stopped) draws, differentiable in q's
    parameters; `signal` = f(z); `baseline` = b, anything not depending on z.
    """
    advantage = tf.stop_gradient(signal - baseline)
    return advantage * (log_q - tf.stop_gradient(log_q))


def relaxed_bernoulli_logits(logits, seed, temperature):
    """A Concrete / Gumbel-sigmoid draw in logit space: y = (logits + log u - log(1 - u)) / t.

    sigmoid(y) is the relaxed sample (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017); y is
    returned instead, because sigmoid(y) rounds to exactly 0 or 1 at low temperature and its
    density would then underflow, while y's density (`logistic_log_prob`) stays finite.
    """
    u = standard_uniform(tf.shape(logits), seed_pair(seed), dtype=logits.dtype)
    tiny = 1e-7  # keeps log u and log(1 - u) finite at the edges of [0, 1)
    u = tf.clip_by_value(u, tiny, 1.0 - tiny)
    return (logits + tf.math.log(u) - tf.math.log1p(-u)) / temperature


def logistic_log_prob(y, logits, temperature):
    """Per-unit log density of y = (logits + Logistic(0, 1)) / t:
    log t + (logits - t y) - 2 softplus(logits - t y)."""
    a = logits - temperature * y
    return tf.math.log(temperature) + a - 2.0 * tf.nn.softplus(a)
