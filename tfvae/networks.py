"""Residual convolutional encoders and decoders for images of any H x W x C: conveniences that
return plain functional Keras models (any serializable Keras model can be an encoder or decoder
instead).

The encoder halves the resolution once per scale (a stride-2 convolution), with residual blocks
x + conv(act(conv(act(x)))) at each scale (He et al. 2016, the pre-activation form); the decoder
mirrors it from z, doubling the resolution with stride-2 transposed convolutions, and ends in a
1x1 convolution to the likelihood's parameters per pixel (`likelihood.params_shape`), so the
model needs no projection.
"""
import keras

ACTIVATION = "swish"


def _check(image_shape, widths, blocks_per_scale):
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in image_shape):
        raise ValueError(f"image_shape must be (H, W, C). Received: image_shape={image_shape!r}")
    widths = tuple(widths)
    if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"widths must be positive integers, one per scale. Received: widths={widths!r}")
    factor = 2 ** len(widths)
    if image_shape[0] % factor or image_shape[1] % factor:
        raise ValueError(f"{len(widths)} scales halve H and W {len(widths)} times: they must be "
                         f"divisible by {factor}. Received: image_shape={image_shape}, widths={widths}")
    if isinstance(blocks_per_scale, bool) or not isinstance(blocks_per_scale, int) or blocks_per_scale < 0:
        raise ValueError(f"blocks_per_scale must be an integer >= 0. Received: {blocks_per_scale!r}")
    return image_shape, widths


def _residual_block(x, width, activation, name):
    h = keras.layers.Activation(activation, name=f"{name}_act1")(x)
    h = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv1")(h)
    h = keras.layers.Activation(activation, name=f"{name}_act2")(h)
    h = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros", name=f"{name}_conv2")(h)
    return keras.layers.Add(name=f"{name}_add")([x, h])  # (zero-initialized: each block starts as identity)


def residual_encoder(image_shape, widths=(32, 64), blocks_per_scale=1, activation=ACTIVATION,
                     name="encoder"):
    """x [batch, H, W, C] -> features [batch, H / 2^S * W / 2^S * widths[-1]] for S = len(widths).

    Args:
        image_shape: (H, W, C); H and W divisible by 2^len(widths).
        widths: channels at each scale, the first at full resolution.
        blocks_per_scale: residual blocks at each scale.
        activation: a Keras activation.
        name: the model's name.

    Example:
    >>> encoder = tfvae.networks.residual_encoder((28, 28, 1), widths=(32, 64))
    """
    image_shape, widths = _check(image_shape, widths, blocks_per_scale)
    x = inputs = keras.Input(image_shape, name="x")
    for s, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_scale{s}_in")(x)
        for b in range(blocks_per_scale):
            x = _residual_block(x, width, activation, f"{name}_scale{s}_block{b}")
        x = keras.layers.Conv2D(width, 4, strides=2, padding="same", name=f"{name}_scale{s}_down")(x)
    x = keras.layers.Activation(activation, name=f"{name}_out_act")(x)
    return keras.Model(inputs, keras.layers.Flatten(name=f"{name}_flatten")(x), name=name)


def residual_decoder(latent_dim, image_shape, params_per_pixel, widths=(64, 32), blocks_per_scale=1,
                     activation=ACTIVATION, name="decoder"):
    """z [batch, latent_dim] -> the likelihood's parameters [batch, H, W, params_per_pixel].

    Args:
        latent_dim: z's width.
        image_shape: (H, W, C) of the data; H and W divisible by 2^len(widths).
        params_per_pixel: the last axis of `likelihood.params_shape(image_shape)`, e.g. C for a
            Bernoulli, 3 K (grey) or 10 K (RGB) for a discretized logistic mixture of K.
        widths: channels at each scale, the first at the coarsest.
        blocks_per_scale, activation, name: as `residual_encoder`'s.

    Example:
    >>> part = tfvae.likelihoods.get("discretized_logistic")
    >>> decoder = tfvae.networks.residual_decoder(16, (28, 28, 1), part.params_shape((28, 28, 1))[-1])
    """
    image_shape, widths = _check(image_shape, widths, blocks_per_scale)
    h, w = image_shape[0] // 2 ** len(widths), image_shape[1] // 2 ** len(widths)
    z = inputs = keras.Input((latent_dim,), name="z")
    x = keras.layers.Dense(h * w * widths[0], name=f"{name}_dense")(z)
    x = keras.layers.Reshape((h, w, widths[0]), name=f"{name}_reshape")(x)
    for s, width in enumerate(widths):
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", name=f"{name}_scale{s}_up")(x)
        for b in range(blocks_per_scale):
            x = _residual_block(x, width, activation, f"{name}_scale{s}_block{b}")
    x = keras.layers.Activation(activation, name=f"{name}_out_act")(x)
    params = keras.layers.Conv2D(params_per_pixel, 1, name=f"{name}_params")(x)
    return keras.Model(inputs, params, name=name)


def residual_pair(image_shape, latent_dim, likelihood, widths=(32, 64), blocks_per_scale=1,
                  activation=ACTIVATION):
    """(encoder, decoder) for a VAE on images of `image_shape` with the likelihood part (or
    name) `likelihood`: the decoder's widths mirror the encoder's.

    Example:
    >>> part = tfvae.likelihoods.get("discretized_logistic", num_components=5)
    >>> encoder, decoder = tfvae.networks.residual_pair((28, 28, 1), 16, part)
    >>> model = tfvae.VAE(encoder=encoder, decoder=decoder, latent_dim=16, likelihood=part)
    """
    from tfvae import likelihoods  # (a part, or the name of one)

    part = likelihoods.get(likelihood)
    encoder = residual_encoder(image_shape, widths, blocks_per_scale, activation)
    decoder = residual_decoder(latent_dim, image_shape, part.params_shape(tuple(image_shape))[-1],
                               tuple(reversed(widths)), blocks_per_scale, activation)
    return encoder, decoder
