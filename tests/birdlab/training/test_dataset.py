"""birdlab.training.dataset: soundscapes keyed by (audio_id, site) on real files, real features and real split files;
the three-way split (authors kept apart, the fallback, soundscapes) on hand-made metadata rows."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdlab.data.birdclef2021 import SOUNDSCAPE_LABELS_CSV, BirdCLEF2021, Recording
from birdlab.features.cache import FeatureCache
from birdlab.training.config import ConfigError, tiny
from birdlab.training.dataset import (
    GROUPING_BY_AUTHOR,
    GROUPING_FALLBACK,
    Split,
    TrainingDataError,
    build_split,
    prepare_training_data,
    recording_key,
    side_sizes,
    split_by_author,
)
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
    used = set(data.split.train_recordings + data.split.validation_recordings + data.split.test_recordings)
    assert len(used) == 10 and not used & set(data.missing_audio.missing)


# --- the three-way split ------------------------------------------------------------------------------------------


def _recording(code: str, number: int, author: str) -> Recording:
    return Recording(primary_label=code, secondary_labels=(), type=("song",), latitude=48.1, longitude=-2.9,
                     scientific_name=code, common_name=code, author=author, date="2020-05-01",
                     filename=f"XC{number}.ogg", license="CC BY 4.0", rating=4.0, time="06:30", url="",
                     audio_path=Path(f"/nowhere/{code}/XC{number}.ogg"))


def _side_of_each_author(split: Split, recordings: list[Recording]) -> dict[str, set[str]]:
    side = {k: name for name in ("train", "validation", "test") for k in getattr(split, f"{name}_recordings")}
    sides: dict[str, set[str]] = {}
    for r in recordings:
        sides.setdefault(r.author, set()).add(side[recording_key(r)])
    return sides


def test_split_by_author_known_answer() -> None:
    a, b, c, d, e = ["a1", "a2", "a3"], ["b1", "b2"], ["c1", "c2"], ["d1"], ["e1", "e2"]
    # targets 2 and 2: A (3) brings test from 0 to 3 (closer to 2) -> test; B: test would be 5 (further), validation
    # 0 -> 2 -> validation; C: validation 2 -> 4 is not closer -> train; D: test 3 -> 4, validation 2 -> 3 -> train.
    assert split_by_author([a, b, c, d, e], n_test=2, n_validation=2) == {
        "test": [a], "validation": [b], "train": [c, d, e]}
    # One big recordist first: it goes to train; two singletons fill test (1 -> 2), then validation, which got
    # nothing, takes the smallest group of a side with two (test's; of equal sizes, the first).
    big, y, z = [f"x{i}" for i in range(10)], ["y1"], ["z1"]
    assert split_by_author([big, y, z], n_test=2, n_validation=2) == {"test": [z], "validation": [y], "train": [big]}


def test_three_way_split_keeps_each_author_on_one_side() -> None:
    authors = ["Alice"] * 6 + ["Bob"] * 3 + ["Carol"] * 2 + ["Dan"] * 2 + ["Eve", "Fay", "Gus"]
    recordings = [_recording("eurrob1", i, author) for i, author in enumerate(authors)]
    config = tiny()  # test_fraction 0.2, validation_fraction 0.2: 3 + 3 of 16

    split = build_split(recordings, [], config=config)

    assert split == build_split(recordings, [], config=config)  # seeded
    keys = [set(getattr(split, f"{side}_recordings")) for side in ("train", "validation", "test")]
    assert set.union(*keys) == {recording_key(r) for r in recordings} and sum(map(len, keys)) == len(recordings)
    assert all(len(sides) == 1 for sides in _side_of_each_author(split, recordings).values())
    assert split.test_recordings and split.validation_recordings
    grouping = split.grouping["eurrob1"]
    assert grouping["method"] == GROUPING_BY_AUTHOR
    assert sum(grouping["authors"].values()) == 7 and min(grouping["authors"].values()) >= 1
    assert grouping["recordings"] == {"test": len(keys[2]), "validation": len(keys[1]), "train": len(keys[0])}


def test_a_species_with_too_few_authors_falls_back_to_a_recording_level_split_and_says_so() -> None:
    recordings = [_recording("eurrob1", i, "Alice" if i < 4 else "Bob") for i in range(6)]
    recordings += [_recording("blackc1", 100 + i, f"author {i}") for i in range(2)]

    split = build_split(recordings, [], config=tiny())

    robin = split.grouping["eurrob1"]
    assert robin["method"] == GROUPING_FALLBACK and robin["authors"] == 2
    assert "2 author(s) for 3 sides" in robin["why"]
    assert robin["recordings"] == {"test": 1, "validation": 1, "train": 4}
    # Two recordings: no test recording, so two authors are enough for train and validation.
    blackcap = split.grouping["blackc1"]
    assert blackcap["method"] == GROUPING_BY_AUTHOR
    assert blackcap["authors"] == {"test": 0, "validation": 1, "train": 1}
    assert not any(k.startswith("blackc1/") for k in split.test_recordings)


def test_soundscapes_with_subset_species_go_to_both_sides_when_there_are_two() -> None:
    ids = [f"{n}_SSW" for n in range(10)]
    config = tiny()  # validation_soundscape_fraction 0.5
    for seed in range(5):
        seeded = dataclasses.replace(config, seed=seed)
        split = build_split([], ids, config=seeded, positive_soundscapes={"3_SSW", "7_SSW"})
        assert len(split.validation_soundscapes) == 5 and len(split.test_soundscapes) == 5
        assert {"3_SSW", "7_SSW"} & set(split.validation_soundscapes)
        assert {"3_SSW", "7_SSW"} & set(split.test_soundscapes)
        only_one = build_split([], ids, config=seeded, positive_soundscapes={"3_SSW"})
        assert "3_SSW" in only_one.test_soundscapes  # the soundscape figure needs its rows


def test_an_older_split_json_without_test_recordings_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train_recordings": ["a/1.ogg"], "validation_recordings": ["a/2.ogg"],
                                "validation_soundscapes": [], "test_soundscapes": [20000]}))
    split = Split.load(path)
    assert split.test_recordings == () and split.grouping == {} and not split.has_test_recordings
    assert Split.load(path) == split
    new = tmp_path / "new.json"
    new.write_text(build_split([_recording("eurrob1", i, f"a{i}") for i in range(5)], [], config=tiny()).to_json())
    assert Split.load(new).grouping["eurrob1"]["method"] == GROUPING_BY_AUTHOR


def test_test_and_validation_fractions_must_leave_recordings_to_train_on() -> None:
    with pytest.raises(ConfigError, match="'test_fraction': plus validation_fraction"):
        dataclasses.replace(tiny(), test_fraction=0.5, validation_fraction=0.5)
    assert side_sizes(3, config=tiny()) == (1, 1) and side_sizes(2, config=tiny()) == (0, 1)
    assert side_sizes(1, config=tiny()) == (0, 0) and side_sizes(20, config=tiny()) == (4, 4)
    assert side_sizes(20, config=dataclasses.replace(tiny(), test_fraction=0.0)) == (0, 4)


# --- real background: quiet crops of the training recordings ------------------------------------------------------

def test_quiet_crops_fall_in_the_gaps_between_calls() -> None:
    from birdlab.features.cache import choose_crop_starts
    from birdlab.training.dataset import RECORDING_NOISE_EXPONENT

    rate, rng = 1000, np.random.default_rng(3)
    loud = rng.normal(0, 0.3, 20 * rate)
    quiet = rng.normal(0, 0.001, 20 * rate)
    samples = np.concatenate([loud, quiet]).astype(np.float32)  # 20 s of calls, then 20 s of quiet background
    starts = choose_crop_starts(samples, clip_samples=5 * rate, step_samples=rate, crops=4,
                                energy_exponent=RECORDING_NOISE_EXPONENT, rng=np.random.default_rng(0))
    assert len(starts) == 4 and starts.min() >= 20 * rate
    loud_starts = choose_crop_starts(samples, clip_samples=5 * rate, step_samples=rate, crops=4, energy_exponent=2.0,
                                     rng=np.random.default_rng(0))
    assert loud_starts.max() + 5 * rate <= 20 * rate


def test_recording_noise_crops_add_real_background_beside_the_negatives_bank(tmp_path):
    from birdlab.data.synth import SynthConfig, synthesize

    root = tmp_path / "data"  # the quick set with 12-20 s recordings: room for quiet gaps between calls
    synthesize(dest=root, config=dataclasses.replace(SynthConfig.quick(), recording_seconds=(12.0, 20.0),
                                                     recording_median_seconds=15.0))
    spec = FeatureSpec()
    cache = FeatureCache(spec=spec, root=tmp_path / "cache")
    config = dataclasses.replace(tiny(), recording_noise_crops=2, crop_energy_exponent=2.0)
    data = prepare_training_data(data_dir=root, config=config, spec=spec, cache=cache, progress=False)
    plain = prepare_training_data(data_dir=root, config=dataclasses.replace(tiny(), crop_energy_exponent=2.0),
                                  spec=spec, cache=cache, progress=False)

    n_train = len(data.split.train_recordings)
    assert plain.recording_noise is None
    assert data.recording_noise is not None and n_train <= len(data.recording_noise) <= 2 * n_train
    assert len(data.noise_bank) == len(plain.noise_bank)  # negatives still come from the nocall/synthetic bank
    quiet_db = np.asarray(data.recording_noise).mean()
    crops_db = np.asarray(data.train.features).mean()
    assert quiet_db < crops_db  # the gaps between calls are quieter than the crops the model learns from
    with pytest.raises(ConfigError, match="recording_noise_crops"):
        dataclasses.replace(tiny(), recording_noise_crops=-1)
