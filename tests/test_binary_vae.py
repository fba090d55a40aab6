"""VAE(latent="bernoulli"): the binary-latent VAE, drawn by its latent layer
(`tfvae.latents.Latent`, the one the HarmoniumVAE and the hierarchies use too)."""
import itertools
import re

import keras
import numpy as np
import pytest
import scipy.special
import tensorflow as tf

import tfvae
from tfvae import evaluation
from test_maths_exact import LOG_HALF, f64, softplus

ESTIMATORS = [("straight_through", "moving_average"), ("score_function", "none"),
              ("score_function", "moving_average"), ("score_function", "learned"),
              ("relaxed", "moving_average")]
RNG = np.random.default_rng(0)
X = (RNG.random((32, 12)) < 0.4).astype("float32")


def bernoulli_vae(**kwargs):
    kwargs = {"input_shape": (12,), "latent_dim": 200, "latent": "bernoulli", "hidden": (16,),
              "seed": 1, **kwargs}
    return tfvae.VAE(**kwargs)


@pytest.mark.parametrize("estimator, baseline", ESTIMATORS)
def test_200_bernoulli_latents_under_each_estimator_have_gradients_and_their_state(estimator, baseline):
    """(Training, the .keras round trip and the export of each estimator: tests/test_contract.py
    and the README block, tests/test_bring_your_own.py.)"""
    model = bernoulli_vae(estimator=estimator, baseline=baseline)
    assert (model.estimator, model.baseline) == (estimator, baseline)
    model.build((None, 12))
    with tf.GradientTape() as tape:
        objective = tf.reduce_mean(model.loss_terms(X, seed=4, training=True)["objective"])
    grads = tape.gradient(objective, model.encoder_weights())
    assert all(g is not None for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0  # gradients reach the encoder
    # the score function's state only where it is used (old VAE files keep their variables)
    names = {w.path.split("/")[-1] for w in model.weights}
    assert ("signal_mean" in names) == (estimator == "score_function")
    assert ((model.posterior_layer.baseline_net is not None)
            == (estimator == "score_function" and baseline == "learned"))
    if estimator == "score_function":  # a training step moves the running mean (not "none")
        state = model.posterior_layer.signal_mean
        assert (float(state) != 0.0) == (baseline != "none")
    assert model.capabilities == frozenset()  # 2^200 states: not enumerable


def small_model():
    """4 Bernoulli latents, 6 visible units, linear codecs with random weights (O(1) for the
    decoder; small for the encoder, so q covers every state and IWAE's weights vary little)."""
    model = tfvae.VAE(input_shape=(6,), latent_dim=4, latent="bernoulli", hidden=(), seed=2)
    model.build((None, 6))
    rng = np.random.default_rng(3)
    for layer, scale in ((model.posterior_layer, 0.3), (model.likelihood_layer, 1.0)):
        for weight in layer.projection.weights:
            weight.assign(rng.normal(scale=scale, size=weight.shape).astype(np.float32))
    return model


def test_exact_log_likelihood_is_the_numpy_sum_over_the_16_states_and_iwae_approaches_it():
    model = small_model()
    assert "enumerable_latents" in model.capabilities
    assert "gaussian_posterior" not in model.capabilities
    x = (np.random.default_rng(4).random((5, 6)) < 0.5).astype("float32")
    kernel, bias = (f64(w.numpy()) for w in model.likelihood_layer.projection.weights)
    states = np.array(list(itertools.product([0, 1], repeat=4)), np.float64)     # [16, 4]
    logits = states @ kernel + bias                                               # [16, 6]
    log_joint = f64(x) @ logits.T - softplus(logits).sum(-1) + 4 * LOG_HALF        # [5, 16]
    expected = scipy.special.logsumexp(log_joint, axis=1)
    exact = evaluation.exact_log_likelihood(model, x, states_per_chunk=5)
    np.testing.assert_allclose(exact, expected, rtol=1e-5, atol=1e-5)
    errors = [np.abs(model.log_prob(x, num_samples=k, seed=7).numpy() - expected)
              for k in (100, 20000)]
    assert errors[1].mean() < errors[0].mean()
    np.testing.assert_allclose(errors[1], 0.0, atol=0.05)


@pytest.mark.parametrize("estimator, baseline", [("straight_through", "moving_average"),
                                                 ("score_function", "learned"),
                                                 ("relaxed", "moving_average")])
def test_an_untied_harmonium_config_loads_as_the_bernoulli_vae(estimator, baseline, tmp_path):
    """HarmoniumVAE(tie_weights=False), as configs of earlier versions spell the binary-latent
    VAE, deserializes to VAE(latent="bernoulli") with the same parts; the constructor refuses it
    and names the class to use. (The zoo's bvae_mnist is such a file: test_zoo.py.)"""
    old = {"input_dim": 12, "latent_dim": 7, "latent": "bernoulli", "tie_weights": False,
           "hidden": [9], "activation": "relu", "estimator": estimator, "baseline": baseline,
           "baseline_decay": 0.9, "temperature": 0.7, "likelihood": "bernoulli", "seed": 0}
    model = keras.saving.deserialize_keras_object(
        {"module": "tfvae.models.harmonium", "class_name": "HarmoniumVAE", "config": old,
         "registered_name": "tfvae>HarmoniumVAE"})
    direct = tfvae.VAE(input_shape=(12,), latent_dim=7, latent="bernoulli", hidden=(9,),
                       activation="relu", estimator=estimator, baseline=baseline,
                       baseline_decay=0.9, temperature=0.7, seed=0)
    assert type(model) is tfvae.VAE
    unnamed = lambda m: {k: v for k, v in m.get_config().items() if k != "name"}
    assert unnamed(model) == unnamed(direct)
    model.build((None, 12))
    direct.build((None, 12))
    structure = lambda m: [(w.name, tuple(w.shape)) for w in m.weights]
    assert structure(model) == structure(direct)
    direct.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.elbo(X, seed=3), direct.elbo(X, seed=3))
    with pytest.raises(ValueError, match=r"tfvae\.VAE\(latent='bernoulli'"):
        tfvae.HarmoniumVAE(input_shape=(12,), latent_dim=7, tie_weights=False)


def test_old_gaussian_configs_load_with_the_same_variables():
    model = tfvae.VAE(input_shape=(12,), latent_dim=3, hidden=(5,), seed=0)
    model.build((None, 12))
    config = model.get_config()
    assert (config["latent"], config["estimator"]) == ("gaussian", "pathwise")
    for key in ("latent", "estimator", "baseline", "baseline_decay", "temperature"):
        del config[key]
    old = tfvae.VAE.from_config(config)
    old.build((None, 12))
    paths = lambda m: [re.sub(r"_\d+", "", w.path.split("/", 1)[-1]) for w in m.weights]
    assert paths(old) == paths(model)
    assert "signal_mean" not in [w.name for w in old.weights]
    assert old.latent == "gaussian" and old.capabilities == frozenset({"gaussian_posterior"})


@pytest.mark.parametrize("kwargs, message", [
    (dict(latent="binary"), "latent must be one of"),
    (dict(latent="bernoulli", estimator="pathwise"), "estimator must be one of"),
    (dict(estimator="score_function"), "Gaussian latents are drawn pathwise"),
    (dict(latent="bernoulli", baseline="mean"), "baseline must be one of"),
    (dict(latent="bernoulli", temperature=0.0), "temperature must be > 0"),
    (dict(latent="bernoulli", estimator="score_function", num_samples=5), "VIMCO"),
    (dict(latent="bernoulli", prior="mixture"), "mixtures of Gaussians"),
    (dict(latent="bernoulli", prior="vamp"), "mixtures of Gaussians"),
    (dict(latent="bernoulli", prior=tfvae.priors.MixturePrior(3, 2)), "MixturePrior"),
])
def test_bad_latent_arguments_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tfvae.VAE(input_shape=(12,), latent_dim=3, **kwargs)


def test_gradient_variance_compares_estimators_on_a_bernoulli_vae():
    """A straight-through model compares with the score function, with and without a baseline
    (the moving average held at the mean signal, in a temporary state), and is left as it was."""
    model = tfvae.VAE(input_shape=(12,), latent_dim=10, latent="bernoulli", hidden=(8,), seed=0)
    straight = evaluation.gradient_variance(model, X[:16], num_draws=4)
    score = evaluation.gradient_variance(model, X[:16], num_draws=4, estimator="score_function",
                                         baseline="none")
    assert score["total_variance"] > straight["total_variance"] > 0
    variables = [w.path for w in model.weights]
    centred = evaluation.gradient_variance(model, X[:16], num_draws=4, estimator="score_function",
                                           baseline="moving_average")
    assert centred["total_variance"] > 0
    assert [w.path for w in model.weights] == variables and model.estimator == "straight_through"
    assert model.posterior_layer.signal_mean is None
    with pytest.raises(ValueError, match="baseline='learned' has weights"):
        evaluation.gradient_variance(model, X[:16], num_draws=4, estimator="score_function",
                                     baseline="learned")


def test_a_measurement_override_of_the_baseline_applies_to_a_learned_baseline_too():
    """`estimators_as(baseline="none")` on a layer built with the learned b(x): b(x) gets no
    gradient and changes nothing (it used to be applied whenever the layer had one)."""
    model = bernoulli_vae(latent_dim=5, estimator="score_function", baseline="learned")
    model.build((None, 12))
    net = model.posterior_layer.baseline_net

    def baseline_gradient():
        with tf.GradientTape() as tape:
            objective = tf.reduce_mean(model.loss_terms(X, seed=4, training=True)["objective"])
        return tape.gradient(objective, net.trainable_weights)

    assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in baseline_gradient())
    with model.estimators_as(baseline="none"):
        assert all(g is None for g in baseline_gradient())


def test_a_temperature_setting_leaves_the_gaussian_layers_of_a_hierarchy_alone():
    model = tfvae.LadderVAE(input_shape=(12,), latent_dims=(4, 2), hidden=(8, 8),
                            latent_families=("bernoulli", "gaussian"), seed=0)
    result = evaluation.gradient_variance(model, X[:8], num_draws=2, estimator="relaxed",
                                          temperature=0.3)
    assert result["total_variance"] > 0 and model.estimator == "straight_through"
    assert model.latent_layers()[0].temperature == 0.5  # restored


def test_an_untied_gaussian_score_function_config_loads_drawn_pathwise_with_a_warning():
    old = {"input_dim": 12, "latent_dim": 3, "latent": "gaussian", "tie_weights": False,
           "hidden": [8], "estimator": "score_function"}
    with pytest.warns(UserWarning, match="pathwise"):
        model = tfvae.HarmoniumVAE.from_config(old)
    assert type(model) is tfvae.VAE and model.estimator == "pathwise"


def test_the_held_baseline_of_a_hierarchy_is_where_its_moving_average_settles():
    """A hierarchy's score-function signal is its whole one-sample objective (every KL below a
    layer depends on its draw): `gradient_variance` holds the baseline there, not at
    -distortion, which is off by the mean KL (over 50 nats here)."""
    model = tfvae.LadderVAE(input_shape=(12,), latent_dims=(16, 8), hidden=(16, 16),
                            latent_families=("bernoulli", "bernoulli"), estimator="score_function",
                            seed=0)
    model.build((None, 12))
    for w in model.encoder_weights():  # a confident posterior, far from the prior
        if "kernel" in w.path:
            w.assign(w * 6.0)
    terms = model.loss_terms(X, num_samples=1, seed=tf.constant([0, 0]))
    kl, distortion = float(tf.reduce_mean(terms["kl"])), float(tf.reduce_mean(terms["distortion"]))
    assert kl > 50
    held = evaluation.gradient_variance(model, X, num_draws=2, estimator="score_function",
                                        baseline="moving_average")["held_baseline"]
    layers = [latent for latent in model.latent_layers() if latent.estimator == "score_function"]

    @tf.function
    def step(i):
        model.loss_terms(X, num_samples=1, seed=tf.stack([5, i]), training=True)

    for i in range(500):  # the moving averages at fixed weights (decay 0.99)
        step(tf.constant(i))
    settled = float(layers[0].signal_mean)
    assert abs(held - settled) < 0.1 * kl, (held, settled, -distortion)
    assert abs(-distortion - settled) > 0.5 * kl


def test_temperature_annealing_retraces_the_train_step_at_each_new_temperature():
    """tfvae.callbacks.TemperatureAnnealing in a real fit: tau = max(0.5, exp(-rate t)) moves
    once per epoch here (every = the 4 steps of an epoch). A latent part that notes the
    temperature each time the train step is traced shows the step traced at every new tau, in
    order (a step traced once would draw at 1.0 throughout)."""
    traced = []

    class NotingLatent(tfvae.latents.Latent):
        def draw(self, params, seed, num_samples=None, training=False):
            if training:
                traced.append(self.temperature)  # (Python: runs when the step is traced)
            return super().draw(params, seed, num_samples, training)

    model = tfvae.VAE(input_shape=(12,), latent=NotingLatent(20, "bernoulli", estimator="relaxed"),
                      hidden=(16,), seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=2)
    annealing = tfvae.callbacks.TemperatureAnnealing(rate=0.1, minimum=0.5, every=4)
    x = np.tile(X, (4, 1))  # 128 examples, 4 batches of 32
    history = model.fit(x, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=[annealing])
    taus = [annealing.temperature_at(4 * epoch) for epoch in range(3)]
    np.testing.assert_allclose(taus, [1.0, np.exp(-0.4), 0.5])
    np.testing.assert_allclose(history.history["temperature"], taus)
    assert sorted(set(traced), reverse=True) == taus and traced[0] == 1.0 and traced[-1] == 0.5
    assert model.posterior_layer.temperature == 0.5
    # a second fit (as a resumed run) continues from the optimizer's step: 12, tau exp(-1.2) -> 0.5
    model.posterior_layer.set_temperature(0.9)
    traced.clear()
    model.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[annealing])
    assert traced and set(traced) == {0.5}
    with pytest.raises(ValueError, match="has none"):
        gaussian = tfvae.VAE(input_shape=(12,), latent_dim=3, hidden=(8,))
        gaussian.compile(optimizer="sgd")
        gaussian.fit(X, epochs=1, verbose=0, callbacks=[tfvae.callbacks.TemperatureAnnealing()])
