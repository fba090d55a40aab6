"""PNG figures of models and runs (matplotlib, no display needed): sample grids,
reconstructions, the 2-D latent manifold, latent traversals and training curves.

Figures are drawn on `matplotlib.figure.Figure` objects, not through pyplot, so using them
neither selects nor changes the user's matplotlib backend.
"""
import math
from statistics import NormalDist

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from tfvae import files


def new_figure(figsize):
    return Figure(figsize=figsize)


def save_figure(fig, path, dpi=120):
    """Writes `fig` as a PNG atomically (a temporary file, then a rename)."""
    with files.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def as_images(images):
    """[N, H, W] grey or [N, H, W, 3] colour images from a batch of examples: images (H, W, 1)
    or (H, W, 3), or flat vectors of a square length (784 -> 28x28)."""
    images = np.asarray(images, np.float32)
    shape = images.shape[1:]
    if len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return images.reshape(-1, side, side)
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] == 3):
        return images
    if len(shape) == 3 and shape[-1] == 1:
        return images[..., 0]
    raise ValueError("An image grid needs images: examples of shape (H, W), (H, W, 1), (H, W, 3) "
                     f"or flat of a square length such as (784,). Received examples of shape {shape}")


def image_grid(images, path, columns=None, title=None, row_labels=None):
    """Saves a batch of images (values in [0, 1]; see `as_images`) as one grid PNG; returns
    the path."""
    images = np.clip(as_images(images), 0.0, 1.0)
    height, width = images.shape[1:3]
    columns = columns or int(math.ceil(math.sqrt(len(images))))
    rows = int(math.ceil(len(images) / columns))
    canvas = np.ones((rows * (height + 2), columns * (width + 2)) + images.shape[3:], np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (height + 2) + 1: r * (height + 2) + 1 + height,
               c * (width + 2) + 1: c * (width + 2) + 1 + width] = image
    scale = 0.35 * max(height, width) / 28
    fig = new_figure((max(2.0, columns * scale + 0.6), max(2.0, rows * scale + 0.6)))
    ax = fig.subplots()
    if images.ndim == 3:
        ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        ax.set_yticks([(i + 0.5) * (height + 2) for i in range(len(row_labels))], row_labels,
                      fontsize=7)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def for_display(model, images):
    """A model's values as image intensities in [0, 1]: 8-bit values (a likelihood of data in
    0..255) divided by 255, others as they are."""
    data_range = model.likelihood.data_range
    images = np.asarray(images, np.float32)
    return images / data_range[1] if data_range and data_range[1] > 1 else images


def sample_grid(model, path, num_samples=64, seed=0):
    """Samples E[x|z], z ~ p(z), as a grid."""
    return image_grid(for_display(model, model.sample(num_samples, seed=seed)), path,
                      title=f"{model.name}: samples E[x|z], z ~ p(z)")


def reconstructions(model, x, path, num_examples=16):
    """Inputs (top row) above their reconstructions E[x|z = posterior mean] (bottom row)."""
    x = np.asarray(x[:num_examples], np.float32)
    images = for_display(model, np.concatenate([x, np.asarray(model.reconstruct(x))]))
    return image_grid(images, path, columns=len(x), title="inputs and reconstructions",
                      row_labels=["input", "recon."])


def latent_manifold(model, path, points_per_axis=20):
    """For a 2-D top latent layer: E[x|z] on a grid of the prior's quantiles (Kingma & Welling
    2014, figure 4), z_j = Phi^-1(u_j) for u on an even grid in (0, 1), decoded from the top
    layer (`decode_top`: in a hierarchy, down the prior means)."""
    if model.latent_shape != (2,):
        raise ValueError(f"latent_manifold needs a model of 2 latent units. "
                         f"Received: latent_shape={model.latent_shape}")
    u = np.linspace(0.5 / points_per_axis, 1 - 0.5 / points_per_axis, points_per_axis)
    quantiles = np.array([NormalDist().inv_cdf(v) for v in u])
    z1, z2 = np.meshgrid(quantiles, quantiles[::-1])
    z = np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)
    images = for_display(model, model.likelihood.mean(model.decode_top(z)))
    return image_grid(images, path, columns=points_per_axis,
                      title="2-D latent manifold (prior quantiles)")


def latent_traversals(model, x, path, units=None, steps=9, span=3.0, num_units=10):
    """One row per unit of the top latent layer: decode (`decode_top`) the posterior mean of
    x[0] with that unit moved over [-span, span] (a common way to read what a unit encodes).

    By default the `num_units` most informative units, ranked by their KL from the family's
    standard prior, KL[q(z_u|x) || p(z_u)] averaged over the batch x (the rate each unit
    carries; inactive units have about 0); `units` picks them instead.
    """
    x = np.asarray(x, np.float32)
    top = model.latent_layers()[-1]
    q = model.encode_layers(x)[-1]
    means = top.mean(q)
    kl = np.asarray(tf.reduce_mean(top.unit_kl(q, top.standard_params(tf.shape(means)[0]), means), 0))
    if units is None:
        units = np.argsort(-kl, kind="stable")[:num_units]
    units = [int(u) for u in units]
    mean = np.asarray(means)[0]
    values = np.linspace(-span, span, steps, dtype=np.float32)
    z = np.repeat(mean[None], len(units) * steps, axis=0)
    for row, unit in enumerate(units):
        z[row * steps:(row + 1) * steps, unit] = values
    images = for_display(model, model.likelihood.mean(model.decode_top(tf.constant(z))))
    return image_grid(images, path, columns=steps,
                      row_labels=[f"z{u} ({kl[u]:.1f})" for u in units],
                      title=f"latent traversals, z_u in [{-span}, {span}] (KL per unit, nats)")


def training_curves(metrics, path):
    """Loss terms per epoch from a metrics.json record (dict with "epochs")."""
    epochs = metrics["epochs"]
    x = [e["epoch"] for e in epochs]
    panels = [("elbo", "ELBO (nats)"), ("kl", "KL / rate (nats)"), ("distortion", "distortion (nats)")]
    fig = new_figure((4 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels))
    for ax, (name, label) in zip(axes, panels):
        for prefix, style in (("", "o-"), ("val_", "s--")):  # (markers: one epoch is a point)
            values = [e.get(prefix + name) for e in epochs]
            if any(v is not None for v in values):
                ax.plot(x, values, style, markersize=4, label="validation" if prefix else "train")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def aggregate_posterior(models, x, labels, path, titles=None, points_per_axis=200):
    """For 2-latent models, side by side: one draw z ~ q(z|x) per image, coloured by label,
    over the contours of the prior's log density (each panel spans its own draws). Where the
    prior fits the aggregate posterior q(z) = (1/N) sum_n q(z|x_n), the marginal KL of the ELBO
    surgery is small."""
    fig = new_figure((4.2 * len(models), 4.0))
    axes = fig.subplots(1, len(models), squeeze=False)
    for i, (model, ax) in enumerate(zip(models, axes[0])):
        if (model.latent_shape != (2,) or "gaussian_posterior" not in model.capabilities
                or model.prior_layer is None):
            raise ValueError("aggregate_posterior needs models of 2 Gaussian latent units. "
                             f"Received: latent_shape={model.latent_shape}")
        z = model.latent_layers()[-1].sample(model.encode(x), seed=[0, i]).numpy()  # one draw each
        low, high = np.percentile(z, [0.5, 99.5], axis=0)
        pad = 0.15 * (high - low)
        gx = np.linspace(low[0] - pad[0], high[0] + pad[0], points_per_axis, dtype=np.float32)
        gy = np.linspace(low[1] - pad[1], high[1] + pad[1], points_per_axis, dtype=np.float32)
        zz = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        log_p = model.prior_layer.log_prob(zz).numpy().reshape(points_per_axis, points_per_axis)
        ax.contour(gx, gy, log_p, levels=np.linspace(log_p.max() - 8, log_p.max(), 9),
                   cmap="Greys", linewidths=0.6)
        ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6, linewidths=0)
        ax.set_xlim(gx[0], gx[-1])
        ax.set_ylim(gy[0], gy[-1])
        ax.set_title(titles[i] if titles else f"prior: {type(model.prior_layer).__name__}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path
