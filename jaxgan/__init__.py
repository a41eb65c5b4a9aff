"""jaxgan: generative adversarial networks as pure JAX functions."""
__version__ = "0.1.0"
