"""Networks trained elsewhere, in jaxgan: NVIDIA's StyleGAN2-ADA (:mod:`jaxgan.interop.nvidia`,
:mod:`jaxgan.interop.nvidia_pickle`)."""
