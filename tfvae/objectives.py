"""Variational objectives: the ELBO, the importance-weighted bound, and free bits.

Names follow the rate-distortion view (Alemi et al. 2018): distortion = -log p(x|z),
rate = KL[q(z|x) || p(z)], elbo = -(rate + distortion).
"""
import tensorflow as tf


def log_mean_exp(values, axis=0):
    """log (1/k) sum_i exp(v_i) along `axis`, computed stably."""
    k = tf.cast(tf.shape(values)[axis], values.dtype)
    return tf.reduce_logsumexp(values, axis=axis) - tf.math.log(k)

def iwae_bound(log_weights):
    """L_k = log (1/k) sum_i w_i with log w_i = log p(x, z_i) - log q(z_i|x), z_i ~ q(z|x).

    Burda, Grosse & Salakhutdinov 2016, eq. (8): L_1 is the ELBO, L_k <= L_{k+1} <= log p(x)
    in expectation. `log_weights` is [k, *batch]; returns [*batch].
    """
    return log_mean_exp(log_weights, axis=0)


def vimco_surrogate(log_weights, log_q):
    """Zero-valued, [batch]; its gradient is VIMCO's score-function term for the IWAE bound,
    sum_j (L - L_-j) grad log q(z_j|x), with L = `iwae_bound(log_weights)` and L_-j the bound
    with log w_j replaced by the mean of the other k - 1 log-weights (Mnih & Rezende 2016,
    eq. 10 with the geometric-mean baseline). `log_weights` and `log_q` (log q(z_j|x) of the
    draws the score function differentiates) are [k, batch], k >= 2; the bound's own
    gradient (through `log_weights`) is added by the caller."""
    log_weights = tf.stop_gradient(log_weights)
    k = tf.shape(log_weights)[0]
    others_mean = ((tf.reduce_sum(log_weights, 0, keepdims=True) - log_weights)
                   / tf.cast(k - 1, log_weights.dtype))  # [k, batch]
    left_out = tf.eye(k, dtype=tf.bool)[:, :, None]  # [j, i, 1]
    replaced = tf.where(left_out, others_mean[:, None], log_weights[None])  # [j, i, batch]
    signal = log_mean_exp(log_weights, axis=0)[None] - log_mean_exp(replaced, axis=1)
    return tf.reduce_sum(signal * (log_q - tf.stop_gradient(log_q)), axis=0)


def free_bits_rate(rate_per_unit, free_bits):
    """The rate with a floor per latent unit: sum_j max(lambda, E_batch[KL_j]).

    Kingma et al. 2016 (IAF), eq. (15). Written per example so it can be averaged with sample
    weights: a unit whose batch-average KL is below lambda contributes the constant lambda
    (no gradient); the others contribute their KL. `rate_per_unit` is [..., batch, units].
    """
    if free_bits <= 0:
        return tf.reduce_sum(rate_per_unit, axis=-1)
    batch_axes = list(range(len(rate_per_unit.shape) - 1))
    average = tf.reduce_mean(rate_per_unit, axis=batch_axes, keepdims=True)
    floored = tf.where(average > free_bits, rate_per_unit, tf.cast(free_bits, rate_per_unit.dtype))
    return tf.reduce_sum(floored, axis=-1)

