"""Properties the distances, the accuracy and the pixel-similarity classifier must have for every input, checked with
Hypothesis.

Example counts are kept modest and the runs derandomized (same examples every run, nothing written to disk), so the
suite stays fast and gives the same verdict twice.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mnist_basics.baseline import PixelSimilarity, centre_of_mass, l1_distance, per_class_accuracy, rmse_distance

props = settings(max_examples=50, deadline=None, database=None, derandomize=True)
DISTANCES = [l1_distance, rmse_distance]
ids = lambda f: f.__name__

sides = st.integers(1, 6)
pixels = st.floats(0, 1, width=32)
wide = st.floats(-1e3, 1e3, width=32)  # not only [0, 1]: the helpers must not assume it


@st.composite
def pairs(draw, elements=pixels, lead=st.lists(st.integers(1, 3), max_size=2)):
    "Two float32 stacks of the same shape (..., h, w)"
    shape = (*draw(lead), draw(sides), draw(sides))
    return tuple(torch.from_numpy(draw(arrays(np.float32, shape, elements=elements))) for _ in range(2))


@st.composite
def on_the_pixel_grid(draw):
    "Two stacks of the same shape whose values are k/255, as images loaded from PNG files are"
    shape = (*draw(st.lists(st.integers(1, 3), max_size=2)), draw(sides), draw(sides))
    return tuple(torch.from_numpy(draw(arrays(np.uint8, shape, elements=st.integers(0, 255)))).float()/255 for _ in range(2))


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(ab=st.one_of(pairs(), pairs(wide)))
def test_non_negative_and_symmetric(dist, ab):
    a, b = ab
    d = dist(a, b)
    assert d.shape == a.shape[:-2]
    assert (d >= 0).all()
    assert torch.equal(d, dist(b, a))  # exactly: |a-b| and |b-a| are the same floats


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(ab=on_the_pixel_grid())
def test_zero_exactly_for_equal_images(dist, ab):
    "On the pixel grid no difference is too small to register: a distance is 0 exactly when the images are equal"
    a, b = ab
    assert (dist(a, a) == 0).all()
    assert torch.equal(dist(a, b) == 0, (a == b).flatten(-2).all(-1))


@props
@given(ab=st.one_of(pairs(), pairs(wide)))
def test_rmse_is_at_least_l1(ab):
    "The root of the mean square is never below the mean of the absolute values"
    a, b = ab
    assert (rmse_distance(a, b) >= l1_distance(a, b)*(1 - 1e-5) - 1e-6).all()


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(abc=st.one_of(pairs(pixels, st.just([2])), pairs(wide, st.just([2]))), c=st.data())
def test_triangle_inequality(dist, abc, c):
    "Going from a to c directly is never longer than going through b (both are metrics, up to rounding)"
    a, b = abc
    c = torch.from_numpy(c.draw(arrays(np.float32, tuple(a.shape), elements=wide)))
    assert (dist(a, c) <= (dist(a, b) + dist(b, c))*(1 + 1e-5) + 1e-5).all()


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(data=st.data())
def test_broadcasting_agrees_with_a_loop(dist, data):
    "A stack against one image, and a (n, 1, h, w) stack against k ideals, give what a loop over the images gives"
    h, w = data.draw(sides), data.draw(sides)
    n, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    el = data.draw(st.sampled_from([pixels, wide]))
    stack = torch.from_numpy(data.draw(arrays(np.float32, (n, h, w), elements=el)))
    image = torch.from_numpy(data.draw(arrays(np.float32, (h, w), elements=el)))
    ideals = torch.from_numpy(data.draw(arrays(np.float32, (k, h, w), elements=el)))
    torch.testing.assert_close(dist(stack, image), torch.stack([dist(s, image) for s in stack]), rtol=1e-5, atol=1e-6)
    got = dist(stack[:, None], ideals)
    assert got.shape == (n, k)
    looped = torch.stack([torch.stack([dist(s, m) for m in ideals]) for s in stack])
    torch.testing.assert_close(got, looped, rtol=1e-5, atol=1e-6)
    assert torch.equal(dist(image, stack), dist(stack, image))


# ------------------------------------------------------------------------------------------ accuracy

@st.composite
def labels(draw, max_classes=4):
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, 60))
    preds = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    targs = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return k, preds, targs


@props
@given(kpt=labels(), kind=st.sampled_from(['list', 'tensor', 'numpy']))
def test_per_class_accuracy_weighted_is_the_overall_accuracy(kpt, kind):
    k, preds, targs = kpt
    conv = {'list': list, 'tensor': torch.tensor, 'numpy': np.array}[kind]
    classes = [f'c{i}' for i in range(k)]
    per = per_class_accuracy(conv(preds), conv(targs), classes)
    assert list(per) == classes
    counts = [targs.count(i) for i in range(k)]
    for c, n in zip(classes, counts):
        assert (n == 0 and np.isnan(per[c])) or 0 <= per[c] <= 1
    right = sum(p == t for p, t in zip(preds, targs))
    assert sum(per[c]*n for c, n in zip(classes, counts) if n)/len(preds) == pytest.approx(right/len(preds), abs=1e-12)
    assert all(v == 1 for v in per_class_accuracy(conv(targs), conv(targs), classes).values() if v == v)


# ------------------------------------------------------------------------------------ the classifier

@st.composite
def class_stacks(draw):
    "2 to 4 classes of 1 to 4 images on the pixel grid, all of one size"
    k, h, w = draw(st.integers(2, 4)), draw(sides), draw(sides)
    return {f'c{c}': torch.from_numpy(draw(arrays(np.uint8, (draw(st.integers(1, 4)), h, w), elements=st.integers(0, 255)))).float()/255
            for c in range(k)}


@pytest.mark.parametrize('distance', ['l1', 'rmse'])
@props
@given(stacks=class_stacks())
def test_classifier_properties(distance, stacks):
    "Ideals are the class means; predict is the first smallest distance; score agrees with per_class_accuracy"
    model = PixelSimilarity(distance).fit(stacks)
    k = len(stacks)
    assert model.classes == list(stacks)
    for m, s in zip(model.ideals, stacks.values()): torch.testing.assert_close(m, s.mean(0))
    distinct = all(not torch.equal(model.ideals[i], model.ideals[j]) for i in range(k) for j in range(i))
    if distinct: assert model.predict(model.ideals).tolist() == list(range(k))
    scores = model.score(stacks)
    for i, (c, s) in enumerate(stacks.items()):
        d, pred = model.distances(s), model.predict(s)
        assert d.shape == (len(s), k)
        assert torch.equal(d.gather(-1, pred[:, None])[:, 0], d.min(-1).values)  # nearest
        assert all((d[j, :p] > d[j, p]).all() for j, p in enumerate(pred.tolist()))  # and the first of equals
        assert scores[c] == per_class_accuracy(pred, torch.full_like(pred, i), model.classes)[c]
        assert scores[c] == (pred == i).sum().item()/len(s)


@props
@given(stacks=class_stacks(), distance=st.sampled_from(['l1', 'rmse']))
def test_from_ideals_is_fit_on_the_means(stacks, distance):
    fitted = PixelSimilarity(distance).fit(stacks)
    given_ = PixelSimilarity.from_ideals({c: s.mean(0) for c, s in stacks.items()}, distance)
    x = torch.cat(list(stacks.values()))
    assert torch.equal(fitted.ideals, given_.ideals) and torch.equal(fitted.predict(x), given_.predict(x))


# ------------------------------------------------------------------------------------- centre of mass

@props
@given(r=st.integers(0, 27), c=st.integers(0, 27), v=st.floats(0.01, 1), shift=st.integers(-3, 3))
def test_centre_of_mass_follows_the_ink(r, c, v, shift):
    "One inked pixel is its own centre; rolling an image (without wrapping the ink) moves its centre by the same"
    x = torch.zeros(28, 28); x[r, c] = v
    assert centre_of_mass(x).tolist() == [r, c]
    y = torch.zeros(28, 28); y[10:15, 8:18] = torch.rand(5, 10) + 0.01
    torch.testing.assert_close(centre_of_mass(y.roll(shift, 1)), centre_of_mass(y) + torch.tensor([0., shift]))
