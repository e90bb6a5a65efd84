"""The settings of one LIME neighbourhood, grouped in one frozen (hashable) object with each default written once."""

from __future__ import annotations

from dataclasses import dataclass

from lime_ext.engine import HideColor, check_hide_color
from lime_ext.sampling import DEFAULT_SAMPLING, check_sampling
from lime_ext.segmentation import DEFAULT_SEGMENTER, SEGMENTERS

AUTO = "auto"  # num_samples chosen by the data (see lime_ext.adaptive)
# reduced-precision forwards with an exact correction (lime_ext.multifidelity)
PROXIES = ("none", "bf16", "fp16", AUTO)
DEFAULT_EXACT_SAMPLES = 200  # fp32 forwards that correct a proxy fit (measured: docs/cheap-explanations.md)


@dataclass(frozen=True)
class LimeSettings:
    """What decides a neighbourhood besides the image and the seed (and so the key under which one is shared).

    ``num_samples`` perturbed images N (row 0 is the image itself), or ``'auto'``: draw in rounds until the
    top ``top_k`` superpixels are settled (:mod:`lime_ext.adaptive`), at most ``max_samples``; ``segmenter`` one of
    :data:`~lime_ext.segmentation.SEGMENTERS` with its default parameters; ``hide_color`` what a switched-off
    superpixel shows (0 = black, a grey level, an RGB triple in 0..255, or 'mean'); ``kernel_width`` of LIME's
    exponential kernel on the cosine distance to the image; ``sampling`` 'iid' (lime's) or 'paired'
    (antithetic masks z, 1 - z; :func:`~lime_ext.sampling.sample_binary_masks`); ``proxy`` 'none', 'bf16', 'fp16'
    or 'auto': predict the samples in that reduced precision and correct the fit with the first
    ``exact_samples`` samples predicted in fp32 as well (:mod:`lime_ext.multifidelity`; 'auto' uses a proxy only
    where this machine runs it faster).
    """

    num_samples: int | str = 1000
    segmenter: str = DEFAULT_SEGMENTER
    hide_color: HideColor = 0
    kernel_width: float = 0.25
    max_samples: int = 4000
    top_k: int = 5
    sampling: str = DEFAULT_SAMPLING
    proxy: str = "none"
    exact_samples: int = DEFAULT_EXACT_SAMPLES

    def __post_init__(self) -> None:
        if self.num_samples != AUTO and not (isinstance(self.num_samples, int) and self.num_samples >= 2):
            raise ValueError(
                f"num_samples must be 'auto' or at least 2 (the image itself and one perturbation), got "
                f"{self.num_samples!r}"
            )
        if int(self.max_samples) < 2 or int(self.top_k) < 1:
            raise ValueError(
                f"max_samples must be at least 2 and top_k at least 1, got {self.max_samples}, {self.top_k}"
            )
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"unknown segmenter {self.segmenter!r}; choose one of {', '.join(SEGMENTERS)}")
        if not self.kernel_width > 0:
            raise ValueError(f"kernel_width must be positive, got {self.kernel_width}")
        check_sampling(self.sampling)
        if self.proxy not in PROXIES:
            raise ValueError(f"unknown proxy {self.proxy!r}; choose one of {', '.join(PROXIES)}")
        if not (isinstance(self.exact_samples, int) and self.exact_samples >= 2):
            raise ValueError(f"exact_samples must be an integer of at least 2, got {self.exact_samples!r}")
        if isinstance(self.hide_color, list):  # keep the object hashable: it is a cache key
            object.__setattr__(self, "hide_color", tuple(self.hide_color))
        check_hide_color(self.hide_color)

    @property
    def adaptive(self) -> bool:
        """True when the number of samples is chosen by the stopping test (``num_samples='auto'``)."""
        return self.num_samples == AUTO
