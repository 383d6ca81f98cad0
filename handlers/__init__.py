"""The image classifier's TorchServe side: handler, model definitions and archive builder.

This directory is laid out like the model directory TorchServe extracts an archive into, where the
modules import each other by top-level name (``import classifier_image``) because TorchServe puts that
directory on sys.path. Importing this package (``python -m handlers.build_archive``) puts this directory on
sys.path the same way, so the same imports find the same files from the repository.
"""

import sys
from pathlib import Path

HANDLERS_DIR = Path(__file__).resolve().parent

if str(HANDLERS_DIR) not in sys.path:
    sys.path.append(str(HANDLERS_DIR))
