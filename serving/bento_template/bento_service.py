"""Entry point of an nbrisk Bento: serve the one model version copied into this Bento (``model/``), never
whatever a registry alias points to today. The pin (``model/nbrisk-pin.json``) names the registered version."""

import os
from pathlib import Path

os.environ["NBRISK_MODEL_URI"] = str(Path(__file__).resolve().parent / "model")
os.environ["NBRISK_MODEL_REFRESH_SECONDS"] = "0"  # nothing to follow: the model is part of the Bento

from nbrisk.serving.service import RiskService

__all__ = ["RiskService"]
