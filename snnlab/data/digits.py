"""Embedded handwritten digits: scikit-learn's ``load_digits`` (1,797 images of 8x8 pixels, 16
grey levels, 10 classes; UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998).

The images ship inside scikit-learn, so the book runs with no download. This module gives them a
fixed train/test split, normalisation with statistics of the training split, optional resizing to
the shapes the papers' models expect (e.g. 3x32x32 for CIFAR-shaped networks) and the papers'
standard augmentation for small images: pad-and-random-crop (pad 4 at 32x32, as in the CIFAR
recipes of SEW ResNet, OTTT and MLF) plus small random rotations.

Horizontal flips, part of the CIFAR recipe, are deliberately not used: a mirrored digit is a
different glyph or no digit at all (a flipped 2 resembles a 5, a flipped 3 an epsilon), so a flip
changes the label instead of preserving it. Natural-image classes (a car, a cat) are mirror
symmetric; handwriting is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from snnlab.checks import check_bool, check_in_range, check_non_negative

__all__ = [
    "DIGITS_NUM_CLASSES",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "digits_split",
    "digits_images",
    "resize_images",
    "DigitsAugment",
    "DigitsDataset",
]

DIGITS_NUM_CLASSES = 10
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.25


def digits_split(train: bool, *, seed: int = DIGITS_SPLIT_SEED,
                 test_fraction: float = DIGITS_TEST_FRACTION) -> np.ndarray:
    """Indices (into ``load_digits``) of the train or test split: a stratified split with a
    fixed seed, so every class keeps its share and the split never changes between runs."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_in_range("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    targets = load_digits().target
    train_idx, test_idx = train_test_split(
        np.arange(len(targets)), test_size=test_fraction, random_state=seed, stratify=targets
    )
    return np.sort(train_idx if train else test_idx)


def digits_images(train: bool | None = None, **split) -> tuple[np.ndarray, np.ndarray]:
    """The digit images as float32 in [0, 1] (grey level / 16), shape [N, 8, 8], and int64
    labels. ``train=None`` returns all 1,797 images in scikit-learn's order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    targets = bunch.target.astype(np.int64)
    if train is None:
        return images, targets
    idx = digits_split(train, **split)
    return images[idx], targets[idx]


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [N, C, h, w] images to [N, C, size, size] by bilinear interpolation with
    antialiasing (antialiasing only matters when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)


@dataclass
class DigitsAugment:
    """Pad-and-random-crop plus a small random rotation, applied to one [C, H, W] image whose
    background is 0 (so padding and rotation fill with background).

    ``pad`` pixels of zero padding, then a random HxW crop (the CIFAR recipe's "random crop 32,
    padding 4", Krizhevsky et al. 2012; used by SEW ResNet, OTTT and MLF); a rotation drawn
    uniformly from [-max_degrees, max_degrees]. No horizontal flip: see the module docstring.
    Uses torch's global generator, so ``torch.manual_seed`` (and DataLoader's per-worker seeding)
    makes it reproducible.
    """

    pad: int
    max_degrees: float = 10.0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        c, h, w = image.shape
        if self.max_degrees > 0:
            angle = (torch.rand(()).item() * 2 - 1) * math.radians(self.max_degrees)
            cos, sin = math.cos(angle), math.sin(angle)
            theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)
            grid = F.affine_grid(theta[None], [1, c, h, w], align_corners=False)
            image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=False)[0]
        if self.pad > 0:
            padded = F.pad(image, (self.pad,) * 4)
            top = int(torch.randint(0, 2 * self.pad + 1, ()).item())
            left = int(torch.randint(0, 2 * self.pad + 1, ()).item())
            image = padded[:, top:top + h, left:left + w]
        return image.contiguous()


class DigitsDataset(Dataset):
    """scikit-learn's digits as a torch data set of ``(x, y)``: x float32 [channels, size, size],
    y an int class index.

    Parameters:
        train: the training split (1,347 images) or the test split (450).
        size: side length; 8 is the native resolution, 32 matches CIFAR-shaped networks.
        channels: 1, or 3 to repeat the grey image into RGB for CIFAR-shaped networks.
        augment: pad-and-random-crop + small rotations; default: on for train, off for test.
        normalize: subtract the training split's mean and divide by its std (one number each,
            computed on the resized training images), as the CIFAR recipes do per channel.
        max_degrees: rotation range of the augmentation.
    """

    def __init__(self, train: bool, *, size: int = 8, channels: int = 1,
                 augment: bool | None = None, normalize: bool = True,
                 max_degrees: float = 10.0):
        if isinstance(size, bool) or not isinstance(size, int) or size < 4:
            raise ValueError(f"size must be an int >= 4 (8 is native, 32 CIFAR-shaped), got {size!r}.")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (repeated to RGB), got {channels!r}.")
        check_non_negative("max_degrees", max_degrees)
        self.train = bool(train)
        self.size, self.channels = size, channels
        images, targets = digits_images(train)
        self.images = resize_images(torch.from_numpy(images)[:, None], size)  # [N,1,S,S] in [0,1]
        self.targets = torch.from_numpy(targets)
        if normalize:
            train_images = resize_images(torch.from_numpy(digits_images(True)[0])[:, None], size)
            self.mean = float(train_images.mean())
            self.std = float(train_images.std())
        else:
            self.mean, self.std = 0.0, 1.0
        augment = self.train if check_bool("augment", augment, allow_none=True) is None else augment
        check_bool("normalize", normalize)
        # pad 4 at 32x32 (the CIFAR recipe), scaled with the image side: 1 pixel at 8x8.
        self.augment = DigitsAugment(pad=max(1, size // 8), max_degrees=max_degrees) if augment else None
        self.classes = [str(d) for d in range(DIGITS_NUM_CLASSES)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.augment is not None:
            image = self.augment(image)
        image = (image - self.mean) / self.std
        if self.channels == 3:
            image = image.expand(3, -1, -1)
        return image.contiguous(), int(self.targets[index])
