"""What buys fp32 LIME@1000's explanation cheaply: paired masks and reduced-precision forwards with an exact correction.

The pooled protocol (issue 24), per image (EfficientNet-Lite0, quickshift, LIME's kernel and ridge, target = the
fp32 top-1 class):

- One pool of antithetic mask pairs (z, 1 - z) is drawn once. The *reference* half (``--reference-pairs``) is
  predicted in fp32 only; the *draw* half (``--draw-pairs``) in every precision: torch fp32, torch bf16 autocast
  and, where installed, OpenVINO bf16. The engines run interleaved in chunks, so the per-forward seconds of each
  come from the same minutes of the shared CPU (OpenVINO f32 is timed on part of the draw half only: its outputs
  equal torch fp32's to 1e-6, so the exact fits use torch's).
- The reference is fp32 LIME on the reference half (its HC3 covariance estimates its own error).
- Every estimator draws ``--repeats`` designs from the draw half, so repeats cost no forward: ``iid`` designs
  take one random member of each of N-1 random pairs (marginally i.i.d. masks), ``paired`` designs take whole
  pairs. Two successive repeats use disjoint pairs where the half is large enough, for the stability measure.
  Estimators: fp32 LIME (``lime``); the multi-fidelity estimator of :mod:`lime_ext.multifidelity` with a proxy
  (``mf-<proxy>-n<n>``: N proxy forwards, the first n also in fp32); the proxy alone (``proxy-only``, biased).
- Measures, per estimator and budget N, averaged over repeats, then over images with bootstrap 95% intervals:
  the relative RMS error to the reference, corrected for the reference's own error (mean ||b - ref||^2 minus
  the trace of the reference's covariance, over ||ref||^2); the top-5 Jaccard with the reference
  (agreement); the top-5 Jaccard between disjoint repeats (stability, where the half allows disjoint repeats);
  the superpixel deletion AUC of the fp32 model (11 steps, first repeat); and a bias check: the mean over
  repeats of (estimator - fp32 LIME on the same design), in units of the standard error of the estimator's
  mean (RMS over superpixels; repeats drawn from one finite half are not independent, so this SE is rough).
- The cost of an estimator counts every forward of every precision: N t_proxy + n t_exact, against today's
  torch-eager fp32 LIME@1000, 1000 t_fp32; "to match" is the cheapest budget whose squared distance to the reference
  over fp32 LIME@1000's (iid) has a geometric mean over images of at most 1 (per-image ratios: one saturated
  photo would otherwise decide a mean) and whose mean top-5 agreement is at least LIME@1000's; recomputed in
  every bootstrap resample of images.

Usage (the docs' tables and figure: docs/cheap-explanations.md):
    python bench/bench_estimators.py --images /work/shared/data/imagenet-sample --limit 30 --sample-photos \\
        --records bench/results/estimators.jsonl
    python bench/bench_estimators.py --summarise bench/results/estimators.jsonl --figure docs/figures/estimators.png
Per-image records are appended as they finish (a run can be resumed: finished images are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnxai.images import find_images, load_image, sample_image  # noqa: E402
from cnnxai.preprocess import to_model_frame  # noqa: E402
from cnnxai.zoo import load_model  # noqa: E402
from lime_ext import PerturbationEngine, TorchClassifier, segment_image  # noqa: E402
from lime_ext.adaptive import ranking, ridge_covariance  # noqa: E402
from lime_ext.backends import installed  # noqa: E402
from lime_ext.multifidelity import head_penalty_scale  # noqa: E402
from lime_ext.sampling import explanation_rng, sample_binary_masks  # noqa: E402
from lime_ext.surrogate import cosine_distances_to_first, exponential_kernel  # noqa: E402

BUDGETS = (200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000)  # above 1000: paired designs only
EXACT = (50, 100, 200)
TOP = 5
CHUNK = 200  # rows per engine turn in the interleaved prediction


def jaccard(a: np.ndarray, b: np.ndarray, k: int = TOP) -> float:
    first, second = set(ranking(a)[:k].tolist()), set(ranking(b)[:k].tolist())
    return len(first & second) / len(first | second)


def ridge(masks: np.ndarray, targets: np.ndarray, head: int | None = None) -> np.ndarray:
    """LIME's fit (lime_image's kernel, Ridge(alpha=1) with intercept, every superpixel) of each column of
    ``targets`` (N,T) on ``masks`` (N,M): coefficients (T,M). One solve for all targets (the fit is linear in y).
    ``head``: fit the first ``head`` rows only, with the penalty the multi-fidelity estimator gives them
    (:func:`lime_ext.multifidelity.head_penalty_scale`)."""
    weights = exponential_kernel(cosine_distances_to_first(masks))
    alpha = 1.0 if head is None else head_penalty_scale(weights, head)
    rows = slice(None) if head is None else slice(head)
    model = Ridge(alpha=alpha).fit(masks[rows].astype(np.float64), targets[rows], sample_weight=weights[rows])
    return np.atleast_2d(model.coef_)


def predict_interleaved(jobs: dict[str, tuple[PerturbationEngine, np.ndarray]]) -> tuple[dict, dict]:
    """Each engine's outputs on its masks, the engines taking turns chunk by chunk; (outputs, seconds/forward)."""
    outputs = {name: [] for name in jobs}
    seconds = dict.fromkeys(jobs, 0.0)
    for engine, masks in jobs.values():  # warm up (OpenVINO compiles its model on first use)
        engine.predict(masks[: engine.batch_size])
    longest = max(len(masks) for _, masks in jobs.values())
    for start in range(0, longest, CHUNK):
        for name, (engine, masks) in jobs.items():
            if start < len(masks):
                begin = time.perf_counter()
                outputs[name].append(engine.predict(masks[start : start + CHUNK]))
                seconds[name] += time.perf_counter() - begin
    return (
        {name: np.concatenate(parts) for name, parts in outputs.items()},
        {name: seconds[name] / len(jobs[name][1]) for name in jobs},
    )


def deletion_auc(engine: PerturbationEngine, attributions: np.ndarray, target: int, steps: int = 11) -> float:
    """Mean fp32 probability of ``target`` as the most supportive superpixels are hidden, 0..100% in ``steps``."""
    order = ranking(attributions)
    masks = np.ones((steps, len(order)), dtype=np.uint8)
    for i, fraction in enumerate(np.linspace(0, 1, steps)):
        masks[i, order[: int(round(fraction * len(order)))]] = 0
    return float(engine.predict(masks)[:, target].mean())


def designs(pool: np.ndarray, sampling: str, budget: int, repeats: int, rng: np.random.Generator):
    """Row indices (into the draw half's pair list, (P,2)) of ``repeats`` designs of ``budget`` rows: the all-ones
    row first (index -1), then pairs (paired: whole pairs, the first pair being all-ones/all-zeros) or one random
    member per pair (iid). Repeats 2k and 2k+1 use disjoint pairs when 2 x pairs needed <= P; yields
    (rows, disjoint_with_previous)."""
    pairs = len(pool)
    needed = budget // 2 - 1 if sampling == "paired" else budget - 1
    disjoint = 2 * needed <= pairs
    for r in range(repeats):
        if r % 2 == 0 or not disjoint:
            order = rng.permutation(pairs)
        chosen = order[needed:2 * needed] if (r % 2 and disjoint) else order[:needed]  # fmt: skip
        if sampling == "paired":
            rows = np.concatenate([[-1, -2], pool[chosen].ravel()])
        else:
            rows = np.concatenate([[-1], pool[chosen, rng.integers(0, 2, needed)]])
        yield rows, bool(r % 2 and disjoint)


def run_image(name: str, image: np.ndarray, model, args, backends: dict) -> dict:
    """The per-image record: seconds per forward, and each estimator's measures per budget."""
    start = time.perf_counter()
    segments = segment_image(image, "quickshift", seed=0)
    segmentation_s = time.perf_counter() - start
    num = int(segments.max()) + 1
    engines = {
        key: PerturbationEngine(image, segments, clf, 0, args.batch_size) for key, clf in backends.items()
    }
    masks = sample_binary_masks(
        2 * (1 + args.reference_pairs + args.draw_pairs), num, explanation_rng(args.seed, image), "paired"
    )
    ones, zeros = masks[0], masks[1]
    reference_rows = masks[2 : 2 + 2 * args.reference_pairs]
    draw_rows = masks[2 + 2 * args.reference_pairs :]
    # the fp32 outputs come from the fastest exact engine (OpenVINO f32, held to torch's within 1e-4 by the
    # classifier); the engines that are only timed predict the first --timed-rows draw rows
    exact_key = "ov-fp32" if "ov-fp32" in engines else "fp32"
    jobs = {exact_key: (engines[exact_key], np.concatenate([masks[:2], reference_rows, draw_rows]))}
    for key in engines:
        if key in args.proxies:
            jobs[key] = (engines[key], np.concatenate([masks[:2], draw_rows]))
        elif key != exact_key:
            jobs[key] = (engines[key], draw_rows[: args.timed_rows])
    outputs, per_forward = predict_interleaved(jobs)
    target = int(np.argmax(outputs[exact_key][0]))
    fp32 = outputs[exact_key][:, target].astype(np.float64)
    exact_ref = np.concatenate([fp32[:2], fp32[2 : 2 + 2 * args.reference_pairs]])
    reference_design = np.concatenate([masks[:2], reference_rows])
    reference = ridge(reference_design, exact_ref[:, None])[0]
    weights = exponential_kernel(cosine_distances_to_first(reference_design))
    reference_cov = ridge_covariance(reference_design.astype(np.float64), exact_ref, weights, reference, 1.0)
    reference_var = float(np.trace(reference_cov))
    proxies = [key for key in outputs if key in args.proxies]
    # the draw half's targets, rows -1 (all ones) and -2 (all zeros) at the end for the designs' indices
    draw_targets = {"fp32": np.concatenate([fp32[2 + 2 * args.reference_pairs :], fp32[1:2], fp32[:1]])}
    for key in proxies:
        values = outputs[key][:, target].astype(np.float64)
        draw_targets[key] = np.concatenate([values[2:], values[1:2], values[:1]])
    draw_masks = np.concatenate([draw_rows, zeros[None], ones[None]])
    pool = np.arange(len(draw_rows)).reshape(-1, 2)
    rng = np.random.default_rng([args.seed, 1])
    keys = ["fp32", *proxies]
    norm = float(reference @ reference)
    results: dict[str, dict[int, dict]] = {}
    for sampling in ("iid", "paired"):
        for budget in BUDGETS:
            if (budget // 2 - 1 if sampling == "paired" else budget - 1) > len(pool):
                continue  # the draw half is too small for this budget
            fits: dict[str, list[np.ndarray]] = {}
            disjoint_pairs: list[int] = []
            for r, (rows, disjoint) in enumerate(designs(pool, sampling, budget, args.repeats, rng)):
                z = draw_masks[rows]
                y = np.stack([draw_targets[key][rows] for key in keys], axis=1)
                full = ridge(z, y)
                fits.setdefault(f"lime-{sampling}", []).append(full[0])
                for p, key in enumerate(proxies, start=1):
                    fits.setdefault(f"proxy-only-{key}-{sampling}", []).append(full[p])
                    for n in EXACT:
                        if n < budget:
                            head = ridge(z, y, n)
                            fits.setdefault(f"mf-{key}-n{n}-{sampling}", []).append(
                                full[p] + head[0] - head[p]
                            )
                if disjoint:
                    disjoint_pairs.append(r)
            lime_fits = np.array(fits[f"lime-{sampling}"])
            for estimator, values in fits.items():
                values = np.array(values)
                errors = ((values - reference) ** 2).sum(axis=1)
                difference = values - lime_fits
                spread = values.std(axis=0, ddof=1) / np.sqrt(len(values))  # the estimator's own
                mean_difference = difference.mean(axis=0)
                bias_z = float(np.sqrt(np.mean((mean_difference / np.maximum(spread, 1e-12)) ** 2)))
                record = {
                    "error2": float(errors.mean() - reference_var) / norm,
                    "agreement": float(np.mean([jaccard(v, reference) for v in values])),
                    "stability": float(np.mean([jaccard(values[r], values[r - 1]) for r in disjoint_pairs]))
                    if disjoint_pairs else None,
                    "bias_rms_z": bias_z if not estimator.startswith("lime") else None,
                    "bias_relative": float(np.linalg.norm(mean_difference) / np.sqrt(norm)),
                }  # fmt: skip
                if budget in (BUDGETS[0], 500, 1000) and estimator in (
                    "lime-iid",
                    f"mf-{proxies[-1]}-n100-paired",
                ):
                    record["deletion_auc"] = deletion_auc(engines["fp32"], values[0], target)
                results.setdefault(estimator, {})[budget] = record
    return {
        "exact_engine": exact_key,
        "image": name, "target": target, "superpixels": num, "segmentation_s": segmentation_s,
        "seconds_per_forward": per_forward, "reference_relative_sd": float(np.sqrt(reference_var / norm)),
        "reference_deletion_auc": deletion_auc(engines["fp32"], reference, target), "results": results,
    }  # fmt: skip


def collect(args) -> None:
    model, _ = load_model("efficientnet_lite0")
    torch32 = TorchClassifier(model, backend="torch")
    backends = {"fp32": torch32, "torch-bf16": torch32.with_precision("bf16")}
    if installed("openvino"):
        openvino = TorchClassifier(model, backend="openvino")
        backends.update({"ov-fp32": openvino, "ov-bf16": openvino.with_precision("bf16")})
    if "ov-bf16" in args.proxies and "ov-bf16" not in backends:
        args.proxies = ("torch-bf16",)  # OpenVINO not installed
    images: list[tuple[str, np.ndarray]] = []
    if args.images:
        images += [(str(p), to_model_frame(load_image(p))) for p in find_images(args.images)[: args.limit]]
    if args.sample_photos:  # one sample photo first, the others after every third photo of the folder
        for i, name in enumerate(("chelsea", "coffee", "rocket")):
            images.insert(4 * i, (f"sample:{name}", to_model_frame(sample_image(name))))
    out = Path(args.records)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["image"] for line in out.read_text().splitlines()} if out.exists() else set()
    for name, image in images:
        if name in done:
            continue
        start = time.perf_counter()
        record = run_image(name, image, model, args, backends)
        with out.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        print(f"{name}: {time.perf_counter() - start:.0f} s, per forward "
              f"{ {k: round(v * 1000, 2) for k, v in record['seconds_per_forward'].items()} } ms", flush=True)  # fmt: skip


def summarise(path: str, figure: str | None, boot: int = 2000) -> dict:
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    rng = np.random.default_rng(0)
    estimators = sorted({e for r in records for e in r["results"]})
    n_images = len(records)
    samples = [rng.integers(0, n_images, n_images) for _ in range(boot)]
    seconds = {
        k: np.array([r["seconds_per_forward"][k] for r in records]) for k in records[0]["seconds_per_forward"]
    }
    segmentation = np.array([r["segmentation_s"] for r in records])

    reference_var = np.array([r["reference_relative_sd"] ** 2 for r in records])

    def measure(estimator: str, budget: int, key: str) -> np.ndarray | None:
        if (
            key == "msd_ratio"
        ):  # mean squared distance to the reference over fp32 LIME@1000's (iid), per image
            error2, base = measure(estimator, budget, "error2"), measure("lime-iid", 1000, "error2")
            return None if error2 is None else (error2 + reference_var) / (base + reference_var)
        values = [r["results"].get(estimator, {}).get(str(budget), {}).get(key) for r in records]
        return None if any(v is None for v in values) else np.array(values, dtype=np.float64)

    def interval(values: np.ndarray, statistic=np.mean) -> list[float]:
        stats = [statistic(values[s]) for s in samples]
        return [float(statistic(values)), float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))]

    def cost(estimator: str, budget: int, exact_engine: str) -> np.ndarray:
        """Forward seconds per image (every precision counted)."""
        if estimator.startswith("lime"):
            return budget * seconds[exact_engine]
        if estimator.startswith("mf-"):
            proxy = estimator.removeprefix("mf-").split("-n")[0]
        else:
            proxy = estimator.removeprefix("proxy-only-").rsplit("-", 1)[0]
        n = int(estimator.split("-n")[1].split("-")[0]) if estimator.startswith("mf-") else 0
        return budget * seconds[proxy] + n * seconds[exact_engine]

    table = {}
    for estimator in estimators:
        for budget in BUDGETS:
            error2 = measure(estimator, budget, "error2")
            if error2 is None:
                continue
            row = {"relative_error": interval(np.sqrt(np.clip(error2, 0, None)), np.median)}
            ratio = measure(estimator, budget, "msd_ratio")
            row["msd_ratio"] = interval(ratio, lambda v: float(np.exp(np.mean(np.log(v)))))  # geometric mean
            for key in ("agreement", "stability", "bias_rms_z", "bias_relative", "deletion_auc"):
                values = measure(estimator, budget, key)
                if values is not None:
                    row[key] = interval(values)
            table[(estimator, budget)] = row

    base_agreement = measure("lime-iid", 1000, "agreement")

    def matching(estimator: str, index: np.ndarray, exact_engine: str) -> tuple[int | None, float]:
        target_agreement = np.mean(base_agreement[index])
        baseline = np.mean(1000 * seconds["fp32"][index])
        for budget in BUDGETS:
            ratio, agreement = (
                measure(estimator, budget, "msd_ratio"),
                measure(estimator, budget, "agreement"),
            )
            if ratio is None:
                continue
            if np.mean(np.log(ratio[index])) <= 0 and np.mean(agreement[index]) >= target_agreement:
                return budget, float(np.mean(cost(estimator, budget, exact_engine)[index]) / baseline)
        return None, float("nan")

    everyone = np.arange(n_images)
    matches = {}
    for estimator in estimators:
        if estimator.startswith("proxy-only"):
            continue
        engines = ["fp32"] + (
            ["ov-fp32"]
            if "ov-fp32" in seconds and (estimator.startswith("lime") or "ov-" in estimator)
            else []
        )
        for exact_engine in engines:
            budget, factor = matching(estimator, everyone, exact_engine)
            if budget is None:
                continue
            factors = [matching(estimator, s, exact_engine)[1] for s in samples[:400]]
            finite = np.array([f for f in factors if np.isfinite(f)])
            matches[f"{estimator} (exact: {exact_engine})"] = {
                "budget": budget, "factor": factor,
                "interval": [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] if len(finite) else None,
                "resamples_matched": float(len(finite) / len(factors)),
            }  # fmt: skip
    summary = {
        "images": n_images,
        "seconds_per_forward_ms": {k: interval(v * 1000, np.median) for k, v in seconds.items()},
        "segmentation_s": interval(segmentation, np.median),
        "reference_relative_sd": interval(np.array([r["reference_relative_sd"] for r in records])),
        "reference_deletion_auc": interval(np.array([r["reference_deletion_auc"] for r in records])),
        "table": {f"{e}@{b}": row for (e, b), row in table.items()},
        "to_match_fp32_lime_1000": matches,
    }
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        shown = [(e, "fp32") for e in ("lime-iid", "lime-paired")]
        if "ov-fp32" in seconds:  # the backend alone: fp32 LIME on OpenVINO f32
            shown += [(e, "ov-fp32") for e in ("lime-iid", "lime-paired")]
        shown += [(e, "ov-fp32" if ("ov-" in e and "ov-fp32" in seconds) else "fp32")
                  for e in estimators if e.startswith("mf-") and "-n100-" in e]  # fmt: skip
        for estimator, exact_engine in shown:
            budgets = [b for b in BUDGETS if (estimator, b) in table]
            x = [
                float(np.mean(cost(estimator, b, exact_engine)) / np.mean(1000 * seconds["fp32"]))
                for b in budgets
            ]
            label = f"{estimator} (fp32 on {'OpenVINO' if exact_engine == 'ov-fp32' else 'torch'})"
            axes[0].plot(x, [table[(estimator, b)]["relative_error"][0] for b in budgets], "o-", label=label)
            axes[1].plot(x, [table[(estimator, b)]["agreement"][0] for b in budgets], "o-", label=label)
        for ax in axes:
            ax.set_xscale("log")
        for ax, label in zip(
            axes,
            ("relative error to the reference (corrected)", "top-5 agreement with the reference"),
            strict=True,
        ):
            ax.axvline(0.25, color="grey", ls=":", lw=1)
            ax.axhline(
                table[("lime-iid", 1000)]["relative_error" if ax is axes[0] else "agreement"][0],
                color="k",
                ls="--",
                lw=1,
            )
            ax.set_xlabel("forward seconds / torch fp32 LIME@1000's")
            ax.set_ylabel(label)
        axes[1].legend(fontsize=7)
        fig.suptitle(f"EfficientNet-Lite0, {n_images} photos (dashed: fp32 LIME@1000; dotted: the 25% goal)")
        fig.tight_layout()
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(figure, dpi=110)
    return summary


def markdown(summary: dict) -> str:
    """The docs' tables: the measures per estimator and budget, and the cost to match fp32 LIME@1000."""

    def cell(values, digits=3):
        if values is None:
            return "—"
        value, low, high = values
        return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    lines = ["| estimator | N | relative error (median) ↓ | distance² / LIME@1000's (geometric mean) ↓ | top-5 agreement ↑ | "
             "top-5 stability ↑ | deletion AUC ↓ | bias (SE of the mean) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for key, row in summary["table"].items():
        estimator, budget = key.rsplit("@", 1)
        if (
            int(budget) not in (200, 400, 600, 1000, 1200, 1500, 2000)
            or "-n50-" in estimator
            or "-n200-" in estimator
        ):
            continue
        bias = row.get("bias_rms_z")
        lines.append(
            f"| {estimator} | {budget} | {cell(row['relative_error'])} | {cell(row['msd_ratio'])} | {cell(row['agreement'])} | "
            f"{cell(row.get('stability'))} | {cell(row.get('deletion_auc'))} | "
            f"{'—' if bias is None else f'{bias[0]:.2f}'} |"
        )
    lines += ["", "| estimator (fp32 forwards on) | budget N to match | forward seconds / torch fp32 LIME@1000's | "
              "95% interval | resamples that match |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for key, match in summary["to_match_fp32_lime_1000"].items():
        interval = match["interval"]
        lines.append(
            f"| {key} | {match['budget']} | {match['factor']:.3f} | "
            f"{'—' if interval is None else f'{interval[0]:.3f}–{interval[1]:.3f}'} | {match['resamples_matched']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", help="a folder of photos (recursively)")
    parser.add_argument("--limit", type=int, default=30, help="the first N photos of --images")
    parser.add_argument("--sample-photos", action="store_true", help="also the built-in sample photos")
    parser.add_argument("--reference-pairs", type=int, default=500)
    parser.add_argument("--draw-pairs", type=int, default=1000)
    parser.add_argument("--timed-rows", type=int, default=96, help="rows predicted by the engines only timed")
    parser.add_argument(
        "--proxies",
        default="ov-bf16",
        help="proxies evaluated on the whole draw half "
        "(comma-separated: ov-bf16, torch-bf16); the others are only timed",
    )
    parser.add_argument("--repeats", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", default="bench/results/estimators.jsonl")
    parser.add_argument(
        "--summarise", help="a records file: print (and draw) the summary instead of measuring"
    )
    parser.add_argument("--figure", help="with --summarise: where to save the figure")
    parser.add_argument("--markdown", action="store_true", help="with --summarise: print the docs' tables")
    args = parser.parse_args()
    args.proxies = tuple(args.proxies.split(","))
    if args.summarise:
        summary = summarise(args.summarise, args.figure)
        print(markdown(summary) if args.markdown else json.dumps(summary, indent=1))
    else:
        collect(args)


if __name__ == "__main__":
    main()
