"""benchmarks/official_la_speed.py: its command line only (nothing is timed here)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_help():
    r = subprocess.run([sys.executable, "-m", "benchmarks.official_la_speed", "--help"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "--official" in r.stdout and "--iterations" in r.stdout and "la_speed_cpu.json" in r.stdout
