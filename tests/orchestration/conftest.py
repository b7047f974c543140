"""Flow tests: flows/ is imported as a package from the checkout (as the worker does: its pull
step makes the checkout the working directory)."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
