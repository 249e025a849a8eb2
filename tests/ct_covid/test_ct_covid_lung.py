import numpy as np

from lesiondx.ct_covid.config import CovidConfig
from lesiondx.ct_covid.lung import crop_box, lung_field
from lesiondx.io import apply_window, read_study


def phantom(size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic axial slice in HU: air outside, a soft-tissue body, two lungs (one with a dense
    lesion touching the chest wall), a table below; returns (hu, lungs, lesion)."""
    y, x = np.mgrid[:size, :size] / size
    hu = np.full((size, size), -1000.0)
    body = ((x - 0.5) / 0.42) ** 2 + ((y - 0.48) / 0.3) ** 2 <= 1
    hu[body] = 40.0
    left = ((x - 0.32) / 0.13) ** 2 + ((y - 0.47) / 0.2) ** 2 <= 1
    right = ((x - 0.68) / 0.13) ** 2 + ((y - 0.47) / 0.2) ** 2 <= 1
    hu[left | right] = -850.0
    lesion = left & (x < 0.24) & (np.abs(y - 0.47) < 0.04)  # pleura-based consolidation
    hu[lesion] = 30.0
    hu[int(0.85 * size) : int(0.88 * size), int(0.1 * size) : int(0.9 * size)] = 200.0  # table
    return hu, left | right, lesion


def test_outside_body_air_is_not_lung_and_lungs_are_found():
    hu, lungs, lesion = phantom()
    mask = lung_field(hu, -400.0)
    outside = hu <= -1000.0
    assert not (mask & outside).any(), "air around the body was taken for lung"
    overlap = (mask & lungs).sum() / lungs.sum()
    assert overlap > 0.97
    assert mask.sum() < 1.1 * lungs.sum()
    assert mask[lesion].mean() > 0.5, "closing should pull most of a pleura-based lesion into the lung field"


def test_air_enclosed_under_the_table_is_not_lung():
    hu, lungs, _ = phantom()
    size = hu.shape[0]
    # a closed air pocket between body and a raised table rim: not connected to the border, outside the body
    hu[int(0.8 * size) : int(0.84 * size), int(0.1 * size) : int(0.9 * size)] = 200.0
    hu[int(0.80 * size) : int(0.88 * size), int(0.1 * size)] = 200.0
    hu[int(0.80 * size) : int(0.88 * size), int(0.9 * size)] = 200.0
    hu[int(0.84 * size) : int(0.85 * size), int(0.11 * size) : int(0.9 * size)] = -1000.0
    mask = lung_field(hu, -400.0, max_components=3)
    assert not mask[int(0.84 * size)].any()


def test_grey_threshold_is_equivalent_to_hu_threshold():
    cfg = CovidConfig()
    hu, _, _ = phantom()
    by_hu = lung_field(hu, cfg.lung_threshold_hu)
    by_grey = lung_field(apply_window(hu, cfg.window), cfg.lung_threshold_grey)
    assert np.array_equal(by_hu, by_grey)


def test_cropped_slices_keep_lungs_touching_the_border_when_asked():
    hu, lungs, _ = phantom()
    window = (slice(90, 170), slice(50, 206))  # a chest crop whose edges cut through both lungs
    cropped, truth = hu[window], lungs[window]
    dropped = lung_field(cropped, -400.0)
    kept = lung_field(cropped, -400.0, remove_border_air=False)
    assert (dropped & truth).sum() < 0.5 * truth.sum(), "border-touching lungs count as outside air by default"
    assert (kept & truth).sum() > 0.9 * truth.sum()


def test_crop_box_covers_union_with_margin():
    masks = np.zeros((2, 100, 100), bool)
    masks[0, 20:30, 40:50] = True
    masks[1, 60:70, 10:20] = True
    box = crop_box(masks, margin=0.1)
    assert box.as_list() == [5, 15, 55, 75]
    assert crop_box(np.zeros((3, 10, 10), bool)) is None


def test_lung_field_on_real_dicom_slices(mini_folder):
    volume = read_study(mini_folder / "series" / "P002")
    cfg = CovidConfig()
    for hu in volume.pixels[::3]:
        mask = lung_field(hu, cfg.lung_threshold_hu)
        assert 0.03 < mask.mean() < 0.4, "implausible lung fraction on a chest slice"
        assert hu[mask].mean() < -500, "lung field should be mostly aerated"
        edge = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert not edge.any()


def test_closing_inside_the_mask_box_equals_the_whole_slice_closing():
    """lung_field closes and fills only inside the mask's bounding box: the whole-slice closing must be empty
    outside it and the same inside (random blobs, some touching the border, radii as the config uses)."""
    from lesiondx.data import disk_closing as _close
    from lesiondx.data import mask_box

    rng = np.random.default_rng(7)
    for trial in range(60):
        mask = rng.random((int(rng.integers(8, 70)), int(rng.integers(8, 70)))) < rng.uniform(0.01, 0.2)
        if trial % 4 == 0:
            mask[0, 0] = mask[-1, -1] = True
        if not mask.any():
            continue
        radius = float(rng.choice([1.0, 2.5, 6.4, 12.8]))
        whole = _close(mask, radius)
        box = mask_box(mask)
        inside = np.zeros_like(whole)
        inside[box.y1 : box.y2, box.x1 : box.x2] = _close(mask[box.y1 : box.y2, box.x1 : box.x2], radius)
        assert np.array_equal(whole, inside), (trial, radius)
