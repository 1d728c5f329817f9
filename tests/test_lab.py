"""`make lab` starts a real JupyterLab whose page loads nbgrader's extension."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.notebooks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_serves_the_course_with_nbgrader(tmp_path):
    port, token = _free_port(), "course-test"
    jupyter = Path(sys.executable).parent / "jupyter"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--notebook-dir={ROOT}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        page = urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10).read().decode()
        assert "@jupyter/nbgrader" in page  # the lab extension is in the page's federated extensions
        listing = urllib.request.urlopen(f"{base}/api/contents/course?token={token}", timeout=10).read().decode()
        assert "01_bandits.ipynb" in listing
    finally:
        server.terminate()
        server.wait(timeout=20)
