"""Faces on real photos: dlib's detector, aligner and embedding; identification and calibrated verification.

Data: skimage's ``lfw_subset`` (100 real 25x25 face crops, no identity labels) and the test photos in the
``face_recognition`` 1.3.0 source package on PyPI (three photos of Barack Obama and one of Joe Biden, MIT).
``lfw_subset`` has no identities, so for calibration each crop stands for one person, with three altered copies
(mirrored, re-cropped, darker) as that person's other photos: it checks the machinery; the real
different-photo checks use the face_recognition photos and dlib's published threshold (0.6).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile

import numpy as np
import pytest

pytest.importorskip("dlib", reason="needs the face extra: pip install -e '.[face]'")
pytest.importorskip("skimage", reason="needs the face extra: pip install -e '.[face]'")

from transferkit.errors import DataError, ModelFolderError

DLIB_THRESHOLD = 0.6  # dlib's published same-person distance (99.38% on LFW)


@pytest.fixture(scope="module")
def people():
    """16 "people": an LFW face crop and three altered copies each (uint8 25x25 grayscale)."""
    from PIL import Image
    from skimage.data import lfw_subset

    faces = (lfw_subset()[:100] * 255).astype(np.uint8)
    images, names = [], []
    for person in range(16):
        face = Image.fromarray(faces[person])
        copies = [
            faces[person],
            np.asarray(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
            np.asarray(face.crop((1, 1, 24, 24)).resize((25, 25))),
            np.clip(faces[person].astype(int) * 0.8 + 20, 0, 255).astype(np.uint8),
        ]
        images += copies
        names += [f"person{person}"] * len(copies)
    return images, names


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photos from the face_recognition source package (PyPI), or skip when PyPI is unreachable."""
    folder = tmp_path_factory.mktemp("face_recognition")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "face_recognition==1.3.0",
         "-d", str(folder), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    archives = list(folder.glob("face_recognition-1.3.0.tar.gz"))
    if fetched.returncode != 0 or not archives:
        pytest.skip(f"could not fetch face_recognition 1.3.0 from PyPI: {fetched.stderr.strip()[-200:]}")
    with tarfile.open(archives[0]) as archive:
        members = [m for m in archive.getmembers() if "/tests/test_images/" in m.name and m.name.endswith(".jpg")]
        archive.extractall(folder, members=members, filter="data")
    base = folder / "face_recognition-1.3.0" / "tests" / "test_images"
    return {name: str(base / f"{name}.jpg") for name in ("obama", "obama2", "obama3", "biden")}


@pytest.fixture(scope="module")
def faces_backbone():
    from transferkit.backbones import create_backbone

    return create_backbone("dlib-face")


def test_real_photos_of_one_person_are_closer_than_dlibs_threshold(faces_backbone, photos):
    embeddings = faces_backbone.encode([photos[n] for n in ("obama", "obama2", "obama3", "biden")])
    assert embeddings.shape == (4, 128) and all(faces_backbone.detected)
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    assert distances[:3, :3].max() < DLIB_THRESHOLD  # Obama vs Obama, three different photos
    assert distances[3, :3].min() > DLIB_THRESHOLD  # Biden vs each Obama photo


def test_identify_people_with_the_face_backbone(people):
    """Identification is classification on the face embedding: three photos per person train, the fourth tests."""
    from transferkit import FitConfig
    from transferkit.strategies.fit import fit_model

    images, names = people
    train = [i for i in range(len(images)) if i % 4 != 3]
    test = [i for i in range(len(images)) if i % 4 == 3]
    config = FitConfig(strategy="feature-extraction", quiet=True, use_cache=False)
    model = fit_model([images[i] for i in train], [names[i] for i in train], task="classification",
                      backbone="dlib-face", config=config)  # fmt: skip
    predicted = model.predict([images[i] for i in test])
    accuracy = np.mean([p == names[i] for p, i in zip(predicted, test, strict=True)])
    assert accuracy > 0.5  # chance: 1/16
    with pytest.raises(Exception, match="cannot be fine-tuned"):
        fit_model(images[:8], names[:8], task="classification", backbone="dlib-face",
                  config=FitConfig(strategy="finetune", quiet=True, use_cache=False))  # fmt: skip


def test_verifier_calibrates_saves_loads_and_verifies_real_photos(faces_backbone, people, photos, tmp_path):
    from transferkit.faces import FaceVerifier, calibrate

    images, names = people
    verifier = calibrate(images, names, backbone=faces_backbone)
    facts = verifier.calibration
    assert facts["people"] == 16 and facts["same_pairs"] == 16 * 6 and facts["different_pairs"] == 16 * 6 * 10
    assert facts["same_distance_median"] < verifier.threshold < facts["different_distance_median"]
    assert facts["on_unseen_people"]["balanced_accuracy"] > 0.9
    strict = calibrate(images, names, backbone=faces_backbone, max_false_accept=0.0)
    assert strict.calibration["on_calibration_pairs"]["false_accept_rate"] == 0.0
    verifier.save(tmp_path / "verifier")
    loaded = FaceVerifier.load(tmp_path / "verifier")
    assert loaded.threshold == verifier.threshold and loaded.backbone.name == "dlib-face"
    loaded.threshold = DLIB_THRESHOLD  # the published threshold, for photos unlike the altered crops
    assert loaded.verify(photos["obama"], photos["obama2"])["same"]
    assert not loaded.verify(photos["obama"], photos["biden"])["same"]
    with pytest.raises(DataError, match="at least 4 people with 2 or more photos"):
        calibrate(images[:12], names[:12], backbone=faces_backbone)
    with pytest.raises(ModelFolderError, match="not a face verifier folder"):
        FaceVerifier.load(tmp_path)


def test_cli_calibrates_on_a_folder_per_person_and_verifies_a_pair(people, photos, tmp_path):
    import json
    import os

    from PIL import Image

    images, names = people
    for i, (image, name) in enumerate(zip(images, names, strict=True)):
        (tmp_path / "people" / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "people" / name / f"{i}.png")
    env = {**os.environ, "TRANSFERKIT_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    cli = [sys.executable, "-m", "transferkit.cli", "faces"]
    calibrated = subprocess.run([*cli, "calibrate", tmp_path / "people", "-o", tmp_path / "v"], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
    assert calibrated.returncode == 0, calibrated.stderr
    assert "threshold" in calibrated.stdout and (tmp_path / "v" / "verifier.json").is_file()
    verified = subprocess.run([*cli, "verify", tmp_path / "v", photos["obama"], photos["biden"], "--json"], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["same"] is False
    missing = subprocess.run([*cli, "verify", tmp_path / "v", photos["obama"], tmp_path / "nope.jpg"], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert missing.returncode == 2 and "nope.jpg' does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
