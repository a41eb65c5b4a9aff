"""jaxgan: generative adversarial networks as pure JAX functions, with one compiled, sharded step.

    from jaxgan import GAN, TrainStep, losses, penalties, sharding
"""
from jaxgan import losses, penalties, sharding
from jaxgan.game import GAN, Game, StepOut
from jaxgan.net import Net, as_net
from jaxgan.state import GANState
from jaxgan.step import TrainStep

__version__ = "0.1.0"

__all__ = ["GAN", "Game", "GANState", "Net", "StepOut", "TrainStep", "as_net", "losses", "penalties",
           "sharding"]
