"""Is ``num_samples='auto'`` calibrated on photos? Its stopping rule predicts the top-5 Jaccard index between two
seeds from one fit (HC3 covariance, two draws from N(b, C): :mod:`lime_ext.adaptive`); this measures the index
between seeds and sets the two side by side.

Per photo (EfficientNet-Lite0, quickshift segments fixed across seeds, LIME's kernel and ridge, the fp32 top-1
class), for each of ``--seeds`` seeds one neighbourhood is drawn through the library (the same sampler, fit and
covariance that ``auto`` uses); for each budget N its first N samples give a fit (the prefix property: the masks of
N are the first N of the largest budget's). Then, per photo and N:

- predicted: the mean over seeds of the rule's expected top-5 Jaccard index (what ``auto`` compares with 0.7);
- measured: the mean top-5 Jaccard index over every pair of seeds.

The table gives the mean over photos of each, and of predicted - measured, with a bootstrap 95% interval over
photos. The rule is calibrated where the difference is within 0.05.

Usage (the table in docs/cheap-explanations.md):
    python bench/bench_auto_calibration.py --images /work/shared/data/imagenet-sample --limit 7 --sample-photos
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnxai.benchmark.statistics import bootstrap_ci  # noqa: E402
from cnnxai.images import SAMPLE_IMAGES, find_images, load_image, sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.stability.measures import top_k_stability  # noqa: E402
from cnnxai.zoo import load_model  # noqa: E402
from lime_ext import CamLimeExplainer, LimeSettings, TorchClassifier  # noqa: E402
from lime_ext.adaptive import SETTLED_JACCARD, expected_top_k_jaccard  # noqa: E402

TOP = 5


def photo(explainer: CamLimeExplainer, frame: np.ndarray, budgets: list[int], seeds: int) -> dict:
    """Predicted and measured top-5 Jaccard per budget for one photo."""
    segments = explainer.segment(frame, 0)
    target = None
    fits: dict[int, list[np.ndarray]] = {n: [] for n in budgets}
    predicted: dict[int, list[float]] = {n: [] for n in budgets}
    for seed in range(seeds):
        sampler = explainer.sampler(frame, seed, segments)
        for n in budgets:
            neighbourhood = sampler.neighbourhood(n, explainer.settings.kernel_width)
            if target is None:
                target = int(np.argmax(neighbourhood.predictions[0]))
            explained = neighbourhood.fit(labels=[target])._label(target)
            covariance = neighbourhood.attribution_covariance(explained)
            fits[n].append(explained.attributions)
            predicted[n].append(expected_top_k_jaccard(explained.attributions, covariance, TOP))
    result = {"superpixels": int(segments.max()) + 1, "target": target}
    for n in budgets:
        result[n] = (float(np.mean(predicted[n])), top_k_stability(fits[n], TOP))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=None, help="a folder of photos (recursively)")
    parser.add_argument("--limit", type=int, default=7, help="the first N photos of --images")
    parser.add_argument("--sample-photos", action="store_true", help="also the built-in sample photos")
    parser.add_argument("--budgets", default="150,338,761", help="N, comma-separated (auto's rounds by default)")
    parser.add_argument("--seeds", type=int, default=10, help="neighbourhoods per photo")
    args = parser.parse_args()
    budgets = sorted(int(n) for n in args.budgets.split(","))
    photos = [(p.stem, lambda p=p: load_image(p)) for p in (find_images(args.images)[: args.limit] if args.images else [])]
    if args.sample_photos:
        photos += [(name, lambda name=name: sample_image(name)) for name in SAMPLE_IMAGES]
    model, _ = load_model("efficientnet_lite0")
    classifier = TorchClassifier(model, backend="auto")  # ONNX Runtime on a CPU where installed
    explainer = CamLimeExplainer(classifier, LimeSettings(num_samples=max(budgets), segmenter="quickshift"))
    rows = []
    for name, load in photos:
        start = time.perf_counter()
        record = photo(explainer, to_model_frame(load()), budgets, args.seeds)
        rows.append(record)
        cells = "  ".join(f"N={n}: {record[n][0]:.3f}/{record[n][1]:.3f}" for n in budgets)
        print(f"{name} (M={record['superpixels']}): predicted/measured {cells}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    print(f"\n{len(rows)} photos, {args.seeds} seeds each ({args.seeds * (args.seeds - 1) // 2} pairs); "
          f"mean over photos [bootstrap 95% interval]; auto stops at a predicted {SETTLED_JACCARD}\n")
    print("| N | predicted | measured | predicted - measured |")
    print("|---:|---:|---:|---:|")
    for n in budgets:
        pred = np.array([r[n][0] for r in rows])
        meas = np.array([r[n][1] for r in rows])
        cells = []
        for values in (pred, meas, pred - meas):
            low, high = bootstrap_ci(values, seed=0)
            cells.append(f"{values.mean():+.3f} [{low:+.3f}, {high:+.3f}]" if values is not pred and values is not meas
                         else f"{values.mean():.3f} [{low:.3f}, {high:.3f}]")  # fmt: skip
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
