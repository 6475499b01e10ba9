"""Fetch the species subset of BirdCLEF 2021 from Kaggle, resumably, without the whole ~30 GB.

What is fetched, into the layout `birdlab.data.birdclef2021` reads:

    <dest>/train_metadata.csv, <dest>/train_soundscape_labels.csv      (skipped when present, unless refresh)
    <dest>/train_short_audio/<code>/<filename>                          (only the subset's primary labels)
    <dest>/train_soundscapes/<audio_id>_<site>_<date>.ogg               (all of them; found in the file listing)

Every file arrives in a staging folder, is unzipped when Kaggle wrapped it in a zip, is written to
`<final>.part` and then renamed onto `<final>`; so a file present with a non-zero size is complete, and a
`.part` left by an interrupted run is simply redone. A transient error (HTTP 429, HTTP 5xx, a timeout) is
retried with exponential backoff (`RetryPolicy`); one file that still fails is recorded and the rest continue;
a listing that still fails, missing or rejected credentials (HTTP 401) or unaccepted competition rules
(HTTP 403) stop the run with a one-line `UserError` that says what to do (a rerun resumes).

The file-list logic is pure functions over the small `KaggleClient` protocol of `birdlab.data.kaggle_client`, whose
`KaggleApiClient` (over the official `kaggle` package) is what users run; tests drive the same code with a fake.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from birdlab import paths
from birdlab.data.birdclef2021 import (
    METADATA_CSV,
    SHORT_AUDIO_DIR,
    SOUNDSCAPE_LABELS_CSV,
    SOUNDSCAPES_DIR,
    BirdCLEF2021,
    Recording,
    parse_soundscape_name,
)
from birdlab.data.kaggle_client import (
    COMPETITION,
    DEFAULT_RETRY_POLICY,
    LIST_PAGE_SIZE,
    KaggleApiClient,
    KaggleClient,
    KaggleUnavailableError,
    RemoteFile,
    RetryPolicy,
    call_kaggle,
    describe_error,
    iter_listing,
    with_retries,
)
from birdlab.data.species import load_species
from birdlab.errors import DataFormatError, UserError

METADATA_FILES = (METADATA_CSV, SOUNDSCAPE_LABELS_CSV)
DOWNLOAD_WORKERS = 4
"""Parallel file downloads (each file is an API call plus a transfer; one at a time is latency-bound)."""
PART_SUFFIX = ".part"
STAGING_DIR = ".kaggle-staging"
"""Folder under dest where the client drops each download before it is unzipped/renamed into place."""


def _print_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def connect_kaggle() -> KaggleClient:
    """The real client (tests replace this function to inject a fake one)."""
    return KaggleApiClient.connect()


# --- the report ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedFile:
    name: str
    """Competition path of the file, e.g. 'train_short_audio/mallar3/XC123.ogg'."""
    reason: str


@dataclass(frozen=True)
class DownloadReport:
    """What one `download_subset` run did; names are competition paths relative to dest."""

    dest: Path
    species: tuple[str, ...]
    """eBird codes of the subset."""
    planned: tuple[str, ...]
    """Every file this run wanted present (metadata, subset short audio, soundscapes)."""
    downloaded: tuple[str, ...]
    skipped: tuple[str, ...]
    """Already present with a non-zero size."""
    failed: tuple[FailedFile, ...]
    bytes_downloaded: int
    species_without_recordings: tuple[str, ...] = ()
    """Subset codes with no row in train_metadata.csv (a typo in the species CSV?)."""

    def describe(self) -> str:
        lines = [
            f"BirdCLEF 2021 subset in {self.dest}: {len(self.species)} species, {len(self.planned)} files wanted",
            f"  downloaded {len(self.downloaded)} ({self.bytes_downloaded / 1e6:.1f} MB), "
            f"already present {len(self.skipped)}, failed {len(self.failed)}",
        ]
        if self.species_without_recordings:
            lines.append("  species without any recording in train_metadata.csv: "
                         + ", ".join(self.species_without_recordings))
        for failure in self.failed:
            lines.append(f"  FAILED {failure.name}: {failure.reason}")
        if self.failed:
            lines.append("  rerun the same command to retry the failed files (present files are skipped)")
        return "\n".join(lines)


@dataclass
class _Tally:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)
    bytes_downloaded: int = 0


# --- the file-list logic (pure) ------------------------------------------------------------------------------


def short_audio_names(recordings: Iterable[Recording], *, species_codes: Iterable[str]) -> tuple[str, ...]:
    """'train_short_audio/<code>/<filename>' for every recording whose primary label is in the subset.

    Sorted and without duplicates. Raises DataFormatError for a label or file name that is not a plain name.
    """
    codes = frozenset(species_codes)
    names = set()
    for recording in recordings:
        if recording.primary_label not in codes:
            continue
        for part in (recording.primary_label, recording.filename):
            if not _is_plain_name(part):
                raise DataFormatError(METADATA_CSV, None, f"{part!r} is not a plain file name (recording "
                                      f"{recording.primary_label}/{recording.filename}); is the metadata intact?")
        names.add(f"{SHORT_AUDIO_DIR}/{recording.primary_label}/{recording.filename}")
    return tuple(sorted(names))


def species_without_recordings(recordings: Iterable[Recording], *, species_codes: Sequence[str]) -> tuple[str, ...]:
    """Subset codes that are no recording's primary label, in the subset's order."""
    labels = {r.primary_label for r in recordings}
    return tuple(code for code in species_codes if code not in labels)


def is_soundscape_name(name: str) -> bool:
    """True for 'train_soundscapes/<audio_id>_<site>_<YYYYMMDD>.ogg'."""
    path = PurePosixPath(name)
    if path.parent != PurePosixPath(SOUNDSCAPES_DIR) or path.suffix.lower() != ".ogg":
        return False
    try:
        parse_soundscape_name(Path(path.name))
    except DataFormatError:
        return False
    return True


def _soundscape_id_of(name: str) -> str:
    return parse_soundscape_name(Path(PurePosixPath(name).name)).soundscape_id


def soundscape_names(listing: Iterable[RemoteFile], *, soundscape_ids: Iterable[str] = ()) -> tuple[str, ...]:
    """The train_soundscapes/ files of a (lazy) listing, sorted.

    soundscape_ids: '<audio_id>_<site>' of the rows of train_soundscape_labels.csv; once a file for each has
    been seen, the rest of the listing is not read (listing all ~63k files of BirdCLEF 2021 takes hundreds of
    requests). Empty: read all.
    """
    wanted = set(soundscape_ids)
    stop_when_found = bool(wanted)
    found = set()
    for remote in listing:
        if not is_soundscape_name(remote.name):
            continue
        found.add(remote.name)
        wanted.discard(_soundscape_id_of(remote.name))
        if stop_when_found and not wanted:
            break
    return tuple(sorted(found))


def missing_soundscape_ids(names: Iterable[str], *, soundscape_ids: Iterable[str]) -> tuple[str, ...]:
    """Soundscape ids (from the labels CSV) with no soundscape file among names."""
    have = {_soundscape_id_of(n) for n in names}
    return tuple(sorted(set(soundscape_ids) - have))


def is_present(dest: Path, name: str) -> bool:
    """A file counts as downloaded when it exists with a non-zero size (a crash leaves only '.part' files)."""
    path = dest / name
    return path.is_file() and path.stat().st_size > 0


# --- one file ------------------------------------------------------------------------------------------------


def _is_zip_wrapper(arrived: Path, *, file_name: str) -> bool:
    """Kaggle serves large files zipped: a request for 'x.csv' arrives as 'x.csv.zip' (named after the storage
    URL, so only the '.zip' ending is relied on)."""
    requested = PurePosixPath(file_name).name
    return arrived.name.lower().endswith(".zip") and not requested.lower().endswith(".zip")


def _unzip_one(archive: Path, *, file_name: str, out: Path) -> None:
    """Write the member of a Kaggle zip wrapper that is file_name to out."""
    requested = PurePosixPath(file_name).name
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if len(members) != 1:
                members = [m for m in members if PurePosixPath(m.filename).name == requested]
            if len(members) != 1:
                raise OSError(f"the zip Kaggle sent for {file_name} does not hold exactly one {requested}")
            with z.open(members[0]) as source, out.open("wb") as target:
                shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as exc:
        raise OSError(f"the zip Kaggle sent for {file_name} is corrupt ({exc})") from None


def fetch_file(client: KaggleClient, *, competition: str, name: str, dest: Path, staging: Path | None = None,
               retry: RetryPolicy = DEFAULT_RETRY_POLICY, log: Callable[[str], None] = _print_stderr) -> int:
    """Download one competition file to dest/name via a staging folder and dest/name.part; returns its size.

    staging: an empty folder of this download alone (default dest/.kaggle-staging/0), emptied before each try
    and removed afterwards. A transient error is retried as `retry` says (each retry logged), then raised as
    KaggleUnavailableError. The final name appears only by an atomic rename of a complete, non-empty file.
    """
    final = dest / name
    part = final.with_name(final.name + PART_SUFFIX)
    staging = staging or dest / STAGING_DIR / "0"
    final.parent.mkdir(parents=True, exist_ok=True)

    def attempt() -> Path:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return call_kaggle(client.download_file, competition=competition, file_name=name, dest_dir=staging)

    try:
        arrived = with_retries(attempt, policy=retry, what=name, log=log)
        part.unlink(missing_ok=True)
        if _is_zip_wrapper(arrived, file_name=name):
            _unzip_one(arrived, file_name=name, out=part)
        else:
            shutil.move(arrived, part)
        size = part.stat().st_size
        if size == 0:
            raise OSError("Kaggle sent an empty file")
        with part.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(part, final)
        return size
    except Exception:
        part.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch_all(client: KaggleClient, names: Sequence[str], *, competition: str, dest: Path, tally: _Tally,
               log: Callable[[str], None], retry: RetryPolicy, refresh: bool = False, workers: int = 1) -> None:
    """Fetch each missing name with `workers` parallel downloads; a failure is recorded and the rest go on.

    An access error (UserError) or an interrupt cancels what has not started and is re-raised once the
    downloads in flight have ended. The tally lists names in the order of `names`, whatever the finishing order.
    """
    todo = []
    for name in names:
        if not refresh and is_present(dest, name):
            tally.skipped.append(name)
        else:
            todo.append(name)
    outcomes: list[tuple[int, str, int | FailedFile]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kaggle-download") as pool:
        futures = {
            pool.submit(fetch_file, client, competition=competition, name=name, dest=dest,
                        staging=dest / STAGING_DIR / str(i), retry=retry, log=log): (i, name)
            for i, name in enumerate(todo)
        }
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                i, name = futures[future]
                try:
                    size = future.result()
                except UserError:
                    raise
                except Exception as exc:
                    reason = str(exc) if isinstance(exc, KaggleUnavailableError) else f"{type(exc).__name__}: {exc}"
                    failure = FailedFile(name=name, reason=reason)
                    outcomes.append((i, name, failure))
                    log(f"[{done}/{len(todo)}] {name}: FAILED ({failure.reason})")
                    continue
                outcomes.append((i, name, size))
                log(f"[{done}/{len(todo)}] {name} ({size / 1e3:.0f} kB)")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            shutil.rmtree(dest / STAGING_DIR, ignore_errors=True)
    for _, name, outcome in sorted(outcomes, key=lambda o: o[0]):
        if isinstance(outcome, FailedFile):
            tally.failed.append(outcome)
        else:
            tally.downloaded.append(name)
            tally.bytes_downloaded += outcome


# --- the job -------------------------------------------------------------------------------------------------


def download_subset(
    *,
    dest: str | Path,
    species_csv: str | Path | None = None,
    soundscapes: bool = True,
    client: KaggleClient | None = None,
    refresh_metadata: bool = False,
    competition: str = COMPETITION,
    list_page_size: int = LIST_PAGE_SIZE,
    workers: int = DOWNLOAD_WORKERS,
    log: Callable[[str], None] | None = None,
    retry: RetryPolicy | None = None,
) -> DownloadReport:
    """Fetch the subset of BirdCLEF 2021 named by species_csv into dest (see the module docstring).

    species_csv: default data/brittany_species.csv. client: default the real Kaggle client (needs credentials).
    refresh_metadata: download the two metadata CSVs again even when present.
    workers: parallel file downloads.
    log: one line per downloaded/failed/retried file (default: stderr).
    retry: how transient errors (HTTP 429, 5xx, timeouts) are retried (default DEFAULT_RETRY_POLICY).
    Raises UserError for missing/rejected credentials, unaccepted rules, or metadata or a listing that cannot
    be fetched; files already downloaded are kept, so a rerun resumes.
    """
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    dest = Path(dest)
    log = log or _print_stderr
    retry = retry or DEFAULT_RETRY_POLICY
    species = load_species(species_csv or paths.BRITTANY_SPECIES_CSV)
    codes = tuple(s.ebird_code for s in species)
    dest.mkdir(parents=True, exist_ok=True)
    client = client if client is not None else connect_kaggle()
    tally = _Tally()

    metadata = METADATA_FILES if soundscapes else (METADATA_CSV,)
    _fetch_all(client, metadata, competition=competition, dest=dest, tally=tally, log=log, retry=retry,
               refresh=refresh_metadata)
    if tally.failed:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in tally.failed)
        raise UserError(f"could not fetch the metadata into {dest} ({reasons}); nothing else was downloaded, "
                        "rerun the command later")

    dataset = BirdCLEF2021(dest)
    recordings = dataset.recordings()
    planned = list(metadata) + list(short_audio_names(recordings, species_codes=codes))
    if soundscapes:
        scape_ids = sorted({row.soundscape_id for row in dataset.soundscape_rows()})
        log(f"listing the files of {competition} to find {SOUNDSCAPES_DIR}/ ...")
        listing = iter_listing(client, competition=competition, page_size=list_page_size, retry=retry, log=log)
        try:
            found = soundscape_names(listing, soundscape_ids=scape_ids)
        except (KaggleUnavailableError, OSError) as exc:  # OSError: requests' connection errors, among others
            reason = str(exc) if isinstance(exc, KaggleUnavailableError) else describe_error(exc)
            raise UserError(f"listing the files of {competition} failed: {reason}; the files already in {dest} "
                            "are kept, rerun the same command later to resume") from None
        planned += found
        for scape_id in missing_soundscape_ids(found, soundscape_ids=scape_ids):
            tally.failed.append(FailedFile(name=f"{SOUNDSCAPES_DIR}/{scape_id}_*.ogg",
                                           reason=f"soundscape {scape_id} of {SOUNDSCAPE_LABELS_CSV} is not in "
                                                  "the competition's file listing"))
    wanted = planned[len(metadata):]
    log(f"{len(wanted)} audio files in the subset, {sum(not is_present(dest, n) for n in wanted)} to download")
    _fetch_all(client, wanted, competition=competition, dest=dest, tally=tally, log=log, retry=retry, workers=workers)

    return DownloadReport(
        dest=dest,
        species=codes,
        planned=tuple(planned),
        downloaded=tuple(tally.downloaded),
        skipped=tuple(tally.skipped),
        failed=tuple(tally.failed),
        bytes_downloaded=tally.bytes_downloaded,
        species_without_recordings=species_without_recordings(recordings, species_codes=codes),
    )


def _is_plain_name(text: str) -> bool:
    return bool(text) and text not in (".", "..") and "/" not in text and "\\" not in text and "\0" not in text
