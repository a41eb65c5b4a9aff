"""Spectral normalisation as a layer wrapper (Miyato, Kataoka, Koyama & Yoshida, 2018).

``SpectralNorm(nn.Conv(...))(x, train=...)`` divides every weight of the wrapped layer that has two
or more dimensions (a Dense or Conv kernel, an Embed table) by an estimate of its largest singular
value before the layer runs:

    W_SN = W / sigma(W),    sigma(W) = ||W_mat u||,    W_mat = W.reshape(-1, W.shape[-1])

where u is a unit vector of size ``W.shape[-1]`` (the output features) refined by power iteration
(``v <- W_mat u / ||W_mat u||``, ``u <- W_mat^T v / ||W_mat^T v||``). As in the paper, a convolution
kernel (kh, kw, c_in, c_out) is normalised as the reshaped (kh * kw * c_in, c_out) matrix; that is
not the operator norm of the convolution itself (which depends on the input size and padding and
can be larger or smaller, by up to a factor sqrt(kh * kw): Tsuzuku et al. 2018), but it is what
SNGAN does.

The u vectors are model state, in the ``'spectral'`` variable collection (``jaxgan.net.split`` treats
every collection but ``'params'`` as state, so the game threads them through ``d_state`` and the
checkpoint saves them). In training (``train=True``) each call does ``n_steps`` power iterations
from the stored u and stores the result; in inference (``train=False``) the stored u is used as it
is and nothing changes. The gradient flows through ``sigma`` with u held fixed, as in the paper
(d sigma / d W = v u^T). The power iteration runs in float32 whatever the compute dtype.

Example:
  >>> layer = SpectralNorm(nn.Dense(16))
  >>> variables = layer.init(jax.random.key(0), x, train=False)   # {'params', 'spectral'}
  >>> y, state = layer.apply(variables, x, train=True, mutable=['spectral'])
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

SPECTRAL_COLLECTION = "spectral"


def _normalize(x: jax.Array, eps: float) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.sum(x * x) + eps)


def power_iteration(w_mat: jax.Array, u: jax.Array, n_steps: int, eps: float = 1e-12) -> jax.Array:
    """``n_steps`` power iterations on ``w_mat^T w_mat`` from ``u``: the refined unit vector.

    Args:
      w_mat: a (K, N) float32 matrix.
      u: a unit vector of shape (N,).
      n_steps: number of iterations (0 returns ``u``).
      eps: added under the square root of each normalisation.

    Returns:
      The new u, shape (N,), approaching the top right-singular vector of ``w_mat``.
    """
    for _ in range(n_steps):
        v = _normalize(w_mat @ u, eps)
        u = _normalize(w_mat.T @ v, eps)
    return u


def spectral_estimate(w_mat: jax.Array, u: jax.Array) -> jax.Array:
    """sigma(W) = ||W u|| for a unit vector u: a lower bound on the largest singular value of W."""
    return jnp.sqrt(jnp.sum(jnp.square(w_mat @ u)))


class SpectralNorm(nn.Module):
    """Wraps a layer so that its weight matrices are spectrally normalised (Miyato et al., 2018).

    Args:
      layer: the module to wrap (``nn.Dense``, ``nn.Conv``, ``nn.Embed``...). Its leaves with two or
        more dimensions are normalised; biases (one dimension) are left alone.
      n_steps: power iterations per training call (1 in the paper: u persists across steps).
      eps: numerical floor of the normalisations.
      collection: the variable collection holding the u vectors.

    Call: ``SpectralNorm(layer)(*args, train=bool, **kwargs)`` returns ``layer(*args, **kwargs)``
    computed with the normalised weights.
    """
    layer: nn.Module
    n_steps: int = 1
    eps: float = 1e-12
    collection: str = SPECTRAL_COLLECTION

    @nn.compact
    def __call__(self, *args, train: bool, **kwargs):
        def forward(layer):
            return layer(*args, **kwargs)

        def normalise_all(variables):
            return jax.tree_util.tree_map_with_path(
                lambda path, w: self._normalise(path, w, train), variables)

        return nn.map_variables(forward, "params", trans_in_fn=normalise_all,
                                init=self.is_initializing(), mutable=True)(self.layer)

    def _normalise(self, path, w, train: bool):
        if w.ndim < 2:
            return w
        name = "_".join(str(getattr(k, "key", k)) for k in path[1:]) + "_u"  # path[0]: the collection
        w_mat = jnp.asarray(w, jnp.float32).reshape(-1, w.shape[-1])
        u_var = self.variable(self.collection, name, _random_unit, self.make_rng("params")
                              if not self.has_variable(self.collection, name) else None, w.shape[-1])
        u = u_var.value
        if train and not self.is_initializing():
            u = jax.lax.stop_gradient(power_iteration(w_mat, u, self.n_steps, self.eps))
            u_var.value = u
        sigma = spectral_estimate(w_mat, u)
        return (w / jnp.maximum(sigma, self.eps).astype(w.dtype)).astype(w.dtype)


def _random_unit(key, size: int) -> jax.Array:
    return _normalize(jax.random.normal(key, (size,), jnp.float32), 1e-12)
