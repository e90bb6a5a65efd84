"""Every form of ``--model`` end to end, offline, with random weights made here (docs/your-model.md): GradLIME.py
writes its four outputs, and each way to get a model wrong is one line and exit status 2."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cnnxai.cli import main
from cnnxai.zoo import file_sha256, load_model_spec
from tests.helpers import small_photo
from tests.model_factories import tiny_cnn

FAST = ["--num-samples", "16", "--batch-size", "16", "--segmenter", "slic", "--quiet", "--device", "cpu"]
OUTPUTS = ["attribution.npy", "explanation.png", "manifest.json", "superpixels.csv"]


@pytest.fixture
def photo_file(tmp_path) -> Path:
    path = tmp_path / "cat.png"
    Image.fromarray(small_photo(120)).save(path)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch cache: nothing is cached, nothing is downloaded (the tests pass --offline)."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def run(tool: str, args: list[str], out: Path, capsys) -> tuple[int, str, dict]:
    code = main(tool, [*FAST, *args, "--output-dir", str(out)])
    err = capsys.readouterr().err
    manifest = json.loads((out / "cat" / "manifest.json").read_text()) if code == 0 else {}
    if code == 0:
        assert sorted(p.name for p in (out / "cat").iterdir()) == OUTPUTS
    return code, err, manifest


def test_torchvision_weights_from_the_cache(photo_file, torch_home, tmp_path, capsys):
    """torchvision:NAME with its DEFAULT weights, found in torch's cache under torchvision's own file name."""
    url = torchvision.models.get_model_weights("squeezenet1_1").DEFAULT.url
    cached = torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), cached)
    args = [
        "--image-path",
        str(photo_file),
        "--model",
        "torchvision:squeezenet1_1",
        "--offline",
        "--input-size",
        "64",
    ]
    code, err, manifest = run("gradlime", args, tmp_path / "out", capsys)
    assert code == 0, err
    model = manifest["model"]
    assert model["weights_file"] == str(cached) and model["weights_sha256"] == file_sha256(cached)
    assert (
        model["weights"] == "SqueezeNet1_1_Weights.IMAGENET1K_V1"
        and model["torchvision"] == torchvision.__version__
    )
    assert model["default_layers"] == ["classifier.2"] and model["num_classes"] == 1000
    assert manifest["image"]["frame_size"] == 64 and model["mean"] == [0.485, 0.456, 0.406]


def test_torchvision_offline_without_cached_weights_says_where_to_put_the_file(
    photo_file, torch_home, tmp_path, capsys
):
    args = ["--image-path", str(photo_file), "--model", "torchvision:squeezenet1_1", "--offline"]
    code, err, _ = run("gradlime", args, tmp_path / "out", capsys)
    target = torch_home / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    assert code == 2 and err.count("\n") == 1 and str(target) in err and "offline" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_download_is_one_line(photo_file, torch_home, tmp_path, capsys, monkeypatch):
    """No network: the download fails; the one line says where to put the file, and nothing else is printed
    (no "Downloading" line before it), and no partial file is left in the cache."""

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    args = ["--image-path", str(photo_file), "--model", "torchvision:squeezenet1_1"]
    code = main("gradlime", [*FAST, *args, "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1, captured
    assert "the download failed: OSError" in captured.err and "squeezenet1_1-b8a52dc0.pth" in captured.err
    assert not list((torch_home / "hub" / "checkpoints").glob("*")) and not (tmp_path / "out").exists()


def test_the_weights_transforms_set_the_frame(torch_home):
    """EfficientNet-B1's weights say 240 (resize 255): the frame follows (an explicit --input-size wins: above)."""
    url = torchvision.models.get_model_weights("efficientnet_b1").DEFAULT.url
    cached = torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.efficientnet_b1().state_dict(), cached)
    _, info = load_model_spec("torchvision:efficientnet_b1", offline=True)
    assert (info.input_size, info.resize, info.layers) == (240, 255, ("features",))
    assert info.class_names[:2] == ("tench", "goldfish")


def test_a_state_dict_file_with_model_args_and_class_names(photo_file, tmp_path, capsys):
    weights = tmp_path / "small.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1(num_classes=3).state_dict(), weights)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nowl\n")
    args = ["--image-path", str(photo_file), "--model", "torchvision:squeezenet1_1", "--weights", str(weights),
            "--model-arg", "num_classes=3", "--class-names", str(names), "--target", "2", "--input-size", "64"]  # fmt: skip
    code, err, manifest = run("gradlime", args, tmp_path / "out", capsys)
    assert code == 0, err
    assert manifest["model"]["weights_sha256"] == file_sha256(weights) and manifest["model"][
        "class_names"
    ] == str(names)
    assert manifest["predicted"]["name"] == "owl" and manifest["model"]["num_classes"] == 3


def test_a_factory_vision_transformer_in_its_own_frame_size(photo_file, tmp_path, capsys):
    """module.path:factory with --model-arg: a 2-layer ViT built for 96x96 inputs, a side read from the model
    itself (no --input-size); the frame, the superpixels and the map are 96x96, and the CAM layer is the last
    block's input norm."""
    args = ["--image-path", str(photo_file), "--model", "tests.model_factories:tiny_vit", "--model-arg",
            "num_classes=4"]  # fmt: skip
    code, err, manifest = run("gradlime", args, tmp_path / "out", capsys)
    assert code == 0, err
    assert manifest["image"]["frame_size"] == 96 and manifest["model"]["factory_args"] == {"num_classes": 4}
    assert manifest["model"]["default_layers"] == ["encoder.layers.encoder_layer_1.ln_1"]
    attribution = np.load(tmp_path / "out" / "cat" / "attribution.npy")
    assert attribution.shape[-2:] == (96, 96) and np.abs(attribution).sum() > 0


def test_camlime_refuses_a_cam_method_that_cannot_apply_to_a_transformer(photo_file, tmp_path, capsys):
    args = ["--image-path", str(photo_file), "--model", "tests.model_factories:tiny_vit", "--input-size", "96",
            "--method", "ablationcam"]  # fmt: skip
    code, err, _ = run("camlime", args, tmp_path / "out", capsys)
    assert code == 2 and err.count("\n") == 1 and "ablationcam does not apply to a torchvision ViT" in err


def test_a_timm_model_with_its_own_normalisation(photo_file, tmp_path, capsys):
    """timm:NAME from a state-dict file: timm's pretrained config gives mean and std 0.5, so the model is fed
    its own normalisation and its layers are named under inner."""
    timm = pytest.importorskip("timm")
    weights = tmp_path / "vit.pth"
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, img_size=64, num_classes=3)
    torch.save(model.state_dict(), weights)
    args = ["--image-path", str(photo_file), "--model", "timm:vit_tiny_patch16_224", "--weights", str(weights),
            "--model-arg", "depth=1", "--model-arg", "img_size=64", "--model-arg", "num_classes=3"]  # fmt: skip
    code, err, manifest = run("gradlime", args, tmp_path / "out", capsys)
    assert code == 0, err
    assert manifest["image"]["frame_size"] == 64  # the side the model was built for, not its config's 224
    assert manifest["model"]["mean"] == [0.5, 0.5, 0.5] and manifest["model"]["timm"] == timm.__version__
    assert manifest["cam"]["layers"] == ["inner.blocks.0.norm1"]


def test_a_torch_export_file(photo_file, tmp_path, capsys):
    path = tmp_path / "tiny.pt2"
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros(2, 3, 64, 64)
    torch.export.save(torch.export.export(tiny_cnn(), (example,), dynamic_shapes={"input": {0: batch}}), path)
    code, err, manifest = run(
        "gradlime", ["--image-path", str(photo_file), "--model", str(path)], tmp_path / "out", capsys
    )
    assert code == 0, err
    assert manifest["model"]["format"] == "torch.export" and manifest["model"]["default_layers"] == ["4"]
    assert manifest["image"]["frame_size"] == 64  # the exported input's side


# name -> (arguments, with {tmp} for the test's folder, and what the one line says)
BAD_CASES = {
    "bad model string": (["--model", "resnet-18"], "not a model; close matches: resnet18"),
    "unknown torchvision model": (["--model", "torchvision:resnet9"], "close matches: resnet50"),
    "state dict only": (["--model", "{tmp}/weights.pt"], "--model torchvision:NAME --weights"),
    "TorchScript gives no CAM": (["--model", "{tmp}/scripted.pt"], "torch.export"),
    "layer not found": (["--model", "tests.model_factories:tiny_cnn", "--layers", "9"], "unknown layer '9'"),
    "no spatial layer": (["--model", "tests.model_factories:flat_mlp"], "found no layer with a spatial"),
    "bad factory argument": (
        ["--model", "tests.model_factories:tiny_cnn", "--model-arg", "width=3"],
        "width",
    ),
    "unknown factory": (["--model", "tests.model_factories:huge_cnn"], "has no huge_cnn"),
    "class names of the wrong count": (
        ["--model", "tests.model_factories:tiny_cnn", "--class-names", "{tmp}/names.txt"],
        "2 names for a model with 4",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_a_model_gone_wrong_is_one_line_and_exit_2(case, photo_file, torch_home, tmp_path, capsys):
    torch.save(tiny_cnn().state_dict(), tmp_path / "weights.pt")
    torch.jit.save(torch.jit.script(tiny_cnn()), tmp_path / "scripted.pt")
    (tmp_path / "names.txt").write_text("a\nb\n")
    args, needle = BAD_CASES[case]
    args = [arg.format(tmp=tmp_path) for arg in args]
    code, err, _ = run("gradlime", ["--image-path", str(photo_file), *args], tmp_path / "out", capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert not (tmp_path / "out").exists()


def test_a_missing_extra_says_how_to_install_it(photo_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    code, err, _ = run("gradlime", ["--image-path", str(photo_file), "--model", "timm:vit_tiny_patch16_224"],
                       tmp_path / "out", capsys)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "pip install timm" in err


def test_timm_weights_from_the_hub_cache_and_offline_without_them(tmp_path, monkeypatch):
    """timm:NAME's DEFAULT weights: a file in the Hugging Face cache is loaded by timm's own loader (and recorded
    with its SHA-256); offline without one is a one-line error naming the cache."""
    timm = pytest.importorskip("timm")
    from huggingface_hub import constants
    from safetensors.torch import save_file

    from cnnxai.errors import UserInputError

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    name, args = "vit_tiny_patch16_224", {"depth": 1, "img_size": 32, "num_classes": 3}
    with pytest.raises(
        UserInputError, match="no weights for timm:vit_tiny_patch16_224 in the Hugging Face cache"
    ):
        load_model_spec(f"timm:{name}", model_args=args, offline=True)
    repo = tmp_path / "hub" / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    cached = repo / "snapshots" / ("0" * 40) / "model.safetensors"
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    source = timm.create_model(name, pretrained=False, **args)
    save_file(source.state_dict(), str(cached))
    model, info = load_model_spec(f"timm:{name}", model_args=args, input_size=32, offline=True)
    assert info.record["weights_file"] == str(cached) and info.record["weights_sha256"] == file_sha256(cached)
    # timm drops a pretrained file's head when num_classes differs from its config's 1000; the rest is the file's
    assert torch.equal(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert info.mean == (0.5, 0.5, 0.5)


# --- every tool takes every form ---------------------------------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """A flat folder of two small photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(small_photo(80), 23 * i, axis=1)).save(folder / f"img{i}.png")
    return folder


def test_the_benchmarks_explain_a_vision_transformer_in_its_own_frame(photo_folder, tmp_path, capsys):
    """MyFaithfulness.py on a factory ViT built for 32x32 inputs: the frame is the model's (the run's settings
    and every map are 32x32), the CAM layer is found, and the manifest records the factory."""
    from cnnxai.benchmark.cli import main as benchmark

    out = tmp_path / "faith"
    args = ["--data-dir", str(photo_folder), "--model", "tests.model_factories:tiny_vit", "--model-arg",
            "image_size=32", "--model-arg", "patch_size=8", "--methods", "gradcam,saliency", "--metrics",
            "Deletion", "--device", "cpu", "--quiet", "--output-dir", str(out)]  # fmt: skip
    assert benchmark("faithfulness", args) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["settings"]["frame_size"] == 32
    assert manifest["model"]["kind"] == "factory" and manifest["model"]["input_size"] == 32
    rows = [r for r in csv.DictReader(open(out / "scores.csv"))]
    assert len(rows) == 2 * 2 and all(np.isfinite(float(r["value"])) for r in rows)


def test_mycomplexity_takes_a_torch_export_file(photo_folder, tmp_path, capsys):
    """MyComplexity.py on a .pt2 file exported for 64x64 inputs: the frame is the exported side."""
    from cnnxai.benchmark.cli import main as benchmark

    path = tmp_path / "tiny.pt2"
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros(2, 3, 64, 64)
    torch.export.save(torch.export.export(tiny_cnn(), (example,), dynamic_shapes={"input": {0: batch}}), path)
    out = tmp_path / "complexity"
    args = ["--data-dir", str(photo_folder), "--model", str(path), "--methods", "gradcam", "--device", "cpu",
            "--quiet", "--output-dir", str(out)]  # fmt: skip
    assert benchmark("complexity", args) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["settings"]["frame_size"] == 64 and manifest["model"]["format"] == "torch.export"


def test_mystability_takes_torchscript_when_no_method_needs_a_cam(photo_folder, tmp_path, capsys):
    """A TorchScript file gives no CAM (no hooks), but LIME needs none: MyStability.py runs it; a method that
    needs a CAM layer is refused in one line that says to export with torch.export."""
    from cnnxai.stability.cli import main as stability

    path = tmp_path / "scripted.pt"
    with pytest.warns(FutureWarning):  # torch.jit is deprecated in favour of torch.export
        torch.jit.save(torch.jit.script(tiny_cnn()), path)
    base = ["--data-dir", str(photo_folder), "--model", str(path), "--num-samples-grid", "20", "--seeds", "2",
            "--reference-samples", "40", "--match-samples", "20", "--curve-steps", "4", "--segmenter", "slic",
            "--device", "cpu", "--quiet"]  # fmt: skip
    assert stability([*base, "--methods", "lime", "--output-dir", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    code = stability([*base, "--methods", "gradlime", "--output-dir", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "torch.export" in err and "--layers" in err
    assert not (tmp_path / "no").exists()


def test_figures_take_a_torchvision_architecture_with_a_weights_file(photo_file, tmp_path, capsys, monkeypatch):
    """Figures.py with torchvision:NAME --weights FILE and --class-names: the figure's frame is --input-size,
    and its manifest names the class by the given names."""
    from cnnxai.figures.cli import main as figures

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    weights = tmp_path / "small.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1(num_classes=3).state_dict(), weights)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nowl\n")
    out = tmp_path / "figs"
    args = ["compare", "--image-path", str(photo_file), "--model", "torchvision:squeezenet1_1", "--weights",
            str(weights), "--model-arg", "num_classes=3", "--class-names", str(names), "--input-size", "64",
            "--methods", "gradcam,saliency", "--device", "cpu", "--output-dir", str(out)]  # fmt: skip
    assert figures(args) == 0, capsys.readouterr().err
    manifest = json.loads(next(out.glob("*.json")).read_text())
    assert manifest["target"]["name"] in ("cat", "dog", "owl")
    assert manifest["model"]["weights_sha256"] == file_sha256(weights)
