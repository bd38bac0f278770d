"""Peak server memory for the largest uploads the studio accepts (issue: ≤ 1.5 GB).

Starts the studio in a subprocess (HMR on the shipped weights), warms it up with one normal
``/reconstruct`` request, then sends the largest photos the limits let through — a 134 MP
RGB PNG (PIL holds it in 510 MB, just under ``MAX_DECODED_BYTES``) and a 169 MP 16-bit
grayscale PNG — and prints the server's peak (VmHWM) and current resident memory after
each. Linux only (reads /proc). ``python benchmarks/upload_memory.py`` (≈2 min).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def memory(pid: int) -> tuple[float, float]:
    d = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(d["VmHWM"].split()[0]) / 1024, int(d["VmRSS"].split()[0]) / 1024


def main() -> None:
    import gradio_client
    from skimage import data

    from tests.test_studio_support import LiveServer

    print("uptime:", os.popen("uptime").read().strip())
    tmp = Path(tempfile.mkdtemp(prefix="upload-memory-"))
    Image.fromarray(data.astronaut()).save(tmp / "astronaut.jpg")
    rgb = np.zeros((8000, 16700, 3), np.uint8)
    rgb[1000:7000, 7000:9000] = 200
    Image.fromarray(rgb).save(tmp / "rgb_134mp.png")
    del rgb
    g16 = np.zeros((13000, 13000), np.uint16)
    g16[2000:11000, 5000:8000] = 40000
    Image.fromarray(g16).save(tmp / "gray16_169mp.png")
    del g16
    with LiveServer(tmp, methods=("hmr",), timeout=300) as server:
        time.sleep(20)
        client = gradio_client.Client(server.url, verbose=False)
        for name in ("astronaut.jpg", "rgb_134mp.png", "gray16_169mp.png"):
            out = client.predict(gradio_client.handle_file(str(tmp / name)), "hmr", None, api_name="/reconstruct")
            peak, rss = memory(server.proc.pid)
            status = out[2].get("error", "ok")[:40]
            print(f"{name:18s} {status:42s} server peak {peak:6.0f} MB, resident after {rss:6.0f} MB")


if __name__ == "__main__":
    main()
