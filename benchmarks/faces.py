"""Faces: the figures quoted for dlib-face and face verification, from real photos (no speed claims).

1. Distances between dlib embeddings of three photos of Barack Obama and one of Joe Biden (the test photos in the
   ``face_recognition`` 1.3.0 source package on PyPI, fetched with ``pip download``), against dlib's published
   same-person threshold 0.6.
2. ``transferkit.faces.calibrate`` on 16 LFW-subset faces (skimage) with three altered copies each standing for
   "same person" (lfw_subset has no identities): the threshold and the rates on people left out of calibration.

    python benchmarks/faces.py
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.data import lfw_subset

from transferkit.backbones import create_backbone
from transferkit.faces import calibrate


def photos() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="face-recognition-"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "face_recognition==1.3.0"]
    subprocess.run([*command, "-d", str(folder), "-q"], check=True)
    with tarfile.open(next(folder.glob("face_recognition-1.3.0.tar.gz"))) as archive:
        members = [m for m in archive.getmembers() if "/tests/test_images/" in m.name and m.name.endswith(".jpg")]
        archive.extractall(folder, members=members, filter="data")
    return folder / "face_recognition-1.3.0" / "tests" / "test_images"


def main() -> None:
    backbone = create_backbone("dlib-face")
    base = photos()
    embeddings = backbone.encode([str(base / f"{n}.jpg") for n in ("obama", "obama2", "obama3", "biden")])
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    same = distances[:3, :3][np.triu_indices(3, 1)]
    print(f"Obama vs Obama (3 photos): {', '.join(f'{d:.3f}' for d in same)}")
    print(f"Biden vs each Obama photo: {', '.join(f'{d:.3f}' for d in distances[3, :3])} (dlib threshold 0.6)")

    faces = (lfw_subset()[:100] * 255).astype(np.uint8)
    images, people = [], []
    for person in range(16):
        face = Image.fromarray(faces[person])
        images += [
            faces[person],
            np.asarray(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
            np.asarray(face.crop((1, 1, 24, 24)).resize((25, 25))),
            np.clip(faces[person].astype(int) * 0.8 + 20, 0, 255).astype(np.uint8),
        ]
        people += [f"person{person}"] * 4
    verifier = calibrate(images, people, backbone=backbone)
    facts = verifier.calibration
    print(f"calibrated threshold {verifier.threshold} on {facts['people']} people ({facts['photos']} photos)")
    print(f"on people left out of calibration: {facts['on_unseen_people']}")


if __name__ == "__main__":
    main()
