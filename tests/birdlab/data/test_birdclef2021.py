"""The BirdCLEF 2021 reader and the Brittany subset filter."""

import csv
import shutil

import pytest

from birdlab.data.birdclef2021 import (
    METADATA_COLUMNS,
    BirdCLEF2021,
    DatasetError,
    MergedDatasets,
    SoundscapeRow,
    find_missing_audio,
    open_dataset,
    parse_soundscape_name,
    read_soundscape_labels,
    resolve_soundscape_id,
)
from birdlab.data.species import BRITTANY_BOX, SpeciesFilter, birdclef2021_codes, load_species
from birdlab.errors import DataFormatError


def test_species_facts_are_24_birdclef2021_codes_with_provenance():
    species = load_species()
    codes = birdclef2021_codes()
    assert len(codes) == 397 and len(set(codes)) == 397
    assert len(species) == 24
    assert all(s.ebird_code in codes for s in species)
    with open("data/brittany_species.csv", newline="") as f:
        assert all(row["source"] for row in csv.DictReader(f))


def test_reads_the_synthetic_dataset(synthetic_quick):
    dataset = BirdCLEF2021(synthetic_quick)
    recordings = dataset.recordings()
    assert len(recordings) == 12
    rec = recordings[0]
    assert rec.audio_path == synthetic_quick / "train_short_audio" / rec.primary_label / rec.filename
    assert rec.audio_path.is_file()
    assert isinstance(rec.secondary_labels, tuple) and isinstance(rec.rating, float)
    rows = dataset.soundscape_rows()
    assert [r.seconds for r in rows] == [5, 10, 15, 20, 25, 30]
    assert any(r.is_nocall for r in rows)
    scapes = dataset.soundscapes()
    assert set(scapes) == {r.soundscape_id for r in rows} == {f"{r.audio_id}_{r.site}" for r in rows}
    assert all(rows[0].row_id == f"{r.audio_id}_{r.site}_{r.seconds}" for r in rows[:1])


def _write_metadata(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


GOOD_ROW = {
    "primary_label": "mallar3", "secondary_labels": "['hergul', 'amecro']", "type": "['call']",
    "latitude": "48.1", "longitude": "-3.2", "scientific_name": "Anas platyrhynchos", "common_name": "Mallard",
    "author": "A", "date": "2019-05-01", "filename": "XC1.ogg", "license": "CC", "rating": "4.5",
    "time": "08:00", "url": "u",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secondary_labels": "['a', "}, "row 3: column 'secondary_labels' must be a list"),
        ({"type": "[1, 2]"}, "row 3: column 'type' must be a list of strings"),
        ({"rating": "good"}, "row 3: column 'rating' must be a number"),
        ({"latitude": "123"}, "row 3: latitude 123.0 is outside"),
        ({"primary_label": ""}, "row 3: empty 'primary_label'"),
    ],
)
def test_malformed_metadata_rows_name_file_and_row(tmp_path, change, message):
    path = tmp_path / "train_metadata.csv"
    _write_metadata(path, [GOOD_ROW, {**GOOD_ROW, **change}])
    with pytest.raises(DataFormatError, match=message) as info:
        BirdCLEF2021(tmp_path).recordings()
    assert str(path) in str(info.value)


def test_missing_columns_and_missing_file_are_explained(tmp_path):
    with pytest.raises(DataFormatError, match="file not found"):
        BirdCLEF2021(tmp_path).recordings()
    (tmp_path / "train_metadata.csv").write_text("primary_label,filename\nx,y\n")
    with pytest.raises(DataFormatError, match=r"row 1: missing column\(s\)"):
        BirdCLEF2021(tmp_path).recordings()


@pytest.mark.parametrize(
    ("line", "message"),
    [("a_SSW_7,SSW,7,7,nocall", "multiple of 5"), ("a_SSW_5,SSW,x,5,nocall", "must be integers"),
     ("a_SSW_5,SSW,7,5,", "empty 'birds'"), ("a_SSW_5,SSW,7,5,nocall amecro", "'nocall' together")],
)
def test_malformed_soundscape_rows_name_file_and_row(tmp_path, line, message):
    path = tmp_path / "train_soundscape_labels.csv"
    path.write_text(f"row_id,site,audio_id,seconds,birds\n7_SSW_5,SSW,7,5,amecro\n{line}\n")
    with pytest.raises(DataFormatError, match=f"row 3: .*{message}"):
        read_soundscape_labels(path)


def test_soundscape_file_names(tmp_path):
    scape = parse_soundscape_name(tmp_path / "10534_SSW_20170429.ogg")
    assert (scape.audio_id, scape.site, scape.date) == (10534, "SSW", "20170429")
    with pytest.raises(DataFormatError, match="audio_id"):
        parse_soundscape_name(tmp_path / "soundscape.ogg")


def test_filter_keeps_subset_drops_foreign_secondaries_and_applies_rating_and_box(tmp_path):
    rows = [
        GOOD_ROW,
        {**GOOD_ROW, "primary_label": "amecro", "filename": "XC2.ogg"},
        {**GOOD_ROW, "filename": "XC3.ogg", "rating": "1.0"},
        {**GOOD_ROW, "filename": "XC4.ogg", "latitude": "40.0"},
    ]
    _write_metadata(tmp_path / "train_metadata.csv", rows)
    recordings = BirdCLEF2021(tmp_path).recordings()
    subset = SpeciesFilter.for_species(load_species())
    kept = subset.recordings(recordings)
    assert [r.filename for r in kept] == ["XC1.ogg", "XC3.ogg", "XC4.ogg"]
    assert kept[0].secondary_labels == ("hergul",)
    strict = SpeciesFilter.for_species(load_species(), min_rating=3.0, bbox=BRITTANY_BOX)
    assert [r.filename for r in strict.recordings(recordings)] == ["XC1.ogg"]


def test_birds_outside_the_subset_count_as_nocall():
    subset = SpeciesFilter.for_species(load_species())
    row = SoundscapeRow(row_id="1_SSW_5", site="SSW", audio_id=1, seconds=5, birds=("amecro", "mallar3"))
    assert subset.soundscape_row(row).birds == ("mallar3",)
    only_foreign = subset.soundscape_row(SoundscapeRow("1_SSW_10", "SSW", 1, 10, ("amecro",)))
    assert only_foreign.is_nocall and only_foreign.birds_text == "nocall"


def test_missing_audio_is_reported_by_the_summary(synthetic_quick, tmp_path):
    from birdlab.data.summary import summarize_dataset

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_quick, copy)
    victim = BirdCLEF2021(copy).recordings()[0].audio_path
    victim.unlink()
    summary = summarize_dataset(copy)
    assert summary.missing_audio == 1 and summary.recordings == 12
    assert "1 recording(s) listed in the metadata have no audio file" in summary.to_text()


# --- robustness: soundscape ids, stray files, missing audio ---------------------------------------------------


def test_soundscapes_with_one_audio_id_at_two_sites_do_not_collide(tmp_path):
    folder = tmp_path / "train_soundscapes"
    folder.mkdir()
    for name in ("7019_COR_20190904.ogg", "7019_SSW_20170429.ogg", "10534_SSW_20170429.ogg"):
        (folder / name).write_bytes(b"OggS")
    (tmp_path / "train_soundscape_labels.csv").write_text(
        "row_id,site,audio_id,seconds,birds\n7019_COR_5,COR,7019,5,cangoo\n7019_SSW_5,SSW,7019,5,nocall\n")

    scapes = BirdCLEF2021(tmp_path).soundscapes()

    assert sorted(scapes) == ["10534_SSW", "7019_COR", "7019_SSW"]
    assert scapes["7019_COR"].path.name == "7019_COR_20190904.ogg"
    assert scapes["7019_SSW"].path.name == "7019_SSW_20170429.ogg"
    rows = BirdCLEF2021(tmp_path).soundscape_rows()
    assert [scapes[r.soundscape_id].site for r in rows] == ["COR", "SSW"]


def test_a_bare_audio_id_resolves_only_when_one_site_uses_it():
    known = ["7019_COR", "7019_SSW", "10534_SSW"]
    assert resolve_soundscape_id("7019_SSW", known=known) == "7019_SSW"
    assert resolve_soundscape_id(10534, known=known) == "10534_SSW"
    assert resolve_soundscape_id("10534", known=known) == "10534_SSW"
    assert resolve_soundscape_id(999, known=known) is None
    with pytest.raises(ValueError, match="audio_id 7019 names 2 soundscapes"):
        resolve_soundscape_id(7019, known=known)


def test_stray_files_in_train_soundscapes_are_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "train_soundscapes"
    folder.mkdir()
    (folder / "10534_SSW_20170429.ogg").write_bytes(b"OggS")
    strays = ("10534_SSW_20170429.ogg.part", "README.txt", "notes.ogg", "soundscape_1_COR.ogg")
    for name in strays:
        (folder / name).write_bytes(b"x")
    (folder / "subfolder").mkdir()
    dataset = BirdCLEF2021(tmp_path)

    with caplog.at_level("WARNING", logger="birdlab.data"):
        scapes = dataset.soundscapes()

    assert list(scapes) == ["10534_SSW"]
    assert sorted(p.name for p in dataset.stray_soundscape_files) == sorted(strays)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "skipped 4 file(s) not named <audio_id>_<site>_<YYYYMMDD>.ogg" in message
    assert all(name in message for name in strays)


def test_two_files_of_one_soundscape_keep_the_first_and_warn(tmp_path, caplog):
    folder = tmp_path / "train_soundscapes"
    folder.mkdir()
    for name in ("7019_COR_20190904.ogg", "7019_COR_20190905.ogg"):
        (folder / name).write_bytes(b"OggS")

    with caplog.at_level("WARNING", logger="birdlab.data"):
        scapes = BirdCLEF2021(tmp_path).soundscapes()

    assert scapes["7019_COR"].date == "20190904" and len(scapes) == 1
    assert "7019_COR_20190905.ogg is skipped, 7019_COR_20190904.ogg already holds soundscape 7019_COR" in caplog.text


def test_missing_audio_is_counted_and_named_by_the_reader(synthetic_quick, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_quick, copy)
    recordings = BirdCLEF2021(copy).recordings()
    for victim in recordings[:7]:
        victim.audio_path.unlink()
    names = [f"{r.primary_label}/{r.filename}" for r in recordings[:7]]

    missing = BirdCLEF2021(copy).missing_audio

    assert (missing.listed, missing.count, missing.missing) == (12, 7, tuple(names))
    assert missing.describe() == ("7 of 12 recording(s) listed in train_metadata.csv have no audio file under "
                                  f"train_short_audio/ and were left out: {', '.join(names[:5])} ... and 2 more")
    assert missing.to_dict() == {"listed": 12, "missing": 7, "first_missing": names[:5]}
    one_species = [r for r in recordings if r.primary_label == recordings[6].primary_label]
    subset = find_missing_audio(one_species)
    expected = [f"{r.primary_label}/{r.filename}" for r in one_species if r in recordings[:7]]
    assert subset.listed == len(one_species) and list(subset.missing) == expected and 0 < len(expected) < 3
    assert BirdCLEF2021(synthetic_quick).missing_audio.describe() == ""


def test_several_roots_read_as_one_and_refuse_a_recording_or_soundscape_in_two(synthetic_quick, tmp_path):
    external = tmp_path / "external"
    external.mkdir()
    _write_metadata(external / "train_metadata.csv", [GOOD_ROW, {**GOOD_ROW, "filename": "XC2.ogg"}])
    merged = open_dataset([synthetic_quick, external])
    assert isinstance(merged, MergedDatasets) and merged.roots == (synthetic_quick, external)
    own = BirdCLEF2021(synthetic_quick).recordings()
    recordings = merged.recordings()
    assert recordings[: len(own)] == own and [r.filename for r in recordings[len(own):]] == ["XC1.ogg", "XC2.ogg"]
    assert recordings[-1].audio_path == external / "train_short_audio" / "mallar3" / "XC2.ogg"
    assert merged.soundscapes() == BirdCLEF2021(synthetic_quick).soundscapes()
    assert isinstance(open_dataset(synthetic_quick), BirdCLEF2021)

    twin = tmp_path / "twin"
    shutil.copytree(external, twin)
    with pytest.raises(DatasetError, match=r"mallar3/XC1.ogg is in both .*external and .*twin"):
        open_dataset([external, twin]).recordings()
    scapes = tmp_path / "scapes" / "train_soundscapes"
    scapes.mkdir(parents=True)
    for name in sorted(p.name for p in (synthetic_quick / "train_soundscapes").iterdir())[:1]:
        shutil.copy(synthetic_quick / "train_soundscapes" / name, scapes / name)
    with pytest.raises(DatasetError, match="is in both"):
        open_dataset([synthetic_quick, scapes.parent]).soundscapes()
REAL_FORMAT_METADATA = '''\
primary_label,secondary_labels,type,latitude,longitude,scientific_name,common_name,author,date,filename,license,rating,time,url
mallar3,"['rewbla', 'amecro', 'norsho']","['adult', 'male', 'song']",-33.9261,18.4239,Anas platyrhynchos,Mallard,Jérôme Dupré,2010-06-00,XC134896.ogg,Creative Commons Attribution-NonCommercial-ShareAlike 3.0,0.0,06:30:00 AM,https://www.xeno-canto.org/134896
mallar3,[],['call'],48.1173,-1.6778,Anas platyrhynchos,Mallard,A. Recordist,2019-05-01,XC2.ogg,CC,3.5,?,u
houspa,['amecro'],"['call', 'flight call']",47.2184,-1.5536,Passer domesticus,House Sparrow,B,2016-04-20,XC3.ogg,CC,5.0,,u
houspa,[],['song'],59.3293,18.0686,Passer domesticus,House Sparrow,B,2016-04-21,XC4.ogg,CC,4.5,8:00,u
'''
"""Typed in the real train_metadata.csv's form: quoted lists, 0.0 = unrated, free-text time, unknown day,
non-ASCII author, coordinates outside Europe, secondary labels outside the subset."""


def test_reads_the_real_metadata_traits_verbatim(tmp_path):
    (tmp_path / "train_metadata.csv").write_text(REAL_FORMAT_METADATA, encoding="utf-8")
    recordings = BirdCLEF2021(tmp_path).recordings()
    assert [r.time for r in recordings] == ["06:30:00 AM", "?", "", "8:00"]
    assert [r.rating for r in recordings] == [0.0, 3.5, 5.0, 4.5]
    assert recordings[0].secondary_labels == ("rewbla", "amecro", "norsho")
    assert recordings[0].type == ("adult", "male", "song") and recordings[2].type == ("call", "flight call")
    assert (recordings[0].latitude, recordings[0].longitude) == (-33.9261, 18.4239)
    assert recordings[0].author == "Jérôme Dupré" and recordings[0].date == "2010-06-00"
    kept = SpeciesFilter.for_species(load_species()).recordings(recordings)
    assert [r.secondary_labels for r in kept] == [("norsho",), (), (), ()]


def test_reads_soundscape_rows_of_other_species_and_several_birds(tmp_path):
    path = tmp_path / "train_soundscape_labels.csv"
    path.write_text("row_id,site,audio_id,seconds,birds\n7019_COR_5,COR,7019,5,nocall\n"
                    "7019_COR_10,COR,7019,10,rucwar\n2782_SSW_600,SSW,2782,600,cangoo mallar3\n")
    rows = read_soundscape_labels(path)
    assert [r.birds for r in rows] == [(), ("rucwar",), ("cangoo", "mallar3")]
    assert [r.start_seconds for r in rows] == [0, 5, 595]
    filtered = SpeciesFilter.for_species(load_species()).soundscape_rows(rows)
    assert [r.is_nocall for r in filtered] == [True, True, False]
