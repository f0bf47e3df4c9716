"""Instances from probability maps: a seeded watershed fast enough to follow a slider."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from ..base.labels import label_dtype
from ..base.modes import target_mode
from ..base.thresholds import DEFAULT_THRESHOLDS, Thresholds
from .flood_update import update_flood

#: Thresholds used when a checkpoint does not carry its own.


def split_maps(maps: np.ndarray, targets: str) -> tuple[np.ndarray, np.ndarray]:
    """Foreground probability and seed map of one plane's maps ``(C, Y, X)``.

    ``mask_border``: mask and mask - border. ``three_class``: 1 - background and interior.
    ``mask_border_distance``: mask and the predicted centre distance (seeds are nuclei
    centres, and the watershed floods down the distance, following the nuclei's shape); the
    watershed then scales it per foreground component, see :func:`relative_to_component_peak`.
    ``binary``: the mask for both.
    """
    return target_mode(targets).split(np.asarray(maps, dtype=np.float32))


def _label(binary: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components numbered in raster order (as ``scipy.ndimage.label``).

    OpenCV's labelling is about twice as fast as scipy's on large planes, which matters on
    every slider movement. 4-connectivity is the watershed's ``connectivity=1``. Volumes
    (3D) go to scipy with the same (face) connectivity.
    """
    import cv2

    if binary.ndim != 2:
        return ndi.label(binary)

    n, lab = cv2.connectedComponentsWithAlgorithm(
        binary.view(np.uint8), 4, cv2.CV_32S, cv2.CCL_WU
    )
    return lab, n - 1


def _label_with_boxes(binary: np.ndarray):
    """Labels, count, bounding-box slices and sizes (index 0 = background) in one pass."""
    import cv2

    if binary.ndim != 2:
        lab, n = ndi.label(binary)
        return lab, n, ndi.find_objects(lab), np.bincount(lab.ravel(), minlength=n + 1)

    n, lab, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        binary.view(np.uint8), 4, cv2.CV_32S, cv2.CCL_WU
    )
    x, y, w, h, area = (stats[1:, i] for i in range(5))
    boxes = [(slice(b, b + hh), slice(a, a + ww)) for a, b, ww, hh in zip(x, y, w, h)]
    return lab, n - 1, boxes, stats[:, 4].astype(np.int64)


def relative_to_component_peak(
    seed_map: np.ndarray, fg_lab: np.ndarray, n_fg: int
) -> np.ndarray:
    """The seed map divided by its maximum in each foreground component (0 outside).

    Used for the centre distance: a network trained on distances scaled to 1 at each centre
    predicts peaks well below 1, on a noisy flat top (benchmarks/bench_centre_distance.py
    measures them), so one absolute threshold cuts some nuclei into pieces and misses
    others. Relative to the peak of its component, the threshold means "this fraction of the
    way up to the centre".
    """
    peaks = np.zeros(n_fg + 1, np.float32)
    if n_fg:
        peaks[1:] = ndi.maximum(seed_map, fg_lab, index=np.arange(1, n_fg + 1))
    peaks[peaks <= 0] = 1
    scaled = seed_map / np.take(peaks, fg_lab)
    scaled[fg_lab == 0] = 0
    return scaled


def _watershed_many(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list:
    """Watershed of many small crops ``(elevation, markers, mask)`` in one scikit-image call.

    The crops are laid side by side on one canvas, one background pixel apart (the mask keeps
    them apart: floods never cross it), so the call's fixed cost (padding, neighbour
    offsets) is paid once instead of once per crop. Written here because scikit-image has no
    batched watershed.
    """
    if not items:
        return []
    if items[0][0].ndim != 2:  # volumes: one call per crop
        return [watershed(e, m, mask=r) for e, m, r in items]
    width = max(512, max(e.shape[1] for e, _, _ in items))
    places, x, y, row_h = [], 0, 0, 0
    for e, _, _ in items:
        h, w = e.shape
        if x + w > width:
            x, y, row_h = 0, y + row_h + 1, 0
        places.append((y, x))
        x += w + 1
        row_h = max(row_h, h)
    height = y + row_h
    elev = np.zeros((height, width), np.float32)
    markers = np.zeros((height, width), np.int64)
    mask = np.zeros((height, width), bool)
    for (y, x), (e, m, r) in zip(places, items):
        h, w = e.shape
        elev[y : y + h, x : x + w] = e
        markers[y : y + h, x : x + w] = m
        mask[y : y + h, x : x + w] = r
    ws = watershed(elev, markers, mask=mask)
    return [ws[y : y + e.shape[0], x : x + e.shape[1]] for (y, x), (e, _, _) in
            zip(places, items)]


class SeededWatershed:
    """Seeded watershed of one plane's maps, caching everything thresholds do not change.

    Flooding never crosses from one connected foreground component to another, so components
    holding one seed (most nuclei) or none are labelled through a lookup table over
    components, and the watershed runs only inside the bounding boxes of components holding
    several seeds. The foreground labelling is cached per mask threshold and the seeds per
    (mask, seed) threshold, so dragging one slider recomputes only what depends on it, and
    each call touches the full image once (one table lookup). When the seed threshold moves,
    a component whose seeds changed is updated only around the seeds that vanished, split,
    merged or appeared (:func:`update_flood`): on dense tissue, one component may hold
    hundreds of nuclei. The result equals
    :func:`watershed_reference`; the one possible difference is a pixel at exactly equal
    elevation between two seeds, which scikit-image assigns by its heap's internal order
    (seeds all enter the queue with the same age), so no cropped run can reproduce it.

    Parameters
    ----------
    maps : ndarray
        (C, Y, X) probability maps of one plane.
    targets : str
        Target mode of the model that produced them.
    """

    def __init__(self, maps: np.ndarray, targets: str, overwrite_maps: bool = False):
        mode = target_mode(targets)
        if overwrite_maps and mode.split_in_place is not None and maps.dtype == np.float32:
            self.mask, self.seed_map = mode.split_in_place(maps)
        else:
            self.mask, self.seed_map = split_maps(maps, targets)
        self._relative = mode.relative_seeds
        self._fg = None
        self._seeds_for_fg = None
        self._objects = None
        # Watershed of each multi-seed component: (basins, seeds), both as seed numbers
        # 1..k within the component (0 elsewhere); kept while the foreground and that
        # component's seeds stay the same, updated (update_flood) when only the seeds change.
        self._ws_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._stale: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._ws_key: tuple[float, float] | None = None
        self._regions: dict[int, np.ndarray] = {}

    def _foreground(self, mask_threshold: float):
        if self._fg is None or self._fg[0] != mask_threshold:
            fg = self.mask > mask_threshold
            self._fg = (mask_threshold, fg, *_label_with_boxes(fg))
            self._seeds_for_fg = None
            self._ws_cache, self._stale, self._ws_key, self._regions = {}, {}, None, {}
        return self._fg[1:]

    def _forget_changed_components(self, key, fg, fg_lab, seed_map) -> None:
        """Set aside the cached watersheds of components whose seeds differ at key[1].

        A component's seeds change exactly when one of its pixels has a seed value between
        the old and the new threshold, which one pass over the plane finds. Set-aside
        watersheds are updated rather than flooded again (:func:`update_flood`).
        """
        self._stale = {}
        if self._ws_key is None or self._ws_key[0] != key[0]:
            self._ws_cache = {}
        elif self._ws_key[1] != key[1] and self._ws_cache:
            lo, hi = sorted((self._ws_key[1], key[1]))
            crossing = fg & (seed_map > lo) & (seed_map <= hi)
            for c in np.flatnonzero(np.bincount(fg_lab[crossing])).tolist():
                if c in self._ws_cache:
                    self._stale[c] = self._ws_cache.pop(c)
        self._ws_key = key

    def _region(self, c: int, fg_lab: np.ndarray, boxes) -> np.ndarray:
        """Component ``c``'s pixels within its box (kept with the foreground)."""
        if c not in self._regions:
            self._regions[c] = fg_lab[boxes[c - 1]] == c
        return self._regions[c]

    def _seed_map(self, mask_threshold: float) -> np.ndarray:
        """The seed map the thresholds apply to (relative to component peaks if needed)."""
        if not self._relative:
            return self.seed_map
        _, fg_lab, n_fg, _, _ = self._foreground(mask_threshold)
        if self._seeds_for_fg is None:
            self._seeds_for_fg = relative_to_component_peak(self.seed_map, fg_lab, n_fg)
        return self._seeds_for_fg

    def objects(self, mask_threshold: float, seed_threshold: float):
        """Objects before the size filter, in compact form (cached per threshold pair).

        Returns ``(comp_ids, crops, n_ids)``: the object id of each single- or unseeded
        component (0 for components split by the watershed), the watershed crops as
        ``(slice, region, labels)``, and the number of object ids.
        """
        key = (float(mask_threshold), float(seed_threshold))
        if self._objects is not None and self._objects[0] == key:
            return self._objects[1]
        fg, fg_lab, n_fg, boxes, _ = self._foreground(key[0])
        seed_map = self._seed_map(key[0])
        seeds = (seed_map > key[1]) & fg
        seed_lab, n_seeds = _label(seeds)
        # Which component each seed lies in (any one pixel of a seed tells).
        idx = np.flatnonzero(seeds)
        comp_of_seed = np.zeros(n_seeds + 1, np.int64)
        comp_of_seed[seed_lab.ravel()[idx]] = fg_lab.ravel()[idx]
        seeds_per_comp = np.bincount(comp_of_seed[1:], minlength=n_fg + 1)
        comp_ids = np.zeros(n_fg + 1, np.int64)
        single = seeds_per_comp == 1
        single[0] = False
        seed_ids = np.zeros(n_fg + 1, np.int64)
        seed_ids[comp_of_seed[1:]] = np.arange(1, n_seeds + 1)
        comp_ids[single] = seed_ids[single]
        # Components without a seed (small nuclei swallowed by the border) stay objects,
        # numbered after the seeds in raster order, as in the reference.
        unseeded = np.flatnonzero(seeds_per_comp[1:] == 0) + 1
        comp_ids[unseeded] = np.arange(n_seeds + 1, n_seeds + 1 + unseeded.size)
        # The seed ids of each component, ascending (stable sort of seeds by component).
        by_comp = np.argsort(comp_of_seed[1:], kind="stable") + 1
        starts = np.concatenate([[0], np.cumsum(seeds_per_comp)])
        self._forget_changed_components(key, fg, fg_lab, seed_map)
        multi = np.flatnonzero(seeds_per_comp[1:] > 1) + 1
        regions = {c: self._region(c, fg_lab, boxes) for c in multi.tolist()}
        # Dragging the seed slider changes the seeds of some components only; the others
        # keep their watershed (dense images have hundreds of clusters). The changed ones are
        # flooded together in one call.
        number = np.zeros(n_seeds + 1, np.int32)  # seed id -> number within its component
        number[by_comp] = np.arange(n_seeds) - np.repeat(starts[:-1], seeds_per_comp) + 1
        todo = []
        for c in (c for c in regions if c not in self._ws_cache):
            box = boxes[c - 1]
            seeds_c = np.where(regions[c], number[seed_lab[box]], 0)
            old = self._stale.pop(c, None)
            basins = None if old is None or seeds_c.ndim != 2 else update_flood(
                old[0], old[1], seeds_c, -seed_map[box], regions[c])
            if basins is None:
                todo.append((c, seeds_c))
            else:
                self._ws_cache[c] = (basins, seeds_c)
        flooded = _watershed_many([(-seed_map[boxes[c - 1]], seeds_c, regions[c])
                                   for c, seeds_c in todo])
        for (c, seeds_c), ws in zip(todo, flooded):
            self._ws_cache[c] = (ws.astype(np.int32, copy=False), seeds_c)
        crops = []
        for c, region in regions.items():
            ids = np.r_[0, by_comp[starts[c]:starts[c + 1]]]
            crops.append((boxes[c - 1], region, ids[self._ws_cache[c][0]]))
        result = (comp_ids, crops, n_seeds + unseeded.size)
        self._objects = (key, result)
        return result

    def labels(self, mask_threshold: float, seed_threshold: float, min_size: int) -> np.ndarray:
        """Instance labels 1..N (uint16, or uint32 when there are more than 65535)."""
        comp_ids, crops, n_ids = self.objects(mask_threshold, seed_threshold)
        _, fg_lab, _, _, comp_sizes = self._foreground(float(mask_threshold))
        sizes = np.zeros(n_ids + 1, np.int64)
        sizes[comp_ids] = comp_sizes
        for _, _, ws in crops:  # ws is 0 outside its component: counted in sizes[0] only
            sizes += np.bincount(ws.ravel(), minlength=n_ids + 1)
        keep = sizes >= max(int(min_size), 1)
        keep[0] = False
        n = int(keep.sum())
        relabel = np.zeros(n_ids + 1, label_dtype(n))
        relabel[keep] = np.arange(1, n + 1)
        out = np.take(relabel[comp_ids], fg_lab)
        for sl, region, ws in crops:
            np.copyto(out[sl], relabel[ws], where=region)
        return out


def _plane_maps(maps: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    maps = np.asarray(maps)
    if maps.ndim < 3:
        raise ValueError(f"maps must be (C, Y, X) or (C, ..., Y, X), got shape {maps.shape}")
    stack_shape = maps.shape[1:-2]
    return maps.reshape(maps.shape[0], -1, *maps.shape[-2:]), stack_shape


def _check_watershed_args(maps, targets, mask_threshold, seed_threshold, min_size) -> None:
    """One-line errors for arguments that would silently give a wrong result."""
    maps = np.asarray(maps)
    n = target_mode(targets).channels
    if maps.ndim >= 3 and maps.shape[0] != n:
        hint = " (channels last? maps are (C, ..., Y, X))" if maps.shape[-1] == n else ""
        raise ValueError(f"{targets} maps have {n} channels first, got shape {maps.shape}"
                         + hint)
    Thresholds(mask_threshold, seed_threshold, min_size)  # raises a ThresholdError


def watershed_from_maps(
    maps: np.ndarray,
    targets: str = "mask_border",
    mask_threshold: float = DEFAULT_THRESHOLDS["mask_threshold"],
    seed_threshold: float = DEFAULT_THRESHOLDS["seed_threshold"],
    min_size: int = DEFAULT_THRESHOLDS["min_size"],
) -> np.ndarray:
    """Instance labels from a model's probability maps by seeded watershed.

    Seeds are connected regions of the seed map (mask - border, the interior class or the
    centre distance, see :func:`split_maps`) above
    ``seed_threshold``; the foreground is the mask above ``mask_threshold``; seeds grow over
    the foreground by watershed on the inverted seed map. Foreground components without a
    seed are kept as objects. Objects under ``min_size`` pixels are removed and the rest
    numbered 1..N. Stacks are processed plane by plane with ids unique across the stack.

    Parameters
    ----------
    maps : ndarray
        (C, Y, X) or (C, ..., Y, X) float maps as returned by :func:`predict`.
    targets : {"mask_border", "three_class", "mask_border_distance", "binary"}
    mask_threshold, seed_threshold : float
    min_size : int

    Returns
    -------
    ndarray
        Labels of shape ``maps.shape[1:]``, uint16 or uint32.
    """
    _check_watershed_args(maps, targets, mask_threshold, seed_threshold, min_size)
    planes, stack_shape = _plane_maps(maps)
    if not stack_shape:
        return SeededWatershed(planes[:, 0], targets).labels(
            mask_threshold, seed_threshold, min_size
        )
    # A generator: each plane's caches are dropped before the next plane is processed.
    per_plane = (
        SeededWatershed(planes[:, i], targets).labels(mask_threshold, seed_threshold, min_size)
        for i in range(planes.shape[1])
    )
    out = combine_planes(per_plane, planes.shape[1:])
    return out.astype(label_dtype(int(out.max())), copy=False).reshape(
        *stack_shape, *out.shape[-2:]
    )


def combine_planes(planes, shape: tuple[int, int, int]) -> np.ndarray:
    """Stack per-plane labels (None = empty plane) with ids unique across the stack.

    uint16 while the ids fit, uint32 from the plane where they stop fitting: napari draws
    uint16 labels several times faster, and ImageJ reads them.
    """
    out = np.zeros(shape, np.uint16)
    offset = 0
    for i, lab in enumerate(planes):
        if lab is None:
            continue
        top = offset + int(lab.max())
        if label_dtype(top) != out.dtype:
            out = out.astype(label_dtype(top))
        out[i] = np.where(lab > 0, lab.astype(out.dtype) + offset, 0)
        offset = top
    return out


def watershed_reference(
    maps: np.ndarray,
    targets: str,
    mask_threshold: float,
    seed_threshold: float,
    min_size: int,
) -> np.ndarray:
    """The straightforward scikit-image pipeline for one plane (for tests and benchmarks)."""
    from skimage.measure import label
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import relabel_sequential

    mask, seed_map = split_maps(maps, targets)
    fg = mask > mask_threshold
    comps = label(fg, connectivity=1)
    if target_mode(targets).relative_seeds:
        # The scaling itself is tested on its own; this reference checks the caching and the
        # cropped watershed around it.
        seed_map = relative_to_component_peak(seed_map, comps, int(comps.max()))
    markers = label((seed_map > seed_threshold) & fg, connectivity=1)
    n = int(markers.max())
    unseeded = np.setdiff1d(np.unique(comps[fg]), np.unique(comps[markers > 0]))
    for k, c in enumerate(unseeded, start=1):
        markers[comps == c] = n + k
    labels = watershed(-seed_map, markers, mask=fg)
    labels = remove_small_objects(labels, max_size=max(int(min_size), 1) - 1)
    labels = relabel_sequential(labels)[0]
    return labels.astype(label_dtype(int(labels.max())))


class StackSegmentation:
    """Probability maps and watershed caches for the segmented planes of an image.

    Planes are indexed by their flat position in the stack (0 for a 2D image). Label ids
    are made unique across planes by offsetting each plane by the number of objects in the
    planes before it.

    Parameters
    ----------
    targets : str
        Target mode of the model.
    stack_shape : tuple of int
        Leading (non-spatial) shape, ``()`` for a 2D image.
    """

    def __init__(self, targets: str, stack_shape: tuple[int, ...] = ()):
        self.targets = targets
        self.stack_shape = tuple(stack_shape)
        self.sheds: dict[int, SeededWatershed] = {}
        self.maps: dict[int, np.ndarray] = {}
        #: Rescale factor each plane was predicted at (``min_size`` is at the model's scale).
        self.scales: dict[int, float] = {}

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.stack_shape)) if self.stack_shape else 1

    def add_plane(self, index: int, maps: np.ndarray, scale: float = 1.0) -> None:
        """Store the (C, Y, X) maps of one plane, predicted at rescale factor ``scale``."""
        self.maps[index] = maps
        self.scales[index] = scale
        self.sheds[index] = SeededWatershed(maps, self.targets)

    def plane_labels(self, index: int, thresholds: dict) -> np.ndarray:
        """Labels 1..n of one plane (0 where the plane has not been segmented)."""
        scale = self.scales.get(index, 1.0)
        return self.sheds[index].labels(*Thresholds.of(thresholds).at_scale(scale))

    def seed_map(self, plane: int) -> np.ndarray | None:
        """The seed map of one plane (flat index), or None when it was not segmented."""
        shed = self.sheds.get(plane)
        return None if shed is None else shed.seed_map

    def channel(self, c: int, shape: tuple[int, ...]) -> np.ndarray:
        """Map channel ``c`` of the whole stack, ``shape`` (0 in planes not segmented)."""
        out = np.zeros((self.n_planes, *shape[-2:]), np.float32)
        for i, m in self.maps.items():
            out[i] = m[c]
        return out.reshape(shape)

    def stack_labels(self, thresholds: dict, shape: tuple[int, ...]) -> np.ndarray:
        """Labels of every plane with ids unique across the stack (uint16, or uint32)."""
        per_plane = (
            self.plane_labels(i, thresholds) if i in self.sheds else None
            for i in range(self.n_planes)
        )
        return combine_planes(per_plane, (self.n_planes, *shape[-2:])).reshape(shape)
