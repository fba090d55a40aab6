"""How a latent sample is drawn and differentiated.

All sampling is stateless (`tf.random.stateless_*`) and keyed by an explicit int32 seed pair,
so training (seeds from a `keras.random.SeedGenerator`) and serving (seeds from the request)
run the same code, and a draw is reproducible from its seed.
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


def pathwise_gaussian(loc, scale, seed, num_samples=None):
    """Reparameterized Gaussian sample z = loc + scale * eps, eps ~ N(0, I).

    Kingma & Welling 2014, section 2.4: the gradient of E[f(z)] flows through loc and scale.
    Returns [num_samples, *loc.shape], or loc.shape when `num_samples` is None.
    """
    shape = tf.shape(loc) if num_samples is None else tf.concat([[num_samples], tf.shape(loc)], 0)
    eps = tf.random.stateless_normal(shape, seed=seed_pair(seed), dtype=loc.dtype)
    return loc + scale * eps
