"""birdlab.training.dataset with soundscapes keyed by (audio_id, site): real files, real features, real split files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdlab.data.birdclef2021 import SOUNDSCAPE_LABELS_CSV, BirdCLEF2021
from birdlab.features.cache import FeatureCache
from birdlab.training.config import tiny
from birdlab.training.dataset import Split, TrainingDataError, prepare_training_data
from edge_runtime.spec import FeatureSpec


@pytest.fixture
def twin_sites(synthetic_quick: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """The quick dataset plus a second soundscape with the same audio_id at another site: its audio is the first
    one reversed in time, its rows all nocall. Returns (root, first soundscape id, twin soundscape id)."""
    root = Path(shutil.copytree(synthetic_quick, tmp_path / "data"))
    (original,) = BirdCLEF2021(root).soundscapes().values()
    site = "SSW" if original.site != "SSW" else "COR"
    twin = original.path.with_name(f"{original.audio_id}_{site}_{original.date}.ogg")
    samples, rate = soundfile.read(original.path, dtype="float32")
    soundfile.write(twin, samples[::-1], rate, format="OGG", subtype="VORBIS")
    labels = root / SOUNDSCAPE_LABELS_CSV
    with labels.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with labels.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        for row in rows:
            writer.writerow({**row, "row_id": f"{original.audio_id}_{site}_{row['seconds']}", "site": site,
                             "birds": "nocall"})
    return root, f"{original.audio_id}_{original.site}", f"{original.audio_id}_{site}"


def _prepare(root: Path, split: Split, tmp_path: Path):
    spec = FeatureSpec()
    return prepare_training_data(data_dir=root, config=tiny(), spec=spec,
                                 cache=FeatureCache(spec=spec, root=tmp_path / "cache"), split=split,
                                 include_train=False, progress=False)


def test_each_soundscape_row_gets_the_audio_and_labels_of_its_own_site(twin_sites, tmp_path):
    root, first, twin = twin_sites
    split = Split(train_recordings=(), validation_recordings=(), validation_soundscapes=(),
                  test_soundscapes=(first, twin))

    rows = _prepare(root, split, tmp_path).test_rows

    mine = {scape: [i for i, s in enumerate(rows.sources) if s.startswith(f"{scape}_")] for scape in (first, twin)}
    assert len(mine[first]) == len(mine[twin]) == len(rows) // 2 > 0
    assert rows.truth[mine[first]].any() and not rows.truth[mine[twin]].any()
    # The twin is the first soundscape reversed in time: its windows differ from the first one's.
    assert not np.allclose(rows.features[mine[first]], rows.features[mine[twin]])


def test_an_older_split_with_bare_audio_ids_resolves_or_says_it_is_ambiguous(twin_sites, synthetic_quick, tmp_path):
    root, first, _ = twin_sites
    audio_id = int(first.split("_")[0])
    legacy = Split(train_recordings=(), validation_recordings=(), validation_soundscapes=(),
                   test_soundscapes=(audio_id,))  # type: ignore[arg-type]  # as split.json files held them

    resolved = _prepare(synthetic_quick, legacy, tmp_path)
    assert resolved.split.test_soundscapes == (first,) and len(resolved.test_rows) > 0

    with pytest.raises(TrainingDataError, match=f"audio_id {audio_id} names 2 soundscapes.*re-run training"):
        _prepare(root, legacy, tmp_path)


def test_recordings_whose_audio_is_missing_are_counted_and_named_for_the_run_summary(synthetic_quick, tmp_path):
    root = Path(shutil.copytree(synthetic_quick, tmp_path / "data"))
    recordings = BirdCLEF2021(root).recordings()
    for gone in recordings[:2]:
        gone.audio_path.unlink()
    spec = FeatureSpec()

    data = prepare_training_data(data_dir=root, config=tiny(), spec=spec,
                                 cache=FeatureCache(spec=spec, root=tmp_path / "cache"), include_train=False,
                                 progress=False)

    assert data.missing_audio is not None
    assert data.missing_audio.to_dict() == {"listed": 12, "missing": 2, "first_missing": [
        f"{r.primary_label}/{r.filename}" for r in recordings[:2]]}
    assert data.missing_audio.describe().startswith("2 of 12 recording(s) listed in train_metadata.csv have no audio")
    used = set(data.split.train_recordings + data.split.validation_recordings)
    assert len(used) == 10 and not used & set(data.missing_audio.missing)
