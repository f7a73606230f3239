"""nbval runs each notebook in a fresh kernel: make that kernel import this checkout's
package, even where another copy of crossmatch_lite is installed (e.g. a shared venv with
an editable install of a different worktree)."""
import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                     if p and p != ROOT])
