"""Helpers for the data_download tests: a local HTTP server and archive builders.

Imported by tests/test_data_download*.py (not a pytest conftest, so it never
affects other engineers' tests). Nothing here touches the internet.
"""

from __future__ import annotations

import gzip
import http.server
import io
import os
import socket
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
from sample_data import SAMPLE_DATA as SHARED  # noqa: E402,F401  (the download tests read H.SHARED)


class Server:
    """A threaded HTTP server over a folder, with switchable misbehaviour.

    mode: "range" (honours Range), "norange" (ignores Range, always 200),
    "403" or "401" (refuses everything).
    script: one action per coming request, then normal service: an HTTP status
    code to answer with, or ("drop", n) to close the connection after n bytes.
    drop_after: close every connection after that many body bytes.
    delay: seconds to sleep per 16 KiB chunk (slow downloads for kill tests).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mode = "range"
        self.drop_after: int | None = None
        self.script: list = []
        self.delay = 0.0
        self.log: list[tuple[str, str | None, int]] = []
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                srv._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.log]

    def _handle(self, h: http.server.BaseHTTPRequestHandler):
        rng = h.headers.get("Range")
        # Unquoted as a real web server does ("Training%20Set" -> "Training Set").
        path = self.root / urllib.parse.unquote(h.path.lstrip("/").split("?")[0])
        if self.mode in ("401", "403"):
            return self._status(h, int(self.mode), rng)
        action = self.script.pop(0) if self.script else None
        if isinstance(action, int):
            return self._status(h, action, rng)
        drop = action[1] if action else self.drop_after
        if not path.is_file():
            return self._status(h, 404, rng)
        size = path.stat().st_size
        start = 0
        if rng and self.mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            if start >= size:
                return self._status(h, 416, rng)
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.log.append((h.path, rng, 206))
        else:
            h.send_response(200)
            self.log.append((h.path, rng, 200))
        length = size - start
        h.send_header("Content-Length", str(length))
        h.send_header("Accept-Ranges", "none" if self.mode == "norange" else "bytes")
        h.end_headers()
        limit = length if drop is None else min(length, drop)
        sent = 0
        try:
            # Streamed from disk so the server's memory does not blur the
            # client's constant-memory test (both run in one process).
            with open(path, "rb") as f:
                f.seek(start)
                while sent < limit:
                    block = f.read(min(16384, limit - sent))
                    h.wfile.write(block)
                    sent += len(block)
                    if self.delay:
                        time.sleep(self.delay)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if limit < length:
            # Drop the connection mid-file, as a flaky network would.
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _status(self, h, code, rng):
        self.log.append((h.path, rng, code))
        h.send_response(code)
        h.send_header("Content-Length", "0")
        h.end_headers()


# --- synthetic ACDC -----------------------------------------------------------

def nifti_gz(arr: np.ndarray) -> bytes:
    img = nib.Nifti1Image(arr, np.diag([1.5, 1.5, 10.0, 1.0]))
    return gzip.compress(img.to_bytes(), mtime=0)


def make_acdc_zip(path: Path, patients=(1, 2, 3), testing=(101,), seed=0,
                  extra_members: dict[str, bytes] | None = None) -> dict:
    """Official-layout ACDC zip; returns {patient: {"ED": (img, gt), "ES": (img, gt)}}."""
    rng = np.random.default_rng(seed)
    truth = {}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("database/MANDATORY_CITATION.md", "cite Bernard et al. 2018\n")
        for pid in list(patients) + list(testing):
            group = "training" if pid <= 100 else "testing"
            name = f"patient{pid:03d}"
            folder = f"database/{group}/{name}/"
            nz = 3 + pid % 4
            ed, es = 1, 5 + pid % 7  # ES frame number is not 2, as in the real data
            zf.writestr(folder + "Info.cfg", f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 170.0\n"
                                             f"NbFrame: 20\nWeight: 70.0\n")
            zf.writestr(folder + "MANDATORY_CITATION.md", "cite\n")
            truth[name] = {}
            for key, frame in (("ED", ed), ("ES", es)):
                img = rng.integers(-50, 900, size=(12, 10, nz)).astype(np.int16)
                gt = rng.integers(0, 4, size=(12, 10, nz)).astype(np.uint8)
                zf.writestr(folder + f"{name}_frame{frame:02d}.nii.gz", nifti_gz(img))
                zf.writestr(folder + f"{name}_frame{frame:02d}_gt.nii.gz", nifti_gz(gt))
                truth[name][key] = (img, gt)
            # The 4-D cine file is in the real download but not used.
            zf.writestr(folder + f"{name}_4d.nii.gz", b"not needed")
        for member, data in (extra_members or {}).items():
            zf.writestr(member, data)
    return truth


def expected_acdc(img: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = img.astype(np.float64)
    x = (x - x.min()) / (x.max() - x.min())
    return x.transpose(2, 1, 0), gt.transpose(2, 1, 0)


def acdc_www(www: Path, zip_path: Path, api_path: bool = True) -> None:
    """Serve a zip the way the Creatis site (api_path) or a plain cache does."""
    from data_download import sources
    target = www / (sources.ACDC_API_PATH if api_path else sources.ACDC_SHORT_NAME)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(zip_path, target)


# --- synthetic ISIC -----------------------------------------------------------

def make_isic_zips(folder: Path, split_in: str, split_gt: str, ids, sizes=None,
                   extra_images=(), extra_masks=(), seed=0) -> dict:
    """Official-layout input and ground-truth zips; returns {id: (rgb, mask01)}."""
    rng = np.random.default_rng(seed)
    truth = {}
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{split_in}.zip", "w") as zi, \
            zipfile.ZipFile(folder / f"{split_gt}.zip", "w") as zm:
        for z, top in ((zi, split_in), (zm, split_gt)):
            z.writestr(f"{top}/ATTRIBUTION.txt", "attribution\n")
            z.writestr(f"{top}/LICENSE.txt", "CC-0\n")
        for k, i in enumerate(list(ids) + list(extra_images) + list(extra_masks)):
            h, w = (sizes or {}).get(i, (40 + 3 * k, 60 + 2 * k))
            rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            mask = np.zeros((h, w), np.uint8)
            mask[h // 4: 3 * h // 4, w // 5: 4 * w // 5] = 255
            if i not in extra_masks:
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, "JPEG", quality=95)
                zi.writestr(f"{split_in}/ISIC_{i}.jpg", buf.getvalue())
                rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            if i not in extra_images:
                buf = io.BytesIO()
                Image.fromarray(mask).save(buf, "PNG")
                zm.writestr(f"{split_gt}/ISIC_{i}_segmentation.png", buf.getvalue())
            if i in ids:
                truth[f"ISIC_{i}"] = (rgb, mask // 255)
    return truth
