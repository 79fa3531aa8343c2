"""The installable release: `python -m build` makes an sdist and a wheel that carry the packaged
policies, and the wheel installed into a clean venv runs the quick start (not from the source tree)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import ghcr_janitor

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_in_a_clean_venv_runs_the_quick_start(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("ghcr_janitor-*.whl"))
    sdist = next(dist.glob("ghcr_janitor-*.tar.gz"))
    assert f"-{ghcr_janitor.__version__}-" in wheel.name                     # one version, from __init__.py
    packaged = (ROOT / "ghcr_janitor" / "policies" / "default.toml").read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("ghcr_janitor/policies/default.toml") == packaged
        assert not [n for n in archive.namelist() if n.startswith("tests/")]
        assert "ghcr_janitor/py.typed" in archive.namelist()        # the library's types reach its users
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("ghcr_janitor/policies/default.toml") for n in archive.getnames())

    pipx_env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "pipx-bin")}
    ran = subprocess.run([sys.executable, "-m", "pipx", "run", "--spec", str(wheel), "janitor", "--version"],
                         capture_output=True, text=True, timeout=600, env=pipx_env, cwd=tmp_path)
    assert ran.returncode == 0 and ghcr_janitor.__version__ in ran.stdout, ran.stderr

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, janitor = venv / "bin" / "python", venv / "bin" / "janitor"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True,
                   timeout=600)
    away = tmp_path / "elsewhere"                   # not the source tree: nothing to import from there
    away.mkdir()
    where = subprocess.run([str(python), "-c", "import ghcr_janitor; print(ghcr_janitor.__file__)"], cwd=away,
                           check=True, capture_output=True, text=True).stdout
    assert str(venv) in where
    version = subprocess.run([str(janitor), "--version"], cwd=away, check=True, capture_output=True, text=True)
    assert ghcr_janitor.__version__ in version.stdout
    cache = tmp_path / "buildx-cache"
    subprocess.run([str(python), str(ROOT / "examples" / "make_buildx_cache.py"), str(cache)], cwd=away, check=True,
                   capture_output=True)
    dry = subprocess.run([str(janitor), "prune", "--dry-run", f"oci-layout:{cache}"], cwd=away,
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "dry run:" in dry.stdout and "would reclaim" in dry.stdout
    gc = subprocess.run([str(janitor), "gc", "--dry-run", f"oci-layout:{cache}"], cwd=away, capture_output=True,
                        text=True, timeout=120)
    assert gc.returncode == 0 and "would free" in gc.stdout
    check = subprocess.run([str(janitor), "policy", "check"], cwd=away, capture_output=True, text=True)
    assert check.returncode == 0 and "default.toml (packaged)" in check.stdout
    # A plain install makes the HTML report (Jinja2 is a core dependency, issue 20 point 16).
    env = {**os.environ, "JANITOR_STATE_DIR": str(tmp_path / "state")}
    made = subprocess.run([str(janitor), "report", f"oci-layout:{cache}", "-o", str(tmp_path / "r.html")], cwd=away,
                          capture_output=True, text=True, timeout=120, env=env)
    assert made.returncode == 0, made.stderr
    assert "Storage breakdown" in (tmp_path / "r.html").read_text()
