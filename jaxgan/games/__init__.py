"""Games beyond the standard GAN."""
from jaxgan.games.cyclegan import CycleGAN, cyclegan_least_squares, linear_decay, pool_query
from jaxgan.games.srgan import SRGAN, digit_features
from jaxgan.games.stylegan2 import StyleGAN2, stylegan2, stylegan2_config_fields
