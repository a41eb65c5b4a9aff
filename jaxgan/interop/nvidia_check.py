"""jaxgan's StyleGAN2 against outputs of NVIDIA's code: the transplant comparison, row by row.

Given NVIDIA's state dicts and init kwargs (numpy) and the reference outputs that
``tools/stylegan2_nvidia_reference.py`` computes with NVIDIA's own networks, :func:`compare`
transplants the weights (:mod:`jaxgan.interop.nvidia`), computes the same quantities with jaxgan's
networks, penalties and game functions, and returns the largest relative difference of each row:

    rel(a, ref) = max |a - ref| / max |ref|     (per array; a gradient: over all its parameters)

Used by tests/test_stylegan2_nvidia.py (frozen fixture) and by the tool's ``--compare`` (live).
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import penalties
from jaxgan.games.stylegan2 import path_length_penalty, path_lengths
from jaxgan.interop import nvidia
from jaxgan.nets.stylegan2 import StyleGAN2Generator


def rel(a, ref) -> float:
    """max |a - ref| / max |ref| (0 when both are 0)."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    scale = np.max(np.abs(ref)) if ref.size else 0.0
    err = np.max(np.abs(a - ref)) if ref.size else 0.0
    return float(err / scale) if scale > 0 else float(err)


def _tree_rel(a, ref) -> float:
    """rel over a whole gradient (every parameter's entries together): the gradient's own scale.

    Per parameter would divide by leaves whose true value is 0 (R1's gradient with respect to a
    bias of a piecewise-linear layer is zero almost everywhere; both sides hold rounding noise there).
    """
    flat = lambda t: np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(t)])
    jax.tree.map(lambda x, y: None, a, ref)  # the same structure, or an error naming the difference
    return rel(flat(a), flat(ref))


def compute(g_state: Mapping, g_kwargs: Mapping, d_state: Mapping, d_kwargs: Mapping, ref: Mapping, *,
            dtype=None):
    """jaxgan's value of every row (``ref`` supplies the inputs: z, labels, real images, pl_y).

    Args:
      g_state, g_kwargs, d_state, d_kwargs: NVIDIA's state dicts (numpy) and init kwargs.
      ref: the inputs (and NVIDIA's outputs, unused here).
      dtype: None (float32, as the networks are built), or a dtype for the networks' compute dtype,
        parameters and inputs alike. A float64 run also needs ``jax_enable_x64`` and the quantities
        the networks keep in float32 for mixed precision (styles, mapping, logits, penalties) lifted:
        ``tools/stylegan2_nvidia_reference.py --float64`` does both.

    Returns:
      (outputs, gradients, (generator, discriminator)): ``{row: array}``, ``{row: params tree}`` and
      the jaxgan modules built from the kwargs. Everything runs as one jitted function.
    """
    g, _ = nvidia.generator_from_kwargs(g_kwargs)
    d = nvidia.discriminator_from_kwargs(d_kwargs)
    cast = (lambda x: jnp.asarray(x)) if dtype is None else (
        lambda x: jnp.asarray(x, dtype) if np.issubdtype(np.asarray(x).dtype, np.floating) else jnp.asarray(x))
    if dtype is not None:
        g, d = g.clone(dtype=dtype), d.clone(dtype=dtype)
    gv = jax.tree.map(cast, nvidia.generator_variables(g, g_state))
    dv = jax.tree.map(cast, nvidia.discriminator_variables(d, d_state))
    labels = jnp.asarray(ref["labels"]) if g.num_classes is not None else None
    inputs = (cast(ref["z"]), labels, cast(ref["real"]), cast(ref["pl_y"]))
    rows = jax.jit(lambda gv, dv, inputs: _rows(g, d, gv, dv, *inputs))
    out, grads = rows(gv, dv, inputs)
    return out, grads, (g, d)


def _rows(g, d, gv, dv, z, labels, real, y):
    out: dict = {}
    G = lambda params, **kw: g.apply({**gv, "params": params}, z, labels, **kw)
    D = lambda params, x: d.apply({"params": params}, x, labels)

    out["ws_psi1"] = g.apply(gv, z, labels, method=StyleGAN2Generator.mapping_ws)
    out["img_psi1_const"] = G(gv["params"], noise_mode="const")
    out["img_psi07_none"] = G(gv["params"], psi=0.7, noise_mode="none")
    out["img_psi07_cut2_const"] = G(gv["params"], psi=0.7, truncation_cutoff=2, noise_mode="const")
    out["d_real"] = D(dv["params"], real)

    def g_loss(gp):
        logits = D(dv["params"], G(gp, noise_mode="const"))
        return jnp.mean(jax.nn.softplus(-logits)), logits

    (out["g_loss"], out["d_fake"]), grad_g = jax.value_and_grad(g_loss, has_aux=True)(gv["params"])
    fake = G(gv["params"], noise_mode="const")

    def d_loss(dp):
        return jnp.mean(jax.nn.softplus(D(dp, fake))) + jnp.mean(jax.nn.softplus(-D(dp, real)))

    out["d_loss"], grad_d = jax.value_and_grad(d_loss)(dv["params"])
    out["r1"], grad_r1 = jax.value_and_grad(lambda dp: penalties.r1(D, dp, real))(dv["params"])
    grads = {"grad_g": grad_g, "grad_d": grad_d, "grad_r1": grad_r1}
    for pl_mean0 in (0.0, 0.5):
        tag = f"pl{pl_mean0:g}"

        def pl(gp):
            variables = {**gv, "params": gp}
            ws = g.apply(variables, z, labels, method=StyleGAN2Generator.mapping_ws)
            synthesis = lambda w: g.apply(variables, w, None, "const", method=StyleGAN2Generator.synthesis)
            lengths = path_lengths(synthesis, ws, y=y)
            penalty, new_mean, _ = path_length_penalty(lengths, jnp.float32(pl_mean0), 0.01)
            return penalty, (lengths, new_mean)

        (out[f"{tag}/penalty"], (out[f"{tag}/lengths"], out[f"{tag}/pl_mean"])), grads[f"grad_{tag}"] = \
            jax.value_and_grad(pl, has_aux=True)(gv["params"])
    return out, grads


def _ref_grads(ref: Mapping, prefix: str, net, to_vars) -> dict:
    """NVIDIA's gradient ``prefix/<name>`` entries in jaxgan's layout, in their own dtype.

    The transplant works in float32; it maps entry indices instead of values (a permutation: exact
    for a float64 reference too), then gathers.
    """
    sd = {k[len(prefix) + 1:]: np.asarray(v) for k, v in ref.items() if k.startswith(prefix + "/")}
    flat = np.concatenate([np.ravel(v) for v in sd.values()])
    if flat.size >= 2 ** 24:
        raise ValueError(f"{flat.size} gradient entries: indices above 2^24 are not exact in float32")
    offsets = np.cumsum([0] + [v.size for v in sd.values()])
    index = {k: (np.arange(v.size) + o).reshape(v.shape).astype(np.float32) for (k, v), o in zip(sd.items(), offsets)}
    where = to_vars(net, index, with_buffers=False)["params"]
    return jax.tree.map(lambda i: flat[np.asarray(i, np.int64)], where)


def differences(out: Mapping, grads: Mapping, nets, ref: Mapping) -> dict[str, float]:
    """``{row: largest relative difference}`` of :func:`compute`'s results against the outputs ``ref``.

    Args:
      out, grads, nets: :func:`compute`'s three results.
      ref: NVIDIA's outputs (numpy, any float dtype), named as the tool writes them.
    """
    g, d = nets
    rows = {k: rel(v, ref[k]) for k, v in out.items()}
    for name, ours in grads.items():
        if name in ("grad_g",) or name.startswith("grad_pl"):
            theirs = _ref_grads(ref, name, g, nvidia.generator_variables)
        else:
            theirs = _ref_grads(ref, name, d, nvidia.discriminator_variables)
        rows[name] = _tree_rel(ours, theirs)
    return rows


def compare(g_state: Mapping, g_kwargs: Mapping, d_state: Mapping, d_kwargs: Mapping,
            ref: Mapping) -> dict[str, float]:
    """``{row: largest relative difference}`` of jaxgan against NVIDIA's reference outputs ``ref``."""
    return differences(*compute(g_state, g_kwargs, d_state, d_kwargs, ref), ref)


__all__ = ("compare", "compute", "differences", "rel")
