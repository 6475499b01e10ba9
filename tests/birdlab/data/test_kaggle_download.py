"""birdlab.data.kaggle_download: the file-list logic and error paths, driven by a fake Kaggle client.

The fake keeps the competition in memory and writes each download the way the kaggle package does
(`<dest_dir>/<file_name>`, or `<file_name>.zip` for a zipped one); the metadata is a real
train_metadata.csv / train_soundscape_labels.csv read by birdlab.data.birdclef2021, and the species subset is the real
data/brittany_species.csv. Credentials are checked against the real kaggle package in a subprocess.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from birdlab.cli import main
from birdlab.data import kaggle_download
from birdlab.data.kaggle_client import (
    RULES_URL,
    FilePage,
    KaggleUnavailableError,
    RemoteFile,
    RetryPolicy,
    find_arrival,
    with_retries,
)
from birdlab.data.kaggle_download import (
    PART_SUFFIX,
    STAGING_DIR,
    download_subset,
    is_soundscape_name,
    short_audio_names,
)
from birdlab.data.species import birdclef2021_codes, load_species
from birdlab.errors import UserError
from birdlab.paths import REPO_ROOT

SUBSET = tuple(s.ebird_code for s in load_species())
OUTSIDE = tuple(c for c in birdclef2021_codes() if c not in SUBSET)[:2]
SUBSET_RECORDINGS = {SUBSET[0]: 3, SUBSET[1]: 2}
OUTSIDE_RECORDINGS = {OUTSIDE[0]: 2, OUTSIDE[1]: 1}
SOUNDSCAPES = ("train_soundscapes/10534_SSW_20170429.ogg", "train_soundscapes/7019_COR_20190904.ogg")
OTHER_COMPETITION_FILES = ("sample_submission.csv", "test.csv", "test_soundscapes/README.txt")


# --- the fake competition ------------------------------------------------------------------------------------


def http_error(status: int) -> requests.HTTPError:
    """The exception kagglesdk raises for an HTTP error status."""
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Client Error", response=response)


class FakeKaggle:
    """In-memory competition: a paged listing and single-file downloads written like the kaggle package."""

    def __init__(self, files: dict[str, bytes], *, zipped: frozenset[str] = frozenset(),
                 errors: dict[str, BaseException] | None = None,
                 flaky: dict[str, list[BaseException]] | None = None) -> None:
        self.files = files
        self.zipped = zipped
        self.errors = errors or {}
        """Raised on every request of that name ('<listing>' = every listing page)."""
        self.flaky = flaky or {}
        """Raised once each, in order, on the first requests of that name; then it works."""
        self.requested: list[str] = []
        self.list_tokens: list[str | None] = []

    def list_files(self, *, competition: str, page_token: str | None, page_size: int) -> FilePage:
        assert competition == "birdclef-2021"
        self.list_tokens.append(page_token)
        if "<listing>" in self.errors:
            raise self.errors["<listing>"]
        if self.flaky.get("<listing>"):
            raise self.flaky["<listing>"].pop(0)
        names = list(self.files)
        start = int(page_token or 0)
        end = start + page_size
        return FilePage(files=tuple(RemoteFile(n, len(self.files[n])) for n in names[start:end]),
                        next_page_token=str(end) if end < len(names) else None)

    def download_file(self, *, competition: str, file_name: str, dest_dir: Path) -> Path:
        self.requested.append(file_name)
        if file_name in self.errors:
            raise self.errors[file_name]
        if self.flaky.get(file_name):
            (dest_dir / "half-written.ogg").write_bytes(b"x")  # what a dropped transfer may leave
            raise self.flaky[file_name].pop(0)
        if file_name not in self.files:
            raise http_error(404)
        out = dest_dir / file_name
        out.parent.mkdir(parents=True, exist_ok=True)
        if file_name in self.zipped:
            with zipfile.ZipFile(out.with_name(out.name + ".zip"), "w") as z:
                z.writestr(out.name, self.files[file_name])
        else:
            out.write_bytes(self.files[file_name])
        return find_arrival(dest_dir, file_name=file_name)


def metadata_csv(rng: np.random.Generator) -> tuple[bytes, list[str]]:
    """train_metadata.csv with every column, and the short-audio names it implies (all species)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["primary_label", "secondary_labels", "type", "latitude", "longitude", "scientific_name",
                     "common_name", "author", "date", "filename", "license", "rating", "time", "url"])
    names = []
    for code, count in {**SUBSET_RECORDINGS, **OUTSIDE_RECORDINGS}.items():
        for _ in range(count):
            xc = int(rng.integers(100_000, 999_999))
            filename = f"XC{xc}.ogg"
            writer.writerow([code, f"['{OUTSIDE[0]}']", "['call', 'song']", "48.1", "-3.2", "Sci name", "Common",
                             "A. Recordist", "2019-05-01", filename, "Creative Commons Attribution-NonCommercial-"
                             "ShareAlike 4.0", "4.5", "06:30", f"https://www.xeno-canto.org/{xc}"])
            names.append(f"train_short_audio/{code}/{filename}")
    return out.getvalue().encode(), names


def labels_csv() -> bytes:
    rows = ["row_id,site,audio_id,seconds,birds"]
    for name in SOUNDSCAPES:
        audio_id, site, _ = Path(name).stem.split("_")
        rows += [f"{audio_id}_{site}_5,{site},{audio_id},5,nocall",
                 f"{audio_id}_{site}_10,{site},{audio_id},10,{SUBSET[0]} {OUTSIDE[0]}"]
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def competition(rng: np.random.Generator) -> tuple[dict[str, bytes], list[str]]:
    """(all files of the fake competition in listing order, the subset's short-audio names)."""
    metadata, short_audio = metadata_csv(rng)
    files = {"train_metadata.csv": metadata, "train_soundscape_labels.csv": labels_csv()}
    for name in (*SOUNDSCAPES, *short_audio, *OTHER_COMPETITION_FILES):
        files[name] = rng.bytes(int(rng.integers(50, 400)))
    subset_audio = sorted(n for n in short_audio if n.split("/")[1] in SUBSET)
    return files, subset_audio


def quiet(_: str) -> None:
    """A log that drops progress lines."""


NO_WAIT = RetryPolicy(attempts=3, base_delay_s=0.0)
"""Retries without waiting (tests never sleep)."""


# --- the file list -------------------------------------------------------------------------------------------


def test_only_the_subset_files_are_requested(tmp_path, competition):
    files, subset_audio = competition
    fake = FakeKaggle(files)

    report = download_subset(dest=tmp_path, client=fake, log=quiet)

    expected = ["train_metadata.csv", "train_soundscape_labels.csv", *subset_audio, *sorted(SOUNDSCAPES)]
    assert fake.requested[:2] == expected[:2] and sorted(fake.requested) == sorted(expected)
    assert list(report.downloaded) == expected
    assert report.failed == () and report.skipped == ()
    assert len(subset_audio) == sum(SUBSET_RECORDINGS.values())
    for name in expected:
        assert (tmp_path / name).read_bytes() == files[name], name
    assert not any(code in n for n in fake.requested for code in OUTSIDE if n.startswith("train_short_audio"))
    assert not list(tmp_path.rglob(f"*{PART_SUFFIX}")) and not (tmp_path / STAGING_DIR).exists()
    assert report.bytes_downloaded == sum(len(files[n]) for n in expected)
    assert set(report.species_without_recordings) == set(SUBSET) - set(SUBSET_RECORDINGS)
    assert "failed 0" in report.describe()


def test_a_second_run_skips_files_already_present(tmp_path, competition):
    files, _ = competition
    first = download_subset(dest=tmp_path, client=FakeKaggle(files), log=quiet)
    fake = FakeKaggle(files)

    second = download_subset(dest=tmp_path, client=fake, log=quiet)

    assert fake.requested == []
    assert second.downloaded == () and set(second.skipped) == set(first.downloaded)


def test_refresh_metadata_downloads_the_csvs_again(tmp_path, competition):
    files, _ = competition
    download_subset(dest=tmp_path, client=FakeKaggle(files), log=quiet)
    files["train_soundscape_labels.csv"] += b"7019_COR_15,COR,7019,15,nocall\n"
    fake = FakeKaggle(files)

    download_subset(dest=tmp_path, client=fake, refresh_metadata=True, log=quiet)

    assert fake.requested == ["train_metadata.csv", "train_soundscape_labels.csv"]
    assert (tmp_path / "train_soundscape_labels.csv").read_bytes() == files["train_soundscape_labels.csv"]


def test_a_part_file_or_an_empty_file_left_by_an_interrupted_run_is_redone(tmp_path, competition):
    files, subset_audio = competition
    download_subset(dest=tmp_path, client=FakeKaggle(files), log=quiet)
    interrupted, emptied = subset_audio[0], subset_audio[1]
    final = tmp_path / interrupted
    final.unlink()
    final.with_name(final.name + PART_SUFFIX).write_bytes(files[interrupted][:10])
    (tmp_path / emptied).write_bytes(b"")
    fake = FakeKaggle(files)

    report = download_subset(dest=tmp_path, client=fake, log=quiet)

    assert sorted(fake.requested) == sorted([interrupted, emptied])
    assert final.read_bytes() == files[interrupted]
    assert (tmp_path / emptied).read_bytes() == files[emptied]
    assert not final.with_name(final.name + PART_SUFFIX).exists()
    assert sorted(report.downloaded) == sorted([interrupted, emptied])


def test_an_interrupt_mid_download_leaves_no_final_file_and_the_rerun_completes(tmp_path, competition):
    files, subset_audio = competition
    victim = subset_audio[1]

    class Interrupting(FakeKaggle):
        def download_file(self, *, competition: str, file_name: str, dest_dir: Path) -> Path:
            if file_name == victim:
                (dest_dir / "half.ogg").write_bytes(files[victim][:5])
                raise KeyboardInterrupt
            return super().download_file(competition=competition, file_name=file_name, dest_dir=dest_dir)

    with pytest.raises(KeyboardInterrupt):
        download_subset(dest=tmp_path, client=Interrupting(files), log=quiet)
    assert not (tmp_path / victim).exists() and not (tmp_path / STAGING_DIR).exists()
    wanted = [*subset_audio, *SOUNDSCAPES]
    missing = {n for n in wanted if not (tmp_path / n).exists()}
    fake = FakeKaggle(files)

    report = download_subset(dest=tmp_path, client=fake, log=quiet)

    assert victim in missing and sorted(fake.requested) == sorted(missing)
    assert report.failed == () and all((tmp_path / n).read_bytes() == files[n] for n in wanted)


def test_a_zipped_arrival_is_unzipped(tmp_path, competition):
    files, subset_audio = competition
    zipped = frozenset({"train_metadata.csv", subset_audio[0], SOUNDSCAPES[0]})

    report = download_subset(dest=tmp_path, client=FakeKaggle(files, zipped=zipped), log=quiet)

    assert report.failed == ()
    for name in zipped:
        assert (tmp_path / name).read_bytes() == files[name], name
    assert not list(tmp_path.rglob("*.zip"))


def test_the_soundscape_listing_stops_once_every_labelled_audio_id_is_found(tmp_path, competition):
    files, _ = competition
    listed_first = {n: files[n] for n in (*SOUNDSCAPES, *files) if n in files}  # soundscapes first
    fake = FakeKaggle(listed_first)

    download_subset(dest=tmp_path, client=fake, list_page_size=1, log=quiet)

    assert fake.list_tokens == [None, "1"]


def test_an_empty_listing_page_with_a_next_token_is_followed(tmp_path, competition):
    files, _ = competition

    class GappyListing(FakeKaggle):
        def list_files(self, *, competition: str, page_token: str | None, page_size: int) -> FilePage:
            if page_token is None:
                self.list_tokens.append(page_token)
                return FilePage(files=(), next_page_token="0")
            return super().list_files(competition=competition, page_token=page_token, page_size=page_size)

    report = download_subset(dest=tmp_path, client=GappyListing(files), log=quiet)

    assert set(SOUNDSCAPES) <= set(report.downloaded)


def test_a_labelled_soundscape_missing_from_the_listing_is_reported(tmp_path, competition):
    files, _ = competition
    del files[SOUNDSCAPES[1]]

    report = download_subset(dest=tmp_path, client=FakeKaggle(files), log=quiet)

    assert [f.name for f in report.failed] == ["train_soundscapes/7019_COR_*.ogg"]
    assert "not in the competition's file listing" in report.failed[0].reason
    assert (tmp_path / SOUNDSCAPES[0]).is_file()


def test_no_soundscapes_skips_the_labels_and_the_listing(tmp_path, competition):
    files, subset_audio = competition
    fake = FakeKaggle(files)

    report = download_subset(dest=tmp_path, client=fake, soundscapes=False, log=quiet)

    assert fake.requested[0] == "train_metadata.csv" and sorted(fake.requested[1:]) == subset_audio
    assert fake.list_tokens == [] and list(report.downloaded) == ["train_metadata.csv", *subset_audio]
    assert report.failed == ()


def test_a_custom_species_csv_selects_its_species(tmp_path, competition):
    files, _ = competition
    species_csv = tmp_path / "one.csv"
    species_csv.write_text(f"ebird_code,scientific_name,common_name\n{OUTSIDE[0]},Sci,Common\n")
    fake = FakeKaggle(files)

    report = download_subset(dest=tmp_path / "raw", species_csv=species_csv, client=fake, soundscapes=False,
                             log=quiet)

    audio = [n for n in fake.requested if n.startswith("train_short_audio/")]
    assert len(audio) == OUTSIDE_RECORDINGS[OUTSIDE[0]] and all(f"/{OUTSIDE[0]}/" in n for n in audio)
    assert report.species == (OUTSIDE[0],)


def test_parallel_downloads_each_get_their_own_staging_folder(tmp_path, competition):
    files, subset_audio = competition
    overlap = threading.Barrier(2)
    staging_dirs: list[Path] = []

    class Overlapping(FakeKaggle):
        def download_file(self, *, competition: str, file_name: str, dest_dir: Path) -> Path:
            staging_dirs.append(dest_dir)
            if file_name in subset_audio[:2]:
                overlap.wait(timeout=10)  # both downloads must be in flight at once
            return super().download_file(competition=competition, file_name=file_name, dest_dir=dest_dir)

    report = download_subset(dest=tmp_path, client=Overlapping(files), workers=3, log=quiet)

    assert report.failed == ()
    assert list(report.downloaded) == ["train_metadata.csv", "train_soundscape_labels.csv", *subset_audio,
                                       *sorted(SOUNDSCAPES)]
    audio_staging = staging_dirs[2:]
    assert len(set(audio_staging)) == len(audio_staging)
    assert all(d.parent == tmp_path / STAGING_DIR for d in audio_staging)
    assert not (tmp_path / STAGING_DIR).exists()


# --- errors --------------------------------------------------------------------------------------------------


def test_one_failing_file_is_recorded_and_the_rest_continue(tmp_path, competition):
    files, subset_audio = competition
    broken = subset_audio[1]
    fake = FakeKaggle(files, errors={broken: requests.ConnectionError("connection reset by peer")})

    report = download_subset(dest=tmp_path, client=fake, log=quiet)

    assert [(f.name, f.reason) for f in report.failed] == [(broken, "ConnectionError: connection reset by peer")]
    assert set(SOUNDSCAPES) <= set(fake.requested)
    assert all((tmp_path / n).is_file() for n in subset_audio if n != broken)
    assert not (tmp_path / broken).exists() and not list(tmp_path.rglob(f"*{PART_SUFFIX}"))
    assert f"FAILED {broken}" in report.describe()


@pytest.mark.parametrize(
    ("status", "where", "phrase"),
    [
        (403, "train_metadata.csv", f"accept the competition rules at {RULES_URL}"),
        (403, "<listing>", f"accept the competition rules at {RULES_URL}"),
        (401, "train_metadata.csv", "Create New Token"),
    ],
)
def test_access_errors_stop_the_run_with_what_to_do(tmp_path, competition, status, where, phrase):
    files, _ = competition
    fake = FakeKaggle(files, errors={where: http_error(status)})

    with pytest.raises(UserError, match=f"HTTP {status}") as excinfo:
        download_subset(dest=tmp_path, client=fake, log=quiet)

    assert phrase in str(excinfo.value)


def test_a_403_on_one_audio_file_stops_the_run_too(tmp_path, competition):
    files, subset_audio = competition
    fake = FakeKaggle(files, errors={subset_audio[0]: http_error(403)})

    with pytest.raises(UserError, match="accept the competition rules"):
        download_subset(dest=tmp_path, client=fake, log=quiet)

    assert subset_audio[0] in fake.requested and not (tmp_path / subset_audio[0]).exists()


def test_metadata_that_cannot_be_fetched_is_a_user_error(tmp_path, competition):
    files, _ = competition
    fake = FakeKaggle(files, errors={"train_metadata.csv": http_error(500)})

    with pytest.raises(UserError, match="could not fetch the metadata.*gave up after 3 attempts.*rerun"):
        download_subset(dest=tmp_path, client=fake, retry=NO_WAIT, log=quiet)

    assert fake.requested == ["train_metadata.csv"] * NO_WAIT.attempts + ["train_soundscape_labels.csv"]


def test_missing_credentials_give_the_setup_message(tmp_path):
    """The real kaggle package, with a HOME and config dir that hold no credentials; no network is needed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle-config"))

    result = subprocess.run([sys.executable, "-m", "birdlab", "data", "download", "--dest", str(tmp_path / "raw")],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2, result.stderr
    assert "Kaggle credentials not found" in result.stderr
    for phrase in ("~/.kaggle/kaggle.json", "chmod 600", "KAGGLE_USERNAME", "KAGGLE_KEY", "Create New Token",
                   RULES_URL):
        assert phrase in result.stderr, phrase
    assert "Traceback" not in result.stderr and result.stdout == ""


# --- pure helpers --------------------------------------------------------------------------------------------


def test_short_audio_names_refuse_paths_that_leave_the_folder():
    from birdlab.data.birdclef2021 import Recording

    def recording(label: str, filename: str) -> Recording:
        return Recording(label, (), (), None, None, "", "", "", "", filename, "", 0.0, "", "", Path(filename))

    assert short_audio_names([recording(SUBSET[0], "XC1.ogg")], species_codes=SUBSET) == (
        f"train_short_audio/{SUBSET[0]}/XC1.ogg",)
    with pytest.raises(UserError, match="not a plain file name"):
        short_audio_names([recording(SUBSET[0], "../../etc.ogg")], species_codes=SUBSET)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("train_soundscapes/10534_SSW_20170429.ogg", True),
        ("train_soundscapes/README.txt", False),
        ("test_soundscapes/10534_SSW_20170429.ogg", False),
        ("train_soundscapes/sub/10534_SSW_20170429.ogg", False),
        ("train_soundscapes/soundscape.ogg", False),
    ],
)
def test_is_soundscape_name(name, expected):
    assert is_soundscape_name(name) is expected


# --- the command line ----------------------------------------------------------------------------------------


def test_cli_download_with_a_fake_client(tmp_path, competition, monkeypatch, capsys):
    files, subset_audio = competition
    fake = FakeKaggle(files, errors={subset_audio[0]: TimeoutError("read timed out")})
    monkeypatch.setattr(kaggle_download, "connect_kaggle", lambda: fake)
    monkeypatch.setattr(kaggle_download, "DEFAULT_RETRY_POLICY", NO_WAIT)
    dest = tmp_path / "raw"

    assert main(["data", "download", "--dest", str(dest)]) == 1
    out = capsys.readouterr()
    assert f"FAILED {subset_audio[0]}: TimeoutError: read timed out (gave up after 3 attempts)" in out.out
    assert fake.requested.count(subset_audio[0]) == NO_WAIT.attempts
    assert f"{subset_audio[1]} (" in out.err  # progress lines go to stderr

    fake.errors.clear()
    fake.requested.clear()
    assert main(["data", "download", "--dest", str(dest), "--no-soundscapes", "--workers", "1"]) == 0
    assert fake.requested == [subset_audio[0]]
    assert "downloaded 1" in capsys.readouterr().out

    fake.requested.clear()
    assert main(["data", "download", "--dest", str(dest), "--no-soundscapes", "--refresh"]) == 0
    assert fake.requested == ["train_metadata.csv"]
    capsys.readouterr()

    fake.errors[SOUNDSCAPES[0]] = http_error(403)
    (dest / SOUNDSCAPES[0]).unlink()
    assert main(["data", "download", "--dest", str(dest), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert main(["data", "download", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: Kaggle refused access") and RULES_URL in err
    assert "Traceback" not in err


# --- transient errors: retried with backoff, then one line that says a rerun resumes --------------------------


@pytest.mark.parametrize("error", [http_error(429), http_error(503), http_error(500), TimeoutError("read timed out"),
                                   requests.ReadTimeout("read timed out"), requests.ConnectTimeout("timed out")])
def test_a_transient_error_on_a_file_is_retried_and_the_file_arrives(tmp_path, competition, error):
    files, subset_audio = competition
    flaky = subset_audio[0]
    fake = FakeKaggle(files, flaky={flaky: [error, error]})
    lines: list[str] = []

    report = download_subset(dest=tmp_path, client=fake, retry=NO_WAIT, log=lines.append)

    assert report.failed == () and fake.requested.count(flaky) == 3
    assert (tmp_path / flaky).read_bytes() == files[flaky]
    assert sum(line.startswith(f"{flaky}: ") and "retrying in 0 s (attempt" in line for line in lines) == 2
    assert not (tmp_path / STAGING_DIR).exists()


def test_a_file_that_stays_unavailable_is_recorded_after_every_attempt_and_the_rest_arrive(tmp_path, competition):
    files, subset_audio = competition
    down = subset_audio[1]
    fake = FakeKaggle(files, errors={down: http_error(503)})

    report = download_subset(dest=tmp_path, client=fake, retry=NO_WAIT, log=quiet)

    assert fake.requested.count(down) == NO_WAIT.attempts
    assert [f.name for f in report.failed] == [down]
    assert report.failed[0].reason == "HTTPError: 503 Client Error (gave up after 3 attempts)"
    assert all((tmp_path / n).is_file() for n in (*subset_audio, *SOUNDSCAPES) if n != down)
    assert "rerun the same command to retry the failed files" in report.describe()


@pytest.mark.parametrize("error", [http_error(404), requests.ConnectionError("connection reset by peer")])
def test_errors_that_are_not_transient_are_not_retried(tmp_path, competition, error):
    files, subset_audio = competition
    fake = FakeKaggle(files, errors={subset_audio[0]: error})

    report = download_subset(dest=tmp_path, client=fake, retry=NO_WAIT, log=quiet)

    assert fake.requested.count(subset_audio[0]) == 1 and [f.name for f in report.failed] == [subset_audio[0]]


def test_a_listing_page_that_fails_transiently_is_fetched_again(tmp_path, competition):
    files, _ = competition
    fake = FakeKaggle(files, flaky={"<listing>": [http_error(502), TimeoutError("read timed out")]})

    report = download_subset(dest=tmp_path, client=fake, retry=NO_WAIT, log=quiet)

    assert fake.list_tokens[:3] == [None, None, None]  # the first page, three times
    assert report.failed == () and set(SOUNDSCAPES) <= set(report.downloaded)


def test_a_listing_that_stays_unavailable_is_one_line_without_traceback_and_a_rerun_resumes(
        tmp_path, competition, monkeypatch, capsys):
    files, subset_audio = competition
    down = FakeKaggle(files, errors={"<listing>": http_error(503)})
    monkeypatch.setattr(kaggle_download, "connect_kaggle", lambda: down)
    monkeypatch.setattr(kaggle_download, "DEFAULT_RETRY_POLICY", NO_WAIT)
    dest = tmp_path / "raw"

    assert main(["data", "download", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    message = [line for line in err.splitlines() if line.startswith("error:")]
    assert message == [message[-1]] and err.rstrip().endswith(message[0])
    assert "listing the files of birdclef-2021 failed: HTTPError: 503 Client Error (gave up after 3 attempts)" in (
        message[0])
    assert "rerun the same command later to resume" in message[0] and "Traceback" not in err
    assert len(down.list_tokens) == NO_WAIT.attempts
    assert (dest / "train_metadata.csv").is_file()

    up = FakeKaggle(files)
    monkeypatch.setattr(kaggle_download, "connect_kaggle", lambda: up)
    assert main(["data", "download", "--dest", str(dest)]) == 0
    assert "train_metadata.csv" not in up.requested  # kept from the first run
    assert all((dest / n).read_bytes() == files[n] for n in (*subset_audio, *SOUNDSCAPES))


def test_a_listing_that_cannot_connect_is_one_line_too(tmp_path, competition):
    files, _ = competition
    fake = FakeKaggle(files, errors={"<listing>": requests.ConnectionError("connection refused")})

    with pytest.raises(UserError) as excinfo:
        download_subset(dest=tmp_path, client=fake, retry=NO_WAIT, log=quiet)

    assert str(excinfo.value) == (f"listing the files of birdclef-2021 failed: ConnectionError: connection refused; "
                                  f"the files already in {tmp_path} are kept, rerun the same command later to resume")
    assert len(fake.list_tokens) == 1  # not a transient error: not retried


def test_retry_policy_backs_off_exponentially_and_honours_retry_after():
    policy = RetryPolicy(attempts=5, base_delay_s=2.0, max_delay_s=10.0)
    assert [policy.delay_s(retry=k) for k in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
    assert policy.delay_s(retry=1, retry_after_s=7.0) == 7.0 and policy.delay_s(retry=1, retry_after_s=99) == 10.0
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        RetryPolicy(attempts=0)

    waits: list[float] = []
    limited = http_error(429)
    limited.response.headers["Retry-After"] = "5"
    calls = iter([limited, http_error(503), http_error(503), http_error(503), http_error(503)])

    def call() -> None:
        raise next(calls)

    with pytest.raises(KaggleUnavailableError, match="gave up after 5 attempts") as excinfo:
        with_retries(call, policy=policy, what="x", log=quiet, sleep=waits.append)

    assert waits == [5.0, 4.0, 8.0, 10.0]
    assert excinfo.value.what == "x" and http_error(503).args == excinfo.value.last.args


def test_soundscapes_sharing_an_audio_id_at_two_sites_are_both_fetched(tmp_path, competition):
    files, _ = competition
    twin = "train_soundscapes/7019_SSW_20170429.ogg"
    files[twin] = b"another site"
    files["train_soundscape_labels.csv"] += b"7019_SSW_5,SSW,7019,5,nocall\n"
    listed = {n: files[n] for n in (*SOUNDSCAPES, twin, *files) if n in files}  # soundscapes first
    fake = FakeKaggle(listed)

    report = download_subset(dest=tmp_path, client=fake, list_page_size=1, log=quiet)

    assert report.failed == () and {*SOUNDSCAPES, twin} <= set(report.downloaded)
    assert fake.list_tokens == [None, "1", "2"]  # stops once each (audio_id, site) is found
    assert (tmp_path / twin).read_bytes() == b"another site"
