"""The loaded model is kept out of the cyclic garbage collector's generations (``gc.freeze``), and a model swap
frees the old model and freezes the new one.

Why: a generation-2 collection traverses every tracked object; with a model, MLflow, pandas and scikit-learn loaded
that is ~300,000 objects and 240–270 ms, during which a request waits (see ``nbrisk.serving.predictor``). Timing is a
benchmark's job (``benchmarks/serving.py``, ``benchmarks/speed_models.py``); these tests check the mechanism.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from nbrisk.serving.predictor import Predictor, freeze_heap


def in_collector_generations(obj) -> bool:
    """Whether a generation-2 collection would traverse ``obj`` (frozen objects are in no generation)."""
    target = id(obj)
    return any(id(o) == target for o in gc.get_objects())


@pytest.fixture
def restore_gc():
    yield
    gc.unfreeze()


def test_the_loaded_model_is_frozen_by_the_service_state(serving_env, restore_gc):
    from nbrisk.serving.service import ModelState

    gc.unfreeze()
    state = ModelState(serving_env.model_uri, refresh_seconds=0)
    state.load()
    predictor = state.predictor
    assert predictor is not None
    assert gc.get_freeze_count() > 0
    for obj in (predictor, predictor.risk_model, predictor.risk_model.feature_pipeline):
        assert gc.is_tracked(obj)
        assert not in_collector_generations(obj)
    # warmed up before freezing: the first request finds its lazily built tables in place
    assert predictor.risk([dict(predictor_example())], (12,))["results"]


def test_freeze_after_a_swap_frees_the_old_model_and_freezes_the_new(risk_model, restore_gc):
    gc.unfreeze()
    old = Predictor.from_risk_model(risk_model, version="1")
    old.cycle = old  # a reference cycle: only the collector can free it, and only if it is not frozen
    old_ref = weakref.ref(old)
    freeze_heap()
    assert not in_collector_generations(old)

    new = Predictor.from_risk_model(risk_model, version="2")
    del old  # the swap: the served reference moves to the new predictor
    freeze_heap()
    assert old_ref() is None, "the old model stayed frozen (and alive) after the swap"
    assert not in_collector_generations(new)


def predictor_example() -> dict:
    from nbrisk.features.record import example_record

    return example_record(with_outcomes=False)
