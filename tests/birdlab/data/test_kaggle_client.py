"""birdlab.data.kaggle_client.KaggleApiClient: the real kaggle package, over real HTTP, against a stand-in server.

The kaggle package talks to its LOCAL environment (`KaggleApi.args = ["--local"]`, i.e. http://localhost/api/v1/...)
and requests routes that through HTTP_PROXY to a server on 127.0.0.1 that answers ListDataFiles and
DownloadDataFile the way api.kaggle.com does: JSON listing pages, a 302 to a storage URL for each file (a
'<name>.zip' URL when the file is served zipped), Basic auth for legacy API keys, and JSON 401/403 errors.
HOME points at an empty folder and credentials come from KAGGLE_USERNAME/KAGGLE_KEY, so no real credentials are
read and nothing leaves the machine.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pytest
import requests

from birdlab.data.kaggle_client import RULES_URL, KaggleApiClient, RetryPolicy, http_status
from birdlab.data.kaggle_download import download_subset
from birdlab.data.species import load_species
from birdlab.errors import UserError

USERNAME, KEY = "birdlab-test", "0123456789abcdef"
SUBSET = tuple(s.ebird_code for s in load_species())
METADATA_HEADER = ("primary_label,secondary_labels,type,latitude,longitude,scientific_name,common_name,author,date,"
                   "filename,license,rating,time,url\n")
SOUNDSCAPE = "train_soundscapes/10534_SSW_20170429.ogg"


@dataclass
class StandIn:
    """The competition the server serves, and what it saw."""

    files: dict[str, bytes]
    zipped: frozenset[str] = frozenset()
    forbidden: bool = False
    failures: dict[str, list[int]] = field(default_factory=dict)
    """HTTP statuses answered, once each in order, to the next requests of 'ListDataFiles', 'DownloadDataFile'
    or 'storage' (the file transfer itself); 429 comes with Retry-After: 0."""
    seen: list[str] = field(default_factory=list)

    def next_failure(self, route: str) -> int | None:
        pending = self.failures.get(route)
        return pending.pop(0) if pending else None


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: bytes, *, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), content_type="application/json")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            stand_in.seen.append(f"POST {path.rsplit('/', 1)[-1]} {request.get('fileName', '')}".strip())
            expected = "Basic " + base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self._json(401, {"code": 401, "message": "Unauthenticated"})
            if stand_in.forbidden:
                return self._json(403, {"code": 403, "message": "You must accept this competition's rules before "
                                                                 "you'll be able to download files."})
            if request.get("competitionName") != "birdclef-2021":
                return self._json(404, {"code": 404, "message": "Competition not found"})
            status = stand_in.next_failure(path.rsplit("/", 1)[-1])
            if status is not None:
                return self._send(status, json.dumps({"code": status, "message": "try again later"}).encode(),
                                  content_type="application/json", headers={"Retry-After": "0"})
            if path.endswith("/competitions.CompetitionApiService/ListDataFiles"):
                names = list(stand_in.files)
                start, size = int(request.get("pageToken") or 0), int(request["pageSize"])
                page = [{"name": n, "totalBytes": len(stand_in.files[n])} for n in names[start:start + size]]
                token = str(start + size) if start + size < len(names) else ""
                return self._json(200, {"files": page, "nextPageToken": token})
            if path.endswith("/competitions.CompetitionApiService/DownloadDataFile"):
                name = request["fileName"]
                if name not in stand_in.files:
                    return self._json(404, {"code": 404, "message": f"File {name} not found"})
                suffix = ".zip" if name in stand_in.zipped else ""
                location = f"http://localhost/storage/{quote(name)}{suffix}?signature=abc"
                return self._send(302, b"", content_type="text/plain", headers={"Location": location})
            return self._json(404, {"code": 404, "message": f"no route {path}"})

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            stand_in.seen.append(f"GET {path}")
            name = path.removeprefix("/storage/")
            status = stand_in.next_failure("storage")
            if status is not None:
                return self._send(status, b"upstream unavailable", content_type="text/plain")
            if name.endswith(".zip") and name[:-4] in stand_in.zipped:
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w") as z:
                    z.writestr(Path(name[:-4]).name, stand_in.files[name[:-4]])
                body = buffer.getvalue()
            elif name in stand_in.files:
                body = stand_in.files[name]
            else:
                return self._send(404, b"not found", content_type="text/plain")
            self._send(200, body, content_type="application/octet-stream",
                       headers={"Last-Modified": "Mon, 01 Mar 2021 00:00:00 GMT", "Accept-Ranges": "bytes"})

    return Handler


@pytest.fixture
def stand_in(tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """A served competition: metadata for two subset recordings and one outside, one soundscape, a test file."""
    outside = "acafly" if "acafly" not in SUBSET else "aldfly"
    rows = [f"{code},[],['call'],48.1,-3.2,S,C,A,2019-05-01,XC{i}.ogg,CC,4.0,06:30,u\n"
            for i, code in enumerate((SUBSET[0], SUBSET[0], outside))]
    files = {
        "train_metadata.csv": (METADATA_HEADER + "".join(rows)).encode(),
        "train_soundscape_labels.csv": b"row_id,site,audio_id,seconds,birds\n10534_SSW_5,SSW,10534,5,nocall\n",
        "test.csv": b"row_id,site,audio_id,seconds\n",
        SOUNDSCAPE: rng.bytes(300),
        f"train_short_audio/{SUBSET[0]}/XC0.ogg": rng.bytes(200),
        f"train_short_audio/{SUBSET[0]}/XC1.ogg": rng.bytes(100),
        f"train_short_audio/{outside}/XC2.ogg": rng.bytes(100),
    }
    state = StandIn(files=files, zipped=frozenset({"train_metadata.csv", SOUNDSCAPE}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy", "KAGGLE_API_TOKEN", "KAGGLE_API_ENVIRONMENT", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "home" / ".kaggle"))
    monkeypatch.setenv("KAGGLE_USERNAME", USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def local_client(tmp_path: Path, *, key: str = KEY) -> KaggleApiClient:
    """The real adapter over a real KaggleApi, pointed at kaggle's LOCAL environment and an empty config."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.args = ["--local"]
    api.config_dir = str(tmp_path / "home" / ".kaggle")
    api.config = str(tmp_path / "home" / ".kaggle" / "kaggle.json")
    api.authenticate()
    api.config_values[api.CONFIG_NAME_KEY] = key
    return KaggleApiClient(api)


def test_the_real_client_downloads_the_subset_over_http(tmp_path, stand_in):
    dest = tmp_path / "raw"

    report = download_subset(dest=dest, client=local_client(tmp_path), list_page_size=2, log=lambda _: None)

    wanted = ["train_metadata.csv", "train_soundscape_labels.csv", f"train_short_audio/{SUBSET[0]}/XC0.ogg",
              f"train_short_audio/{SUBSET[0]}/XC1.ogg", SOUNDSCAPE]
    assert list(report.downloaded) == wanted and report.failed == ()
    for name in wanted:
        assert (dest / name).read_bytes() == stand_in.files[name], name
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(wanted)
    posts = [s for s in stand_in.seen if s.startswith("POST")]
    assert posts.count("POST ListDataFiles") == 2  # pages of 2; the soundscape is on page 2, then it stops
    assert f"GET /storage/{SOUNDSCAPE}.zip" in stand_in.seen


def test_the_real_client_retries_rate_limits_and_server_errors(tmp_path, stand_in):
    stand_in.failures = {"ListDataFiles": [429, 503], "DownloadDataFile": [500], "storage": [502]}
    dest = tmp_path / "raw"
    lines: list[str] = []

    report = download_subset(dest=dest, client=local_client(tmp_path), list_page_size=2, log=lines.append,
                             retry=RetryPolicy(attempts=3, base_delay_s=0.0))

    assert report.failed == () and len(report.downloaded) == 5
    assert (dest / SOUNDSCAPE).read_bytes() == stand_in.files[SOUNDSCAPE]
    posts = [s for s in stand_in.seen if s.startswith("POST")]
    assert posts.count("POST ListDataFiles") == 2 + 2  # two pages, the first asked three times
    assert sum("retrying in 0 s" in line for line in lines) == 4
    assert any(line.startswith("listing page 1 of birdclef-2021: HTTPError: try again later (HTTP 429)")
               for line in lines), lines


def test_the_real_client_gives_up_on_a_file_after_the_last_attempt(tmp_path, stand_in):
    name = f"train_short_audio/{SUBSET[0]}/XC1.ogg"
    dest = tmp_path / "raw"
    download_subset(dest=dest, client=local_client(tmp_path), log=lambda _: None, soundscapes=False,
                    retry=RetryPolicy(attempts=1))
    (dest / name).unlink()
    stand_in.failures = {"DownloadDataFile": [503, 503]}

    report = download_subset(dest=dest, client=local_client(tmp_path), log=lambda _: None, soundscapes=False,
                             retry=RetryPolicy(attempts=2, base_delay_s=0.0))

    assert [f.name for f in report.failed] == [name] and "503" in report.failed[0].reason
    assert "gave up after 2 attempts" in report.failed[0].reason
    assert not (dest / name).exists()


def test_the_real_client_reports_unaccepted_rules(tmp_path, stand_in):
    stand_in.forbidden = True

    with pytest.raises(UserError, match="HTTP 403") as excinfo:
        download_subset(dest=tmp_path / "raw", client=local_client(tmp_path), log=lambda _: None)

    assert RULES_URL in str(excinfo.value)


def test_the_real_client_reports_rejected_credentials(tmp_path, stand_in):
    with pytest.raises(UserError, match="HTTP 401.*Create New Token"):
        download_subset(dest=tmp_path / "raw", client=local_client(tmp_path, key="wrong"), log=lambda _: None)


def test_http_status_reads_requests_and_kaggle_1x_errors():
    class ApiException(Exception):  # kaggle 1.x's error carried .status
        status = 403

    assert http_status(_http_error(401)) == 401
    assert http_status(ApiException()) == 403
    assert http_status(requests.ConnectionError("down")) is None


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Client Error", response=response)
