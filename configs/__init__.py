"""The training configs shipped with nbrisk (``nbrisk.configs``: this folder, installed with the package).

``default.toml`` is the researcher's full configuration (every model family, nested cross-validation,
leave-one-center-out); ``quick.toml`` trains the clinical Cox and the Aalen–Johansen reference in about a minute (the
first champion of ``scripts/start.sh``, and the tests). Code finds them with :func:`importlib.resources.files` through
:func:`nbrisk.training.config.packaged_config`, so they are found the same way from a clone and from an installed
wheel.
"""
