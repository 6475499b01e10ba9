"""Talking to Kaggle: a small `KaggleClient` protocol, its adapter over the official `kaggle` package, the
paged file listing, and the translation of HTTP 401/403 and missing credentials into messages that say what to do.

The adapter (`KaggleApiClient`) is what users run; `birdlab.data.kaggle_download` only uses the protocol, so its tests
drive it with an in-memory fake, and tests/birdlab/test_kaggle_client.py drives this adapter over real HTTP.
kaggle 2.x names used: `KaggleApi.authenticate()`, `competition_list_files(competition, page_token=, page_size=)`
(response `.files[i].name/.total_bytes`, `.next_page_token`) and `competition_download_file(competition, file_name,
path=, force=, quiet=)`, which writes `<path>/<file_name>` or, for a file served zipped, `<path>/<file_name>.zip`.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from birdlab.errors import UserError

COMPETITION = "birdclef-2021"
RULES_URL = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
LIST_PAGE_SIZE = 200
"""Files per page of the competition listing (the kaggle package's default is 20)."""
MAX_LIST_PAGES = 10_000
"""Safety stop for a listing whose page tokens never end (BirdCLEF 2021 has ~63k files: ~315 pages of 200)."""
KAGGLE_MARKER_SUFFIXES = (".kaggle-partial",)
"""Bookkeeping files the kaggle package may leave next to a download; never taken for the download itself."""

CREDENTIALS_HELP = (
    "Kaggle credentials not found. Create a token at kaggle.com -> Settings -> API -> Create New Token, then "
    "save the downloaded kaggle.json as ~/.kaggle/kaggle.json (chmod 600 ~/.kaggle/kaggle.json) or set "
    "KAGGLE_USERNAME and KAGGLE_KEY from it (a new-style API token can go in KAGGLE_API_TOKEN instead); "
    f"also accept the competition rules at {RULES_URL} with the same account, then rerun."
)
REJECTED_CREDENTIALS_HELP = (
    "Kaggle rejected the credentials (HTTP 401): the key in ~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY "
    "(or KAGGLE_API_TOKEN) is wrong, expired or revoked; create a new one at kaggle.com -> Settings -> API -> "
    "Create New Token and rerun (files already downloaded are kept)."
)
RULES_HELP = (
    f"Kaggle refused access to the {COMPETITION} data (HTTP 403): accept the competition rules at {RULES_URL} "
    "while logged in with the same account as your API token, then rerun (files already downloaded are kept)."
)
_T = TypeVar("_T")
TIMEOUT_ERROR_NAMES = frozenset({"TimeoutError", "Timeout", "ReadTimeout", "ConnectTimeout", "ReadTimeoutError",
                                 "ConnectTimeoutError"})
"""Exception class names (anywhere in the class's MRO) that mean a timeout: the builtin, requests' and urllib3's."""


@dataclass(frozen=True)
class RemoteFile:
    """One entry of a competition's file listing."""

    name: str
    """Path inside the competition, '/'-separated, e.g. 'train_soundscapes/10534_SSW_20170429.ogg'."""
    size_bytes: int
    """Size Kaggle reports (0 when unknown)."""


@dataclass(frozen=True)
class FilePage:
    """One page of a competition's file listing."""

    files: tuple[RemoteFile, ...]
    next_page_token: str | None
    """Token of the next page; None or '' on the last page."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a Kaggle call that hit a transient error (HTTP 429, HTTP 5xx, a timeout) is retried."""

    attempts: int = 5
    """Tries in all, the first one included (1 = never retry)."""
    base_delay_s: float = 2.0
    """Wait before the second try; doubled before each further try."""
    max_delay_s: float = 60.0
    """Cap on one wait, a server's Retry-After included."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError(f"RetryPolicy delays must be >= 0, got {self.base_delay_s}, {self.max_delay_s}")

    def delay_s(self, *, retry: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 = the second try): base * 2**(retry - 1), at least
        the server's Retry-After, at most max_delay_s."""
        backoff = self.base_delay_s * 2 ** (retry - 1)
        return min(self.max_delay_s, max(backoff, retry_after_s or 0.0))


DEFAULT_RETRY_POLICY = RetryPolicy()
"""5 tries, waiting 2, 4, 8 and 16 s between them: about half a minute for Kaggle to recover."""


class KaggleUnavailableError(Exception):
    """A transient Kaggle error (429, 5xx, timeout) that outlasted every try of the RetryPolicy."""

    def __init__(self, *, what: str, attempts: int, last: BaseException) -> None:
        super().__init__(f"{describe_error(last)} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})")
        self.what = what
        """The call that failed, e.g. a file name or 'listing page 3 of birdclef-2021'."""
        self.last = last
        """The last transient error."""


class KaggleClient(Protocol):
    """The two calls the downloader needs. Errors carry the HTTP status as the kaggle package's do
    (`exc.response.status_code`, or `exc.status` in kaggle 1.x)."""

    def list_files(self, *, competition: str, page_token: str | None, page_size: int) -> FilePage:
        """One page of the competition's files."""
        ...

    def download_file(self, *, competition: str, file_name: str, dest_dir: Path) -> Path:
        """Download one competition file somewhere under dest_dir; returns the path it arrived at
        (which may be '<name>.zip' when Kaggle wrapped it)."""
        ...


class KaggleApiClient:
    """`KaggleClient` over the official `kaggle` package (2.x): `KaggleApi.competition_list_files(competition,
    page_token=, page_size=)` and `KaggleApi.competition_download_file(competition, file_name, path=, force=,
    quiet=)`."""

    def __init__(self, api: Any) -> None:  # a kaggle.api.kaggle_api_extended.KaggleApi (untyped)
        self._api = api

    @classmethod
    def connect(cls) -> KaggleApiClient:
        """Authenticate with the user's Kaggle credentials; raises UserError (CREDENTIALS_HELP) without them.

        Importing `kaggle` authenticates once and prints help on failure (then swallows it); that output is
        hidden here and authenticate() is called again so that its failure can be reported properly.
        """
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                from kaggle.api.kaggle_api_extended import KaggleApi
            except ImportError as exc:
                raise UserError(f"the kaggle package is missing ({exc}); install the lab extra: "
                                "pip install -e '.[lab]'") from None
            api = KaggleApi()
            try:
                api.authenticate()
            except SystemExit:  # kaggle prints help and calls exit(1) when it finds no credentials
                raise UserError(CREDENTIALS_HELP) from None
            except Exception as exc:
                raise UserError(f"kaggle could not use your credentials ({exc}). {CREDENTIALS_HELP}") from None
        return cls(api)

    def list_files(self, *, competition: str, page_token: str | None, page_size: int) -> FilePage:
        response = self._api.competition_list_files(competition, page_token=page_token, page_size=page_size)
        files = tuple(
            RemoteFile(name=str(f.name), size_bytes=int(getattr(f, "total_bytes", 0) or 0))
            for f in (response.files or ())
            if f is not None and f.name
        )
        return FilePage(files=files, next_page_token=response.next_page_token or None)

    def download_file(self, *, competition: str, file_name: str, dest_dir: Path) -> Path:
        # no redirect_stdout here: it swaps sys.stdout for every thread, and downloads run in parallel
        self._api.competition_download_file(competition, file_name, path=str(dest_dir), force=True, quiet=True)
        return find_arrival(dest_dir, file_name=file_name)


def find_arrival(staging: Path, *, file_name: str) -> Path:
    """The file a download left in staging: '<staging>/<file_name>', its '.zip', or the only file there."""
    for candidate in (staging / file_name, staging / f"{file_name}.zip"):
        if candidate.is_file():
            return candidate
    found = [p for p in staging.rglob("*") if p.is_file() and not p.name.endswith(KAGGLE_MARKER_SUFFIXES)]
    if len(found) != 1:
        raise OSError(f"expected one downloaded file for {file_name} in {staging}, found {len(found)}")
    return found[0]


def iter_listing(client: KaggleClient, *, competition: str, page_size: int = LIST_PAGE_SIZE,
                 retry: RetryPolicy | None = None, log: Callable[[str], None] | None = None) -> Iterator[RemoteFile]:
    """Every file of the competition listing, page by page, fetched lazily.

    An empty page that still carries a next-page token is followed (Kaggle has returned such pages,
    kaggle-cli issue #836); a token seen twice ends the listing. A page that meets a transient error is
    fetched again as `retry` says (default DEFAULT_RETRY_POLICY), retries logged to `log`; when the tries
    run out, KaggleUnavailableError.
    """
    retry = retry or DEFAULT_RETRY_POLICY
    token: str | None = None
    seen_tokens: set[str] = set()
    for number in range(1, MAX_LIST_PAGES + 1):
        def list_page(token: str | None = token) -> FilePage:
            return call_kaggle(client.list_files, competition=competition, page_token=token, page_size=page_size)

        page = with_retries(list_page, policy=retry, what=f"listing page {number} of {competition}",
                            log=log or _ignore)
        yield from page.files
        token = page.next_page_token or None
        if token is None or token in seen_tokens:
            return
        seen_tokens.add(token)


def _ignore(_: str) -> None:
    """A log that drops its lines."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception from the kaggle package carries, if any."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) if response is not None else getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def access_error(status: int | None) -> UserError | None:
    """The UserError for statuses that would fail every file (401, 403), else None."""
    if status == 401:
        return UserError(REJECTED_CREDENTIALS_HELP)
    if status == 403:
        return UserError(RULES_HELP)
    return None


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: HTTP 429 (rate limited), HTTP 5xx, or a timeout."""
    status = http_status(exc)
    if status is not None:
        return status == 429 or 500 <= status <= 599
    return any(cls.__name__ in TIMEOUT_ERROR_NAMES for cls in type(exc).__mro__)


def describe_error(exc: BaseException) -> str:
    """'<ExceptionClass>: <message>', with the HTTP status when the message lacks it."""
    text = f"{type(exc).__name__}: {exc}"
    status = http_status(exc)
    return text if status is None or str(status) in text else f"{text} (HTTP {status})"


def retry_after_s(exc: BaseException) -> float | None:
    """A numeric Retry-After header of the error's HTTP response, in seconds (None when absent)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def with_retries(call: Callable[[], _T], *, policy: RetryPolicy, what: str, log: Callable[[str], None],
                 sleep: Callable[[float], None] = time.sleep) -> _T:
    """call(), tried again after a transient error (is_transient) as `policy` says; each retry is logged.

    Other errors propagate at once; a transient error on the last try raises KaggleUnavailableError.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == policy.attempts:
                raise KaggleUnavailableError(what=what, attempts=attempt, last=exc) from exc
            delay = policy.delay_s(retry=attempt, retry_after_s=retry_after_s(exc))
            log(f"{what}: {describe_error(exc)}; retrying in {delay:.0f} s (attempt {attempt + 1} of "
                f"{policy.attempts})")
            sleep(delay)
    raise AssertionError("unreachable: RetryPolicy.attempts >= 1")


def call_kaggle(call: Callable[..., _T], /, **kwargs: object) -> _T:
    """call(**kwargs), one client call, with 401/403 turned into the UserError that says what to do."""
    try:
        return call(**kwargs)
    except UserError:
        raise
    except Exception as exc:
        error = access_error(http_status(exc))
        if error is not None:
            raise error from exc
        raise
