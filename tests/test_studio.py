"""mm_browserfft.studio: the local web page, its server and its workspace, driven as a user would.

The server is the real one (uvicorn on a free 127.0.0.1 port, in a thread); requests are
plain HTTP, and the whole flow runs in real headless Chromium whose microphone plays
real clips (``--use-file-for-fake-audio-capture``). Screenshots of each step go to
``$MM_BROWSERFFT_ARTIFACTS/studio`` (else the test's temporary folder).
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile

import numpy as np
import pytest
import soundfile as sf

import chromium
from conftest import SPEECH_DIR, real_clips

pytest.importorskip("starlette")
from mm_browserfft.studio import Limits, Workspace, serve  # noqa: E402
from mm_browserfft.studio.jobs import parse_epoch_line  # noqa: E402
from mm_browserfft.studio.workspace import StudioError, StudioNotFound, safe_name  # noqa: E402

WORDS = ("yes", "no", "up")


class Studio:
    """A running studio: ``request(method, path, ...)`` with or without its token."""

    def __init__(self, workspace: pathlib.Path, *, limits: Limits = Limits()) -> None:
        self.workspace, self.token = workspace, uuid.uuid4().hex
        started = threading.Event()

        def ready(url, server):
            self.url, self.server = url, server
            started.set()

        self.thread = threading.Thread(target=serve, args=(workspace,),
                                       kwargs={"port": 0, "token": self.token, "limits": limits, "ready": ready},
                                       daemon=True)  # fmt: skip
        self.thread.start()
        assert started.wait(30)
        self.base = self.url.split("/?")[0]
        for _ in range(100):  # until uvicorn answers
            try:
                self.request("GET", "/api/projects")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)

    def request(self, method: str, path: str, *, body: bytes = None, headers=None, token=True):
        """``(status, parsed JSON or bytes)``."""
        headers = dict(headers or {})
        if token is True:
            headers["X-Studio-Token"] = self.token
        elif token:
            headers["X-Studio-Token"] = token
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                status, data, kind = response.status, response.read(), response.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            status, data, kind = exc.code, exc.read(), exc.headers.get("content-type", "")
        return status, (json.loads(data) if "json" in kind else data)

    def post_json(self, path: str, value) -> tuple:
        return self.request("POST", path, body=json.dumps(value).encode(), headers={"Content-Type": "application/json"})

    def upload(self, path: str, files) -> tuple:
        """Multipart POST of ``[(field file name, bytes)]`` as ``files``."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, content in files:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                         f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")  # fmt: skip
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def studio(tmp_path):
    running = Studio(tmp_path / "workspace", limits=Limits(file_bytes=2_000_000, files=50, total_bytes=5_000_000))
    yield running
    running.stop()


def _wav_bytes(seconds: float = 0.5, rate: int = 44100) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_requests_without_the_token_are_refused(studio):
    for path in ("/", "/api/projects", "/static/studio.js", "/api/projects/x/download/tflite"):
        assert studio.request("GET", path, token=None)[0] == 403
        assert studio.request("GET", path, token="not-the-token")[0] == 403
    assert studio.request("GET", "/api/projects")[0] == 200
    status, page = studio.request("GET", f"/?token={studio.token}", token=None)
    assert status == 200 and b"mm-browserfft" in page
    status, body = studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})
    assert status == 201
    assert studio.request("POST", "/api/projects", token=None)[0] == 403
    assert studio.workspace.joinpath("p").is_dir()


def test_the_token_cookie_is_the_ports_own_so_two_studios_keep_theirs(studio, tmp_path):
    other = Studio(tmp_path / "other")
    try:
        cookies = {}
        for running in (studio, other):
            req = urllib.request.Request(f"{running.base}/?token={running.token}")
            with urllib.request.urlopen(req, timeout=60) as response:
                name, value = response.headers["set-cookie"].split(";")[0].split("=", 1)
            port = running.base.rsplit(":", 1)[1]
            assert name == f"mm_studio_token_{port}" and value == running.token
            cookies[running] = f"{name}={value}"
        # each studio's page (its audio players and downloads carry only the cookie) sends both cookies:
        # each takes its own and ignores the other's
        both = "; ".join(cookies.values())
        for running in (studio, other):
            assert running.request("GET", "/api/projects", token=None, headers={"Cookie": both})[0] == 200
        assert studio.request("GET", "/api/projects", token=None, headers={"Cookie": cookies[other]})[0] == 403
    finally:
        other.stop()


def _cookie_of(studio) -> str:
    """The token cookie the studio's page gets (its audio players and downloads carry only that)."""
    with urllib.request.urlopen(f"{studio.base}/?token={studio.token}", timeout=60) as response:
        return response.headers["set-cookie"].split(";")[0]


def test_the_cookie_alone_only_reads_and_no_page_may_frame_the_studio(studio):
    """Another page on this host (another port, same site) gets the cookie sent along: it must change nothing."""
    cookie = _cookie_of(studio)
    assert studio.request("GET", "/api/projects", token=None, headers={"Cookie": cookie})[0] == 200
    status, body = studio.request("POST", "/api/projects", token=None, body=b'{"name": "csrf", "words": ["x"]}',
                                  headers={"Cookie": cookie, "Content-Type": "text/plain",
                                           "Origin": "http://127.0.0.1:3000"})  # fmt: skip
    assert status == 403 and "must carry the token itself" in body["error"]
    assert studio.post_json("/api/projects", {"name": "p", "words": []})[0] == 201
    assert studio.request("DELETE", "/api/projects/p", token=None, headers={"Cookie": cookie})[0] == 403
    assert (studio.workspace / "p").is_dir() and not (studio.workspace / "csrf").exists()
    # the page the token opens holds the token (which no page of another origin can read), and no page may frame it
    req = urllib.request.Request(f"{studio.base}/", headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=60) as response:
        page, headers = response.read().decode(), response.headers
    assert f'<meta name="studio-token" content="{studio.token}">' in page
    assert headers["x-frame-options"] == "DENY" and headers["content-security-policy"] == "frame-ancestors 'none'"


def _chunked_post(studio, path: str, chunks, content_type: str) -> tuple:
    """A POST whose body is sent in chunks, without a Content-Length: ``(status, parsed JSON)``."""
    import http.client

    host, port = studio.base.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", path, body=iter(chunks), encode_chunked=True,
                           headers={"X-Studio-Token": studio.token, "Content-Type": content_type})  # fmt: skip
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    except (BrokenPipeError, ConnectionResetError):  # the server answered and closed while chunks were still sent
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_bodies_are_counted_as_they_arrive_and_zips_as_they_unpack(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    megabyte = b"\0" * 1_000_000  # the fixture's limits: 2 MB a file, 5 MB in all
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip
    status, body = _chunked_post(studio, "/api/projects/p/clips?label=yes", [head] + [megabyte] * 8,
                                 f"multipart/form-data; boundary={boundary}")  # fmt: skip
    assert status == 413 and "body is over" in body["error"]
    status, body = _chunked_post(studio, "/api/projects/p/listen?rate=16000", [megabyte] * 3, "application/octet-stream")
    assert status == 413 and "body is over" in body["error"]
    status, body = _chunked_post(studio, "/api/projects", [b'{"name": "' + b"x" * 2_000_000 + b'"}'], "application/json")
    assert status == 413
    # three zips of 1.8 MB members: each under the limit, 5.4 MB unpacked together
    zips = []
    for i in range(3):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"yes/{i}.wav", b"\0" * 1_800_000)
        zips.append((f"part{i}.zip", archive.getvalue()))
    assert sum(len(content) for _, content in zips) < 100_000
    status, body = studio.upload("/api/projects/p/clips", zips)
    assert status == 413 and "unpacks to more than 5000000 bytes" in body["error"]
    assert not any((studio.workspace / "p" / "data" / "yes").iterdir())


def test_names_a_disk_could_not_hold_or_merge_are_refused_and_missing_things_are_not_found(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    for name in ("\U0001F600" * 64, "yes\u200b", "e\u202egnp", "CON", "nul.wav", "trailing."):
        status, body = studio.post_json("/api/projects/p/labels", {"name": name})
        assert status == 400 and "refused label name" in body["error"], (name, body)
    status, body = studio.post_json("/api/projects/p/labels", {"name": "YES"})
    assert status == 400 and "differs from label 'yes' only in case" in body["error"]
    assert studio.post_json("/api/projects", {"name": "P", "words": []})[0] == 400  # project "p" exists
    assert studio.post_json("/api/projects", {"name": ["x"], "words": []})[0] == 400  # not rewritten to "['x']"
    assert studio.post_json("/api/projects/p/train", {"epochs": "abc"})[0] == 400
    for path in ("/api/projects/nope", "/api/projects/nope/train", "/api/projects/p/clips/yes/none.wav",
                 "/api/projects/p/clips/maybe/a.wav", "/api/projects/p/download/tflite"):  # fmt: skip
        assert studio.request("GET", path)[0] == 404, path
    (studio.workspace / "p" / "data" / ".ipynb_checkpoints").mkdir()  # a tool's hidden folder is no label
    assert [label["name"] for label in studio.request("GET", "/api/projects/p")[1]["labels"]] == [
        "_background_noise_", "_unknown_", "yes"]
    status, body = studio.upload("/api/projects/p/clips?label=yes", [("bad.wav", b"RIFF not really")])
    assert status == 400 and "'bad.wav' is not audio" in body["error"] and "/tmp" not in body["error"]


def test_an_upload_that_cannot_be_written_whole_keeps_nothing(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    folder = studio.workspace / "p" / "data" / "yes"
    (folder / ".b.wav.part").mkdir()  # where b.wav's bytes are written first: the write fails
    status, body = studio.upload("/api/projects/p/clips?label=yes", [("a.wav", _wav_bytes()), ("b.wav", _wav_bytes())])
    assert status == 400 and "cannot keep 'b.wav'" in body["error"] and "nothing of this upload was kept" in body["error"]
    assert [p.name for p in folder.iterdir()] == [".b.wav.part"]


def test_the_live_listening_controls_start_at_the_recognisers_defaults(studio):
    from mm_browserfft.listen import ListeningOptions

    status, page = studio.request("GET", f"/?token={studio.token}", token=None)
    assert status == 200
    defaults = ListeningOptions()
    for control, expected in (("threshold", defaults.probability_threshold), ("overlap", defaults.overlap_factor),
                              ("suppression", defaults.suppression_ms)):  # fmt: skip
        found = re.search(rb'<input id="%s"[^>]*\svalue="([0-9.]+)"' % control.encode(), page)
        assert found and float(found.group(1)) == pytest.approx(expected), control


def test_a_path_traversal_upload_name_is_refused_and_nothing_is_written_outside(studio, tmp_path):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    for name in ("../../evil.wav", "..\\evil.wav", "/tmp/evil.wav", "../.hidden.txt"):
        status, body = studio.upload("/api/projects/p/clips?label=yes", [(name, _wav_bytes())])
        assert status == 400 and "refused file name" in body["error"], (name, body)
    status, body = studio.upload("/api/projects/p/clips?label=..", [("ok.wav", _wav_bytes())])
    assert status == 400 and "refused label name" in body["error"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("yes/good.wav", _wav_bytes())
        z.writestr("../../evil.wav", _wav_bytes())
    status, body = studio.upload("/api/projects/p/clips", [("words.zip", archive.getvalue())])
    assert status == 400 and "leaves its folder" in body["error"]
    for name in ("words/yes/../../../evil.wav", "/tmp/yes/evil.wav", "evil.wav"):  # a folder upload's paths
        status, body = studio.upload("/api/projects/p/clips?from_folder=1", [("words/yes/good.wav", _wav_bytes()),
                                                                              (name, _wav_bytes())])  # fmt: skip
        assert status == 400 and "refused file" in body["error"], (name, body)
    assert studio.post_json("/api/projects", {"name": "../outside", "words": []})[0] == 400
    assert studio.request("GET", "/api/projects/..%2F..%2Fetc/download/tflite")[0] in (400, 404)
    assert not list(tmp_path.rglob("evil.wav")) and not (tmp_path / "outside").exists()
    assert sum(1 for _ in (studio.workspace / "p" / "data" / "yes").iterdir()) == 0  # all or nothing: good.wav not kept


def test_uploads_are_validated_limited_and_kept_as_ordinary_audio_folders(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes", "no"]})[0] == 201
    status, body = studio.upload("/api/projects/p/clips?label=yes", [("note.wav", b"not audio at all")])
    assert status == 400 and "'note.wav' is not audio" in body["error"]
    assert studio.upload("/api/projects/p/clips?label=yes", [("big.wav", b"\0" * 2_100_000)])[0] == 413
    assert studio.upload("/api/projects/p/clips?label=yes", [(f"{i}.wav", _wav_bytes(0.1)) for i in range(51)])[0] == 400
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("clips/no/a.wav", _wav_bytes(rate=48000))
        z.writestr("clips/yes/b.wav", _wav_bytes(rate=44100))
        z.writestr("clips/.DS_Store", b"junk")
    status, body = studio.upload("/api/projects/p/clips", [("words.zip", archive.getvalue()), ("c.wav", _wav_bytes())])
    assert status == 400  # c.wav has no label when the request names none
    status, body = studio.upload("/api/projects/p/clips?label=yes", [("words.zip", archive.getvalue()), ("c.wav", _wav_bytes())])
    assert status == 201 and body["added"] == {"no": 1, "yes": 2}
    data = studio.workspace / "p" / "data"
    assert sorted(p.name for p in (data / "yes").iterdir()) == ["b.wav", "c.wav"]
    assert sf.info(data / "no" / "a.wav").samplerate == 48000
    status, again = studio.upload("/api/projects/p/clips?label=yes", [("c.wav", _wav_bytes())])
    assert status == 201 and "c (2).wav" in again["project"]["labels"][-1]["clips"]  # never overwritten
    assert studio.request("DELETE", "/api/projects/p/clips/yes/c.wav")[0] == 200
    assert not (data / "yes" / "c.wav").exists()
    status, body = studio.post_json("/api/projects/p/train", {"epochs": 0})
    assert status == 400 and "epochs" in body["error"]
    status, body = studio.post_json("/api/projects/p/train", {"epochs": 5})  # labels of 1 and 2 clips
    assert status == 400 and body["error"] == ("every label needs at least 5 clips to train (20% of them test the "
                                               "model); 'no' has 1, 'yes' has 2")  # fmt: skip
    assert studio.request("GET", "/api/projects/p/train")[1] == {"state": "none"}  # no run was started


def test_a_folder_upload_skips_and_names_what_is_not_audio(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    folder = [(".DS_Store", b"\0\0\0\1Bud1"), ("notes.txt", b"said by Ann"), ("a.wav", _wav_bytes()), ("b.wav", _wav_bytes()),
              (".a.wav", _wav_bytes())]  # fmt: skip
    status, body = studio.upload("/api/projects/p/clips?label=yes", folder)
    assert status == 201 and body["added"] == {"yes": 2} and body["skipped"] == [".DS_Store", "notes.txt", ".a.wav"]
    assert sorted(p.name for p in (studio.workspace / "p" / "data" / "yes").iterdir()) == ["a.wav", "b.wav"]
    status, body = studio.upload("/api/projects/p/clips?label=yes", folder[:2])
    assert status == 400 and body["error"] == "no audio file to add; skipped .DS_Store, notes.txt"
    # a plain file goes to a label the project has; only a zip's folders make new ones
    status, body = studio.upload("/api/projects/p/clips?label=no", folder[2:])
    assert status == 404 and "has no label 'no'" in body["error"]
    assert not (studio.workspace / "p" / "data" / "no").exists()
    # a file put in the folder by hand is listed as the loaders read it: a hidden one is not a clip
    (studio.workspace / "p" / "data" / "yes" / "._a.wav").write_bytes(b"\0\5\26\7AppleDouble")
    listed = {label["name"]: label["clips"] for label in studio.request("GET", "/api/projects/p")[1]["labels"]}
    assert listed["yes"] == ["a.wav", "b.wav"]


def test_a_folder_of_label_folders_goes_by_its_folders(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    folder = [("words/yes/a.wav", _wav_bytes()), ("words/no/b.wav", _wav_bytes()), ("words/set 2/no/c.wav", _wav_bytes()),
              ("words/.DS_Store", b"\0\0\0\1Bud1"), ("words/no/notes.txt", b"said by Ann"),
              ("words/.Trash/old.wav", _wav_bytes())]  # fmt: skip
    status, body = studio.upload("/api/projects/p/clips?from_folder=1", folder)
    assert status == 201 and body["added"] == {"yes": 1, "no": 2}, body
    assert body["skipped"] == ["words/.DS_Store", "words/no/notes.txt", "words/.Trash/old.wav"]
    data = studio.workspace / "p" / "data"
    assert sorted(p.name for p in (data / "no").iterdir()) == ["b.wav", "c.wav"] and not (data / "set 2").exists()
    # a file directly in the chosen folder is in no label folder
    status, body = studio.upload("/api/projects/p/clips?from_folder=1", [("words/d.wav", _wav_bytes())])
    assert status == 400 and "'words/d.wav' is in no label folder" in body["error"]
    # without the flag a path is a name, and refused
    status, body = studio.upload("/api/projects/p/clips?label=yes", folder[:1])
    assert status == 400 and "refused file name" in body["error"]


def test_an_unreadable_zip_member_is_refused_by_name(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("yes/good.wav", _wav_bytes())
        z.writestr("yes/bad.wav", _wav_bytes())
    damaged = bytearray(buffer.getvalue())
    at = damaged.rindex(b"data")  # the last member's samples: its CRC no longer matches
    damaged[at + 100] ^= 0xFF
    status, body = studio.upload("/api/projects/p/clips", [("words.zip", bytes(damaged))])
    assert status == 400 and "'yes/bad.wav' of 'words.zip' cannot be read" in body["error"], body
    assert sum(1 for _ in (studio.workspace / "p" / "data" / "yes").iterdir()) == 0  # all or nothing


def _with_model(studio, name: str, export: pathlib.Path) -> None:
    """A project named ``name`` whose model is a copy of ``export`` (as training leaves it)."""
    import shutil

    if not (studio.workspace / name).is_dir():
        assert studio.post_json("/api/projects", {"name": name, "words": ["yes"]})[0] == 201
    model = studio.workspace / name / "model"
    if model.exists():
        shutil.rmtree(model)
    shutil.copytree(export, model, copy_function=shutil.copy)  # new files, as an export writes them


def test_live_listening_keeps_its_stream_when_a_slider_moves_and_starts_anew_on_a_new_model(studio, cli_trained, cli_words):
    from mm_browserfft.predict import TFLitePredictor

    _with_model(studio, "p", cli_trained[0])
    predictor = TFLitePredictor(cli_trained[0] / "model.tflite")
    rate = 16000
    silence = sf.read(next((cli_words / "test" / "_silence_").iterdir()), dtype="float32")[0]
    yes = next(x for x in (sf.read(c, dtype="float32")[0] for c in sorted((cli_words / "test" / "yes").iterdir()))
               if predictor.labels[int(np.argmax(predictor.predict(_window(x, rate))))] == "yes")  # fmt: skip
    stream = np.concatenate([silence, silence, yes, silence, silence])  # 5 s, "yes" at 2-3 s

    def listen(threshold: float) -> list:
        heard = []
        for start in range(0, stream.size, rate // 2):  # half a second per request, as the page sends
            status, body = studio.request("POST", f"/api/projects/p/listen?session=a&rate={rate}&threshold={threshold}",
                                          body=stream[start : start + rate // 2].tobytes())  # fmt: skip
            assert status == 200, body
            heard += body["detections"]
        return heard

    first = listen(0.5)
    assert [d["label"] for d in first] == ["yes"] and 2.0 < first[0]["end_s"] < 4.0
    moved = listen(0.45)  # the slider moved: the same stream goes on, five seconds later
    assert [d["label"] for d in moved] == ["yes"] and moved[0]["end_s"] == pytest.approx(first[0]["end_s"] + 5.0, abs=0.1)
    _with_model(studio, "p", cli_trained[0])  # training exported a model again
    again = listen(0.45)
    assert [d["label"] for d in again] == ["yes"] and again[0]["end_s"] == pytest.approx(first[0]["end_s"], abs=0.1)


def _window(x: np.ndarray, rate: int) -> np.ndarray:
    from mm_browserfft.audio import resample, split_windows

    return split_windows(resample(x, rate, 44100), pad_short=True)[:1]


def test_bad_listening_requests_are_refused_not_failed(studio, cli_trained):
    _with_model(studio, "p", cli_trained[0])
    quiet = np.zeros(8000, np.float32).tobytes()
    for query, body in (("threshold=2", quiet), ("threshold=nan", quiet), ("overlap=1", quiet), ("rate=100", quiet),
                        ("suppression_ms=-5", quiet), ("", np.full(8000, np.nan, np.float32).tobytes())):  # fmt: skip
        status, answer = studio.request("POST", f"/api/projects/p/listen?rate=16000&{query}", body=body)
        assert status == 400 and answer["error"], (query, answer)


def test_downloads_of_a_project_named_in_any_script_are_named_after_it(studio, cli_trained):
    _with_model(studio, "日本語 words", cli_trained[0])
    status, data = studio.request("GET", "/api/projects/%E6%97%A5%E6%9C%AC%E8%AA%9E%20words/download/report")
    assert status == 200 and "report.md" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    req = urllib.request.Request(studio.base + "/api/projects/%E6%97%A5%E6%9C%AC%E8%AA%9E%20words/download/report",
                                 headers={"X-Studio-Token": studio.token})  # fmt: skip
    with urllib.request.urlopen(req, timeout=60) as response:
        disposition = response.headers["content-disposition"]
    assert "filename*=utf-8''%E6%97%A5%E6%9C%AC%E8%AA%9E%20words-report.zip" in disposition


def test_a_project_deleted_while_it_trains_stays_deleted(studio):
    assert studio.post_json("/api/projects", {"name": "p", "words": list(WORDS[:2])})[0] == 201
    for word in WORDS[:2]:
        clips = [(c.name, c.read_bytes()) for c in real_clips(word, 20)]
        assert studio.upload(f"/api/projects/p/clips?label={word}", clips)[0] == 201
    assert studio.post_json("/api/projects/p/train", {"epochs": 500, "for_listening": False})[0] == 202
    deadline, seen = time.monotonic() + 300, {}
    state = {"state": "running"}
    while len(seen) < 2 and state["state"] == "running" and time.monotonic() < deadline:  # two epochs: backups written
        time.sleep(0.2)
        state = studio.request("GET", "/api/projects/p/train")[1]
        seen.setdefault(len(state["epochs"]), time.monotonic())
        seen.pop(0, None)
    assert len(seen) >= 2, state
    epoch_s = max(seen.values()) - min(seen.values())
    # the run reads its clips again after its last epoch: none may go while it trains (adding is harmless)
    first = sorted((studio.workspace / "p" / "data" / WORDS[0]).iterdir())[0]
    status, body = studio.request("DELETE", f"/api/projects/p/clips/{WORDS[0]}/{first.name}")
    assert status == 409 and "is training" in body["error"] and first.exists()
    status, body = studio.post_json("/api/projects/p/train", {"epochs": 5})
    assert status == 409 and "is training" in body["error"]  # busy, as deleting is, not a bad request
    assert studio.upload(f"/api/projects/p/clips?label={WORDS[0]}", [("more.wav", _wav_bytes())])[0] == 201
    assert studio.request("DELETE", "/api/projects/p")[0] == 200
    time.sleep(max(5.0, 3 * epoch_s))  # time for several more epochs, had it gone on
    assert "p" not in studio.request("GET", "/api/projects")[1]["projects"]
    assert not (studio.workspace / "p").exists()
    assert studio.post_json("/api/projects", {"name": "p", "words": ["yes"]})[0] == 201
    assert studio.request("GET", "/api/projects/p")[1]["training"] is None  # a new project: no old run's state


def test_names_are_checked_not_rewritten(tmp_path):
    for good in ("yes", "Hey Siri", "_background_noise_", "日本"):
        assert safe_name(good, what="label") == good
    for bad in ("", ".", "..", "a/b", "a\\b", ".git", " padded", "x" * 65, "a:b", "tab\there", "yes,no"):
        with pytest.raises(StudioError):
            safe_name(bad, what="label")
    with pytest.raises(StudioError, match="exists"):
        ws = Workspace(tmp_path / "ws")
        ws.create_project("a", ["yes"])
        ws.create_project("a", ["yes"])


def test_an_upload_to_a_project_deleted_while_it_arrived_is_refused_not_kept(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    project = workspace.create_project("p", ["yes"])  # the upload looked it up, then read its body ...
    workspace.delete_project("p")  # ... while the project was deleted
    with pytest.raises(StudioNotFound, match="'p' was deleted"):
        project.add_clips(None, [("words.zip", _zip_of({"yes/a.wav": _wav_bytes()}))], limits=Limits())
    assert not (tmp_path / "ws" / "p").exists()


def _zip_of(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_workspace_that_is_a_file_is_named_not_blamed_on_the_port(tmp_path):
    from conftest import run_cli

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    code, _, stderr = run_cli("studio", "--workspace", a_file, "--port", "0")
    assert code == 2 and f"{a_file}: the workspace must be a folder" in stderr and "cannot serve" not in stderr


def test_epoch_lines_of_the_command_line_are_parsed_as_progress():
    assert parse_epoch_line("epoch 3/10 - 0.4s - acc 0.9355 - loss 0.4621\n") == {
        "epoch": 3, "epochs": 10, "acc": 0.9355, "loss": 0.4621}  # fmt: skip
    assert parse_epoch_line("decoding audio: 100%") is None
    # JSON has no NaN: a diverged epoch reaches the page as null, and its status still serialises
    diverged = parse_epoch_line("epoch 4/10 - 0.4s - acc 0.2500 - loss nan\n")
    assert diverged == {"epoch": 4, "epochs": 10, "acc": 0.25, "loss": None}
    assert json.loads(json.dumps(diverged, allow_nan=False)) == diverged


# ---------------------------------------------------------------------------------------------- the page


def _artifacts(tmp_path) -> pathlib.Path:
    root = os.environ.get("MM_BROWSERFFT_ARTIFACTS")
    folder = pathlib.Path(root) / "studio" if root else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _microphone(path: pathlib.Path, clip: pathlib.Path, *, rate: int, gap_s: float) -> pathlib.Path:
    """A fake microphone file: ``clip`` then ``gap_s`` of its own quietest part, at ``rate`` (Chromium loops it)."""
    from mm_browserfft.audio import load_audio, resample

    x = resample(load_audio(clip), 44100, rate)
    quiet = np.zeros(int(gap_s * rate), np.float32)
    sf.write(path, np.concatenate([x, quiet]), rate, subtype="PCM_16")
    return path


def _page(url: str, microphone: pathlib.Path):
    flags = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={microphone}", "--autoplay-policy=no-user-gesture-required",
             "--window-size=1280,2200")  # fmt: skip
    return chromium.driver(extra_flags=flags, script_timeout_s=300)


def _wait(browser, condition, timeout: float = 120, what: str = ""):
    start = time.time()
    while time.time() - start < timeout:
        value = browser.execute_script(condition)
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or condition}")


def _clip_count(browser, label: str) -> int:
    return browser.execute_script(
        f"const c = document.querySelector('[data-label=\"{label}\"] .count'); return c ? Number(c.textContent) : -1;")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(bool(chromium.missing()), reason=chromium.missing() or "browser present")
def test_record_train_listen_and_download_in_the_browser(tmp_path):
    from selenium.webdriver.common.by import By

    shots = _artifacts(tmp_path)
    studio = Studio(tmp_path / "workspace")
    try:
        words = {w: sorted((SPEECH_DIR / w).glob("*.flac")) for w in WORDS}
        # Record: one browser per microphone file (Chromium's fake microphone is fixed per launch).
        mics = {w: _microphone(tmp_path / f"mic_{w}.wav", words[w][-1], rate=48000 if w == "no" else 44100, gap_s=0.0)
                for w in WORDS}  # fmt: skip
        noise = sorted((SPEECH_DIR / "_silence_").glob("*.flac"))
        mics["_background_noise_"] = _microphone(tmp_path / "mic_noise.wav", noise[0], rate=44100, gap_s=0.0)
        rates = set()
        for i, (label, mic) in enumerate(mics.items()):
            with _page(studio.url, mic) as browser:
                browser.get(studio.url + ("&rate=48000" if label == "no" else ""))  # a 48 kHz audio context
                if i == 0:
                    browser.find_element(By.ID, "new-project-name").send_keys("three words")
                    browser.find_element(By.ID, "new-project-words").send_keys(", ".join(WORDS))
                    browser.save_screenshot(str(shots / "01-new-project.png"))
                    browser.find_element(By.ID, "create-project").click()
                _wait(browser, f"return document.querySelector('[data-label=\"{label}\"]') !== null", what="labels")
                takes = 1 if label == "_background_noise_" else 3
                for n in range(takes):
                    browser.find_element(By.CSS_SELECTOR, f'[data-label="{label}"] .record').click()
                    _wait(browser, f"return document.querySelector('[data-label=\"{label}\"] .count').textContent == '{n + 1}'",
                          what=f"recording {n + 1} of {label}")  # fmt: skip
                rates.add(browser.execute_script("return mic.context.sampleRate"))
                if label == "_background_noise_":
                    browser.save_screenshot(str(shots / "02-recorded.png"))
        data = studio.workspace / "three words" / "data"
        recorded = {label: sorted((data / label).iterdir()) for label in mics}
        assert {label: len(files) for label, files in recorded.items()} == {"yes": 3, "no": 3, "up": 3, "_background_noise_": 1}
        assert rates == {44100, 48000}
        for label, files in recorded.items():
            info = sf.info(files[0])
            assert info.samplerate == (48000 if label == "no" else 44100) and info.frames >= (4 if label == "_background_noise_" else 0.9) * info.samplerate
            assert np.abs(sf.read(files[0])[0]).max() > 0.01  # the microphone's audio, not silence
        # Upload more examples (a folder of the words' folders, a zip of the others) and train, in one more browser.
        folder = tmp_path / "more_words"
        for w in WORDS:
            (folder / w).mkdir(parents=True)
            for clip in words[w][:24]:
                shutil.copy(clip, folder / w / clip.name)
        archive = tmp_path / "more.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for clip in noise[1:25]:
                z.write(clip, f"more/_background_noise_/{clip.name}")
            for clip in real_clips("_unknown_", 24):
                z.write(clip, f"more/_unknown_/{clip.name}")
        listen_clip = words["yes"][30]
        with _page(studio.url, _microphone(tmp_path / "mic_live.wav", listen_clip, rate=44100, gap_s=1.5)) as browser:
            browser.get(studio.url)
            _wait(browser, "return document.querySelector('[data-label=\"yes\"]') !== null", what="the project")
            browser.find_element(By.ID, "upload-folders").send_keys(str(folder))
            _wait(browser, "return document.querySelector('[data-label=\"yes\"] .count').textContent == '27'", what="upload")
            assert all(_clip_count(browser, w) == 27 for w in WORDS)
            browser.find_element(By.ID, "upload-any").send_keys(str(archive))
            _wait(browser, "return document.querySelector('[data-label=\"_unknown_\"] .count').textContent == '24'",
                  what="the zip")  # fmt: skip
            assert _clip_count(browser, "_background_noise_") == 25
            browser.save_screenshot(str(shots / "03-uploaded.png"))
            epochs = browser.find_element(By.ID, "epochs")
            epochs.clear()
            epochs.send_keys("25")
            browser.find_element(By.ID, "train").click()
            _wait(browser, "return document.getElementById('train-state').textContent.startsWith('epoch')", timeout=300,
                  what="the first epoch")  # fmt: skip
            browser.save_screenshot(str(shots / "04-training.png"))
            _wait(browser, "return document.getElementById('results').hidden === false", timeout=600, what="training")
            accuracy = browser.find_element(By.ID, "accuracy").text
            assert accuracy.endswith("%") and float(accuracy.rstrip(" %")) > 60, accuracy  # 5 classes: chance 20 %
            assert len(browser.find_elements(By.CSS_SELECTOR, "#confusion tr")) == 6
            assert browser.find_elements(By.CSS_SELECTOR, "#worst li .play")
            browser.execute_script("window.scrollTo(0, 0)")
            browser.save_screenshot(str(shots / "05-trained.png"))
            # The live controls show what `train` calibrated into the model's sidecar.
            calibrated = json.loads((studio.workspace / "three words" / "model" / "model.json").read_text())["listening"]
            threshold = browser.find_element(By.ID, "threshold")
            assert float(threshold.get_attribute("value")) == pytest.approx(calibrated["options"]["probability_threshold"])
            assert browser.find_element(By.ID, "threshold-value").text == f"{calibrated['options']['probability_threshold']:g}"
            # Try it live: the microphone says "yes" (a clip no training saw) every 2.5 s.
            browser.execute_script("arguments[0].value = 0.7; arguments[0].dispatchEvent(new Event('input'))", threshold)
            browser.find_element(By.ID, "live-start").click()
            _wait(browser, "return document.querySelectorAll('#detections li').length >= 3", timeout=60, what="detections")
            browser.find_element(By.ID, "live-stop").click()
            heard = [li.text.split(" · ")[0] for li in browser.find_elements(By.CSS_SELECTOR, "#detections li")]
            browser.execute_script("document.getElementById('detections').scrollIntoView()")
            browser.save_screenshot(str(shots / "06-listening.png"))
            assert heard.count("yes") >= 0.75 * len(heard), heard  # a model naming one of its 3 words at random: 1 in 27
            # Download the .tflite from the page's own link.
            href = browser.find_element(By.ID, "download-tflite").get_attribute("href")
            encoded = browser.execute_async_script("""
                const done = arguments[arguments.length - 1];
                fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {
                  let s = ""; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });""", href)
            browser.save_screenshot(str(shots / "07-download.png"))
        tflite = tmp_path / "downloaded.tflite"
        tflite.write_bytes(base64.b64decode(encoded))
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(tflite))
        interpreter.allocate_tensors()
        assert tuple(interpreter.get_output_details()[0]["shape"]) == (1, 5)
        print("studio: rates", rates, "accuracy", accuracy, "heard", heard, "screenshots in", shots)
    finally:
        studio.stop()
