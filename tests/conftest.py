import os
import sys
from pathlib import Path

import torch

# Let tests import helpers such as reference_step from this folder.
sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
