import numpy as np
import pytest

from napari_unetseg.core.instances.editing import (
    delete_labels,
    fill_holes,
    merge_labels,
    merge_with_locked,
    relabel_sequential,
    remove_small_objects,
    split_label,
    split_object,
)
from tests.conftest import two_touching_discs


def test_merge_delete_and_relabel_on_real_labels(fluo):
    _, labels = fluo
    merged = merge_labels(labels, [5, 9, 12])
    assert set(np.unique(merged[np.isin(labels, [5, 9, 12])])) == {5}
    assert merged.max() == labels.max() and (merged != labels).sum() == np.isin(
        labels, [9, 12]).sum()
    gone = delete_labels(labels, [3])
    assert not (gone == 3).any() and (gone == 4).sum() == (labels == 4).sum()
    seq = relabel_sequential(gone)
    assert seq.max() == labels.max() - 1 and seq.dtype == labels.dtype
    with pytest.raises(ValueError, match="at least two"):
        merge_labels(labels, [5])


def test_remove_small_keeps_ids_of_the_rest(fluo):
    _, labels = fluo
    sizes = np.bincount(labels.ravel())
    out = remove_small_objects(labels, 50)
    small = [i for i in range(1, sizes.size) if 0 < sizes[i] < 50]
    assert small and not np.isin(out, small).any()
    big = next(i for i in range(1, sizes.size) if sizes[i] >= 50)
    assert (out == big).sum() == sizes[big]


def test_fill_holes_only_inside_one_object():
    labels = np.zeros((30, 40), np.uint16)
    labels[5:20, 5:20] = 1
    labels[10:13, 10:13] = 0          # a hole in object 1
    labels[5:20, 22:30] = 2
    labels[5:20, 30:38] = 3
    labels[10:12, 29:31] = 0          # a gap between objects 2 and 3: not a hole
    out = fill_holes(labels)
    assert (out[10:13, 10:13] == 1).all()
    assert (out[10:12, 29:31] == 0).all()
    stack = fill_holes(np.stack([labels, labels]))
    assert (stack[:, 10:13, 10:13] == 1).all()


def test_split_touching_discs_by_distance_and_by_maps():
    labels = (two_touching_discs() > 0).astype(np.uint16)  # merged into one object
    parts = split_label(labels, 1)
    assert set(np.unique(parts)) == {0, 1, 2}
    truth = two_touching_discs()
    # Each part is essentially one of the two discs.
    for i in (1, 2):
        sizes = np.bincount(parts[truth == i], minlength=3)[1:]
        assert sizes.max() > 0.9 * (truth == i).sum()
    from scipy import ndimage as ndi

    seed_map = ndi.distance_transform_edt(truth > 0) * 0  # flat map: no seeds
    with pytest.raises(ValueError, match="single core"):
        split_label(labels, 1, seed_map=seed_map)
    with pytest.raises(ValueError, match="no object 7"):
        split_label(labels, 7)


def test_split_object_in_a_stack_splits_a_3d_object_as_a_volume():
    discs = two_touching_discs()
    merged = (discs > 0).astype(np.uint16)
    volume = np.zeros((5, *merged.shape), np.uint16)
    volume[1:4] = merged * 3  # one object through planes 1-3
    volume[0][discs == 1] = 9  # another object elsewhere in the stack
    out = split_object(volume, 3, through_z=True)
    new_ids = set(np.unique(out[1:4])) - {0}
    assert new_ids == {3, 10}  # the new id is unique in the stack, above 9
    # Each plane is cut the same way: the new part is one body through Z.
    assert all(np.array_equal(out[1] == 10, out[z] == 10) for z in (2, 3))
    assert np.array_equal(out[0], volume[0]) and not out[4].any()
    # Per plane (2D ids in a stack): only the object's first plane is split.
    flat = split_object(volume, 3)
    assert set(np.unique(flat[1])) == {0, 3, 10} and set(np.unique(flat[2])) == {0, 3}
    with pytest.raises(ValueError, match="no object 4"):
        split_object(volume, 4, through_z=True)


def test_recomputing_keeps_edited_objects():
    current = np.zeros((20, 30), np.uint16)
    current[2:8, 2:8] = 1      # the user repainted this one
    current[10:15, 10:15] = 2  # untouched
    edited = np.zeros(current.shape, bool)
    edited[2:8, 2:8] = True
    edited[16:19, 20:25] = True  # the user erased something here
    new = np.zeros_like(current)
    new[1:9, 1:9] = 1           # would overwrite the edited object
    new[11:14, 11:14] = 2       # changed shape of an unedited object
    new[16:19, 20:25] = 3       # would restore the erased object
    out = merge_with_locked(new, current, edited)
    assert np.array_equal(out[2:8, 2:8], current[2:8, 2:8])
    assert (out[1, 1:9] == 0).all()                      # clashing new object dropped
    assert (out[16:19, 20:25] == 0).all()                # the erasure holds
    assert (out[11:14, 11:14] > 0).all() and out[10, 10] == 0  # unedited area recomputed
    assert len(np.unique(out[11:14, 11:14])) == 1 and out[12, 12] != 1
