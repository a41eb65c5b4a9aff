"""Networks trained elsewhere, in jaxgan: NVIDIA's StyleGAN2-ADA.

* :mod:`jaxgan.interop.nvidia`: its networks' init kwargs and state dicts as jaxgan modules and variables;
* :mod:`jaxgan.interop.nvidia_pickle`: its network pickles read without running their code (no torch);
* :mod:`jaxgan.interop.stylegan2_import`: ``jaxgan import-stylegan2`` and the ``init_from`` config field;
* :mod:`jaxgan.interop.nvidia_check`: jaxgan against NVIDIA's outputs, row by row (tests, tools).
"""
