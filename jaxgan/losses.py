"""Adversarial losses as (discriminator loss, generator loss) pairs of pure functions.

Every loss here is built by a lowercase factory and is a :class:`Loss`: two pure, jittable functions
of the discriminator's raw outputs (logits or critic values) on a batch of real and of generated
examples. Both take ``(real, fake)`` so that relativistic losses, which compare the two, fit the same
shape; losses that ignore ``real`` in the generator term say so with ``g_uses_real=False`` and the
step then skips the extra discriminator pass on real data.

The engine calls a loss on the logits of the *global* batch (gathered across devices), so a loss
that uses batch statistics, like :func:`relativistic_average`, gives the same value on any number of
devices. Inputs are cast to float32: losses are always computed in full precision.

A loss of your own is any pair of such functions::

    def my_d(real, fake):
        return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))

    my_loss = jaxgan.losses.Loss(d=my_d, g=lambda real, fake: -jnp.mean(fake), name="mine")
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
LossFn = Callable[[Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Loss:
    """A named GAN objective: ``d(real, fake)`` and ``g(real, fake)``, each returning a scalar.

    Attributes:
      d: the discriminator's loss, minimised over the discriminator's parameters.
      g: the generator's loss, minimised over the generator's parameters.
      name: a short name used in logs and configs.
      g_uses_real: whether ``g`` reads ``real``. When False the step passes ``None`` for ``real`` and
        skips the discriminator's pass over real data in the generator update.
    """

    d: LossFn
    g: LossFn
    name: str = "custom"
    g_uses_real: bool = True


def _f32(*xs: Array) -> tuple[Array, ...]:
    return tuple(None if x is None else jnp.asarray(x, jnp.float32) for x in xs)


def minimax() -> Loss:
    """The original, saturating minimax loss (Goodfellow et al. 2014).

    With D(x) = sigmoid(l(x))::

        L_D = -E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-l_real)] + E[softplus(l_fake)]
        L_G =  E[log(1 - D(G(z)))]                = -E[softplus(l_fake)]

    The generator's gradient vanishes when D confidently rejects fakes: use it to reproduce the
    paper, and :func:`non_saturating` to train.

    Example:
      >>> loss = minimax()
      >>> float(loss.g(jnp.zeros(4), jnp.zeros(4)))  # -log 2 at D = 1/2
      -0.693...
    """

    def d(real, fake):
        real, fake = _f32(real, fake)
        return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))

    def g(real, fake):
        del real
        (fake,) = _f32(fake)
        return -jnp.mean(jax.nn.softplus(fake))

    return Loss(d=d, g=g, name="minimax", g_uses_real=False)


def non_saturating() -> Loss:
    """The non-saturating loss (Goodfellow et al. 2014, section 3), the usual default.

    The discriminator term is :func:`minimax`'s; the generator maximises log D(G(z))::

        L_G = -E[log D(G(z))] = E[softplus(-l_fake)]
    """

    def g(real, fake):
        del real
        (fake,) = _f32(fake)
        return jnp.mean(jax.nn.softplus(-fake))

    return Loss(d=minimax().d, g=g, name="non_saturating", g_uses_real=False)


def wasserstein() -> Loss:
    """The Wasserstein-1 critic loss (Arjovsky et al. 2017); pair it with a Lipschitz constraint.

    Use with :func:`jaxgan.penalties.gradient_penalty` (WGAN-GP, Gulrajani et al. 2017)::

        L_D = E[c(G(z))] - E[c(x)]        L_G = -E[c(G(z))]
    """

    def d(real, fake):
        real, fake = _f32(real, fake)
        return jnp.mean(fake) - jnp.mean(real)

    def g(real, fake):
        del real
        (fake,) = _f32(fake)
        return -jnp.mean(fake)

    return Loss(d=d, g=g, name="wasserstein", g_uses_real=False)


def hinge() -> Loss:
    """The hinge loss (Lim & Ye 2017; Miyato et al. 2018, SN-GAN; Brock et al. 2019, BigGAN)::

        L_D = E[relu(1 - l_real)] + E[relu(1 + l_fake)]        L_G = -E[l_fake]
    """

    def d(real, fake):
        real, fake = _f32(real, fake)
        return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))

    return Loss(d=d, g=wasserstein().g, name="hinge", g_uses_real=False)


def least_squares(a: float = 0.0, b: float = 1.0, c: float = 1.0) -> Loss:
    """The least-squares loss (Mao et al. 2017, LSGAN), with the paper's a-b-c coding::

        L_D = 1/2 E[(l_real - b)^2] + 1/2 E[(l_fake - a)^2]        L_G = 1/2 E[(l_fake - c)^2]

    Args:
      a: target for fakes in the discriminator term (0 by default).
      b: target for real data (1 by default).
      c: the value the generator wants the discriminator to believe for fakes (1 by default).
    """

    def d(real, fake):
        real, fake = _f32(real, fake)
        return 0.5 * jnp.mean((real - b) ** 2) + 0.5 * jnp.mean((fake - a) ** 2)

    def g(real, fake):
        del real
        (fake,) = _f32(fake)
        return 0.5 * jnp.mean((fake - c) ** 2)

    return Loss(d=d, g=g, name="least_squares", g_uses_real=False)


def relativistic_average() -> Loss:
    """The relativistic average standard loss, RaSGAN (Jolicoeur-Martineau 2019).

    The discriminator estimates how much more real a real sample is than the average fake::

        L_D = E[softplus(-(l_real - E l_fake))] + E[softplus(l_fake - E l_real)]
        L_G = E[softplus(-(l_fake - E l_real))] + E[softplus(l_real - E l_fake)]

    The batch means make this loss depend on the whole batch: the engine gathers logits across
    devices before calling it, so the result does not depend on the device count.

    The loss is invariant to adding a constant to every logit, so the gradient of D's output bias is
    zero up to rounding; Adam rescales that rounding noise to full-size steps and the bias wanders
    (harmlessly for the loss, but parameters then differ in their last bits between device counts).
    """

    def d(real, fake):
        real, fake = _f32(real, fake)
        return (jnp.mean(jax.nn.softplus(-(real - jnp.mean(fake))))
                + jnp.mean(jax.nn.softplus(fake - jnp.mean(real))))

    def g(real, fake):
        return d(fake, real)

    return Loss(d=d, g=g, name="relativistic_average", g_uses_real=True)


def custom(d: LossFn, g: LossFn, name: str = "custom", g_uses_real: bool = True) -> Loss:
    """Wraps a user's pair of functions of (real, fake) discriminator outputs as a :class:`Loss`."""
    if not (callable(d) and callable(g)):
        raise TypeError("custom(d, g): both the discriminator and the generator losses must be "
                        "callables of (real_logits, fake_logits) returning a scalar")
    return Loss(d=d, g=g, name=name, g_uses_real=g_uses_real)


# For command-line overrides (``--set loss=hinge``); code should call the factories directly.
BY_NAME = {f.__name__: f for f in (minimax, non_saturating, wasserstein, hinge, least_squares,
                               relativistic_average)}
