"""The collector settings of a delivery run are the run's alone: set while it runs, undone after, even on error."""

import gc

import pytest

from delivery.gctuning import YOUNG_THRESHOLD, tuned_for_delivery


@pytest.fixture(autouse=True)
def nothing_frozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_run_freezes_what_exists_and_raises_the_young_threshold_then_undoes_both():
    before = gc.get_threshold()
    with tuned_for_delivery():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_objects_a_server_froze_before_the_run_stay_frozen():
    gc.freeze()
    frozen = gc.get_freeze_count()
    with tuned_for_delivery():
        pass
    assert gc.get_freeze_count() >= frozen


def test_settings_are_undone_when_the_run_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuned_for_delivery():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
