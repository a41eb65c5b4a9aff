"""Stacked MNIST: three MNIST digits as the three channels of one image, 1,000 modes.

The mode-collapse benchmark of Metz et al., 2017 ("Unrolled Generative Adversarial Networks"), used
by VEEGAN (Srivastava et al., 2017) and PacGAN (Lin et al., 2018): each example stacks three
independently drawn MNIST digits as the R, G and B channels of a 28x28x3 image; its label (its mode)
is ``100 d0 + 10 d1 + d2`` for the digits ``d0, d1, d2`` of channels 0, 1, 2, so there are 1,000
modes. ``jaxgan.eval.stacked_mnist`` counts the modes of generated samples with a digit classifier.

The stream is infinite and example ``j`` is a pure function of ``(seed, j)``: channel ``c`` holds
MNIST image ``floor(u_c N)`` (of the ``N`` images of the split, in file order), where ``u_0, u_1,
u_2`` are the three :func:`jaxgan.data.toy.counter_uniforms` of example ``j`` (SplitMix64 outputs
``3j+1 .. 3j+3`` of the seed's stream). So every digit is drawn uniformly from the split, the three
channels independently, and example ``j`` is the same whichever batch it lands in. (The digits are
uniform over images, not over classes, so the modes follow MNIST's slightly uneven class frequencies.)

The usual image options apply after stacking: ``resolution=32`` gives 32x32x3 (PIL bilinear), as
some papers use; ``crop`` is accepted for uniformity (MNIST is square). ``channels`` may only be 3
or None: converting to grey would mix the three digits.
"""
from __future__ import annotations

import numpy as np

from jaxgan.data.arrays import check_labels
from jaxgan.data.base import DataInfo, check_range, check_seed
from jaxgan.data.idx import find_mnist_files, read_idx
from jaxgan.data.images import ImageOptions, as_nhwc, stored_pixels, uint8_to_unit
from jaxgan.data.toy import counter_uniforms

NUM_MODES = 1000


class StackedMNIST:
    """An infinite stream of Stacked MNIST images (see the module docstring).

    Args:
      digits: (N, H, W) or (N, H, W, 1) uint8 grey digit images (MNIST: 28x28).
      labels: (N,) their digit classes in [0, 10).
      seed: data seed (non-negative integer).
      name: for logs.
      options: image options applied to the stacked (H, W, 3) image; ``channels`` must be 3 or None.

    Example:
      >>> src = StackedMNIST(np.zeros((5, 28, 28), np.uint8), labels=[0, 1, 2, 3, 4], seed=0)
      >>> b = src.get_batch(0, 2)
      >>> b['x'].shape, src.info.num_classes
      ((2, 28, 28, 3), 1000)
    """

    def __init__(self, digits, labels, *, seed: int, name: str = "stacked_mnist",
                 options: ImageOptions = ImageOptions()):
        digits = as_nhwc(np.asarray(digits), f"{name}: digits")
        if digits.dtype != np.uint8 or digits.shape[-1] != 1:
            raise ValueError(f"{name}: digits must be uint8 grey images (N, H, W[, 1]), got {digits.dtype} "
                             f"{digits.shape}")
        if len(digits) == 0:
            raise ValueError(f"{name}: needs at least one digit image")
        if options.channels not in (None, 3):
            raise ValueError(f"{name}: channels={options.channels} would mix the three stacked digits; "
                             f"Stacked MNIST is RGB: use channels=3 or leave it unset")
        self.labels, _ = check_labels(labels, len(digits), f"{name}: labels", num_classes=10)
        self.digits = digits[..., 0]
        self.seed = check_seed(seed)
        self.options = options
        self.info = DataInfo(shape=options.output_shape(*digits.shape[1:3], 3), num_classes=NUM_MODES,
                             kind="image", num_examples=None, name=name)

    @property
    def num_digits(self) -> int:
        """Size of the underlying digit set."""
        return len(self.digits)

    def digit_indices(self, start: int, size: int) -> np.ndarray:
        """(size, 3) int64: the underlying digit image in each channel of examples ``start .. start+size-1``."""
        start, size = check_range(start, size)
        u = counter_uniforms(self.seed, np.arange(start, start + size, dtype=np.uint64), 3)
        return np.minimum((u * self.num_digits).astype(np.int64), self.num_digits - 1)

    def get_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        """Examples ``start .. start+size-1``: ``{'x': (size, H, W, 3) float32 in [-1, 1], 'label': (size,)
        int32 = 100 d0 + 10 d1 + d2}``."""
        batch = self.get_stored_batch(start, size)
        return {**batch, "x": uint8_to_unit(batch["x"])}

    def get_stored_batch(self, start: int, size: int) -> dict[str, np.ndarray]:
        """:meth:`get_batch` with the images left uint8 in [0, 255]."""
        idx = self.digit_indices(start, size)
        stacked = np.moveaxis(self.digits[idx], 1, -1)  # (size, 3, H, W) -> (size, H, W, 3)
        digit = self.labels[idx]
        label = digit[:, 0] * 100 + digit[:, 1] * 10 + digit[:, 2]
        return {"x": stored_pixels(stacked, self.options), "label": label.astype(np.int32)}


def stacked_mnist(dir, seed: int, split: str = "train", resolution: int | None = None,  # noqa: A002 (config key)
                  channels: int | None = None, crop: str | None = None) -> StackedMNIST:
    """Stacked MNIST over the MNIST IDX files in ``dir`` (split ``'train'`` or ``'test'``).

    Example:
      >>> src = stacked_mnist('../shared/data/mnist', seed=0, split='test')  # doctest: +SKIP
      >>> src.info  # doctest: +SKIP
      DataInfo(shape=(28, 28, 3), num_classes=1000, kind='image', num_examples=None, name='stacked_mnist_test')
    """
    images, labels = find_mnist_files(dir, split)
    return StackedMNIST(read_idx(images), read_idx(labels), seed=seed,
                        name=f"stacked_mnist_{'test' if split == 't10k' else split}",
                        options=ImageOptions(resolution=resolution, channels=channels, crop=crop))
