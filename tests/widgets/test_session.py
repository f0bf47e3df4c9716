"""The Qt-free parts of the segment panel: scheduling, plane arithmetic, linking."""

import numpy as np

from napari_unetseg.widgets.session import (
    LatestWins,
    count_objects,
    linked_labels,
    plane_at,
    write_plane,
)


def test_only_the_latest_request_waits_while_one_runs():
    q = LatestWins()
    assert q.submit("a") == "a" and q.busy
    assert q.submit("b") is None and q.submit("c") is None  # b is skipped
    assert q.finished() == "c" and q.busy
    assert q.finished() is None and not q.busy


def test_plane_at_clips_and_flattens():
    assert plane_at((1.4, 2.6, 10, 10), (3, 4)) == 1 * 4 + 3
    assert plane_at((-5, 99, 0, 0), (3, 4)) == 0 * 4 + 3
    assert plane_at((0, 0), ()) == 0


def test_write_plane_keeps_ids_unique_and_edits_in_place():
    data = np.zeros((2, 4, 4), np.uint8)
    data[0, 0, 0] = 5
    lab = np.zeros((4, 4), np.uint8)
    lab[1:3, 1:3] = 1
    edited = np.zeros((2, 4, 4), bool)
    edited[1, 0, 3] = True
    data[1, 0, 3] = 9  # painted by the user, away from the new object
    assert write_plane(data, 1, lab, edited)
    # The new object gets an id above every id of the stack (5, and the kept 9).
    assert data[1, 0, 3] == 9 and data[1, 2, 2] > 9
    data[0, 0, 0] = 250
    before = data.copy()
    assert not write_plane(data, 0, lab * 10, None)  # 250 + 10 does not fit uint8
    assert np.array_equal(data, before)


def test_linking_follows_the_checkboxes():
    planes = np.zeros((2, 8, 8), np.uint16)
    planes[0, 2:6, 2:6], planes[1, 2:6, 2:6] = 1, 2
    assert count_objects(linked_labels(planes, 1, False, False)) == 2
    assert count_objects(linked_labels(planes, 1, True, False)) == 1
    assert count_objects(linked_labels(planes, 1, False, True)) == 1
    plane = planes[0]
    assert linked_labels(plane, 0, True, True) is plane
