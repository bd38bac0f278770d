"""The studio as a live server on 127.0.0.1 (subprocess), driven with gradio_client:
the stateless ``/reconstruct`` endpoint, bad uploads that must not take the server down,
and 8 concurrent requests that must all complete."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from core.trace import Trace
from tests.test_studio_support import TEST_METHOD, LiveServer, astronaut_bytes

gradio_client = pytest.importorskip("gradio_client")
pytestmark = pytest.mark.slow  # starting the server takes ~10–20 s


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("server"), methods=(TEST_METHOD,)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("uploads")
    (d / "astronaut.jpg").write_bytes(astronaut_bytes())
    (d / "fake.jpg").write_bytes(b"definitely not a JPEG")
    Image.new("RGB", (1, 1)).save(d / "dot.png")
    full = astronaut_bytes()
    (d / "cut.jpg").write_bytes(full[: len(full) // 2])
    Image.new("RGB", (300, 300), (120, 120, 120)).save(d / "nobody.png")
    return d


def _call(client, path, method=TEST_METHOD, iters=3):
    return client.predict(gradio_client.handle_file(str(path)), method, iters, api_name="/reconstruct")


def test_reconstruct_endpoint(client, files):
    overlay, trace_file, summary = _call(client, files / "astronaut.jpg")
    assert summary["method"] == TEST_METHOD and summary["people"] == 1, summary
    tr = Trace.load(trace_file)
    assert tr.method == TEST_METHOD and len(tr.steps) == summary["steps"]
    assert np.asarray(Image.open(overlay)).shape[2] == 3


@pytest.mark.parametrize("name, words", [("fake.jpg", "not an image"), ("dot.png", "only 1×1"),
                                         ("cut.jpg", "truncated"), ("nobody.png", "No person")])
def test_bad_uploads_get_messages_and_the_server_keeps_serving(client, server, files, name, words):
    overlay, trace_file, summary = _call(client, files / name)
    assert overlay is None and words in summary["error"], summary
    assert server.alive()


def test_eight_concurrent_requests_all_complete(client, server, files):
    t0 = time.time()
    jobs = [client.submit(gradio_client.handle_file(str(files / "astronaut.jpg")), TEST_METHOD, 2,
                          api_name="/reconstruct") for _ in range(8)]
    results = [j.result(timeout=300) for j in jobs]
    elapsed = time.time() - t0
    _all_answered_within_the_per_caller_cap([r[2] for r in results])
    done = [r[2] for r in results if "error" not in r[2]]
    assert len({s["steps"] for s in done}) == 1  # the same photo gives the same run every time
    assert server.alive()
    print(f"8 concurrent /reconstruct requests: {elapsed:.1f} s")


def test_eight_concurrent_clients_all_complete(server, files):
    def one(_):
        c = gradio_client.Client(server.url, verbose=False)
        return _call(c, files / "astronaut.jpg", iters=2)[2]

    with ThreadPoolExecutor(8) as ex:
        summaries = list(ex.map(one, range(8)))
    _all_answered_within_the_per_caller_cap(summaries)


def _all_answered_within_the_per_caller_cap(summaries):
    """8 requests at once from one address (127.0.0.1): the 2 API workers + 4 waiting places
    of that caller are served, any request beyond that is refused at once with a sentence."""
    done = [s for s in summaries if s.get("method") == TEST_METHOD]
    refused = [s for s in summaries if "Too many requests from 127.0.0.1" in s.get("error", "")]
    assert len(done) + len(refused) == 8 and len(done) >= 6, summaries


def test_temporary_files_are_swept_at_start_and_removed_on_sigterm(tmp_path, files):
    """At start-up the server removes what a killed server left (its process folder, with a
    half-written file inside); its own folder (API request files included) is deleted when
    it is stopped with SIGTERM."""
    import signal
    import subprocess

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp / f"hmr-studio-{dead.pid}-abc123"
    (orphan / "session-x").mkdir(parents=True)
    (orphan / "session-x" / f".run.npz.{dead.pid}.x1y2z3.tmp").write_bytes(b"partial")
    with LiveServer(tmp_path, env={"TMPDIR": str(tmp)}) as s:
        assert not orphan.exists()
        client = gradio_client.Client(s.url, verbose=False)
        _, trace_file, summary = _call(client, files / "astronaut.jpg")
        assert "error" not in summary, summary
        roots = list(tmp.glob(f"hmr-studio-{s.proc.pid}-*"))
        assert len(roots) == 1 and len(list((roots[0] / "api").iterdir())) == 1
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=30) != 0
        assert not roots[0].exists()
