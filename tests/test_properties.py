"""Properties the distance and accuracy helpers must have for every input, checked with Hypothesis.

Example counts are kept modest and the runs derandomized (same examples every run, nothing written to disk),
so the suite stays fast and gives the same verdict twice.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mnist_basics.accuracy import PixelSimilarity, accuracy, confusion_table, per_class_accuracy
from mnist_basics.similarity import l1_distance, rmse_distance

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
    a = draw(arrays(np.float32, shape, elements=elements))
    b = draw(arrays(np.float32, shape, elements=elements))
    return torch.from_numpy(a), torch.from_numpy(b)


@st.composite
def on_the_pixel_grid(draw):
    "Two stacks of the same shape whose values are k/255, as images loaded from PNG files are"
    shape = (*draw(st.lists(st.integers(1, 3), max_size=2)), draw(sides), draw(sides))
    a, b = (draw(arrays(np.uint8, shape, elements=st.integers(0, 255))) for _ in range(2))
    return torch.from_numpy(a).float()/255, torch.from_numpy(b).float()/255


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
@given(ab=st.one_of(pairs(), pairs(wide)))
def test_zero_exactly_for_equal_inputs(dist, ab):
    a, _ = ab
    assert (dist(a, a) == 0).all()
    assert (dist(a, a.clone()) == 0).all()


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(ab=on_the_pixel_grid())
def test_zero_only_for_equal_images(dist, ab):
    "On the pixel grid no difference is too small to register: a distance is 0 exactly when the images are equal"
    a, b = ab
    same = (a == b).flatten(-2).all(-1)
    assert torch.equal(dist(a, b) == 0, same)


@props
@given(ab=st.one_of(pairs(), pairs(wide)))
def test_rmse_is_at_least_l1(ab):
    "The root of the mean square is never below the mean of the absolute values"
    a, b = ab
    l1, rmse = l1_distance(a, b), rmse_distance(a, b)
    assert (rmse >= l1*(1 - 1e-5) - 1e-6).all()


@st.composite
def triples(draw, elements=wide):
    "Three float32 stacks of the same shape"
    shape = (*draw(st.lists(st.integers(1, 3), max_size=1)), draw(sides), draw(sides))
    return [torch.from_numpy(draw(arrays(np.float32, shape, elements=elements))) for _ in range(3)]


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(abc=st.one_of(triples(pixels), triples(wide)))
def test_triangle_inequality(dist, abc):
    "Going from a to c directly is never longer than going through b (both are metrics, up to rounding)"
    a, b, c = abc
    assert (dist(a, c) <= (dist(a, b) + dist(b, c))*(1 + 1e-5) + 1e-5).all()


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(data=st.data())
def test_broadcasting_agrees_with_a_loop(dist, data):
    "A stack against one image, and a (n, 1, h, w) stack against k ideals, give what a loop over the images gives"
    h, w = data.draw(sides), data.draw(sides)
    n, m, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    el = data.draw(st.sampled_from([pixels, wide]))
    stack = torch.from_numpy(data.draw(arrays(np.float32, (n, m, h, w), elements=el)))
    image = torch.from_numpy(data.draw(arrays(np.float32, (h, w), elements=el)))
    ideals = torch.from_numpy(data.draw(arrays(np.float32, (k, h, w), elements=el)))
    got = dist(stack, image)
    assert got.shape == (n, m)
    looped = torch.stack([torch.stack([dist(stack[i, j], image) for j in range(m)]) for i in range(n)])
    torch.testing.assert_close(got, looped, rtol=1e-5, atol=1e-6)
    got = dist(stack[:, 0].unsqueeze(1), ideals)
    assert got.shape == (n, k)
    looped = torch.stack([torch.stack([dist(stack[i, 0], ideals[j]) for j in range(k)]) for i in range(n)])
    torch.testing.assert_close(got, looped, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dist(image, stack), dist(stack, image), rtol=0, atol=0)


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@props
@given(ab=on_the_pixel_grid())
def test_integer_images_give_the_float_answer(dist, ab):
    a, b = ((x*255).round().to(torch.uint8) for x in ab)
    torch.testing.assert_close(dist(a, b), dist(a.float(), b.float()))


# ------------------------------------------------------------------------------------------ accuracy

@st.composite
def labels(draw, max_classes=4):
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, 60))
    preds = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    targets = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return k, preds, targets


@props
@given(kpt=labels(), kind=st.sampled_from(['list', 'tensor', 'numpy']))
def test_accuracy_is_matches_over_total(kpt, kind):
    k, preds, targets = kpt
    conv = {'list': list, 'tensor': torch.tensor, 'numpy': np.array}[kind]
    acc = accuracy(conv(preds), conv(targets))
    assert 0 <= acc <= 1
    assert acc == sum(p == t for p, t in zip(preds, targets))/len(preds)
    assert accuracy(conv(targets), conv(targets)) == 1.0
    assert accuracy(conv(preds), conv(targets)) == accuracy(conv(targets), conv(preds))


@props
@given(kpt=labels())
def test_per_class_accuracy_weighted_is_the_accuracy(kpt):
    k, preds, targets = kpt
    classes = [str(i) for i in range(k)]
    per = per_class_accuracy(preds, targets, classes)
    assert list(per) == classes
    counts = [targets.count(i) for i in range(k)]
    for name, n in zip(classes, counts):
        assert (n == 0 and np.isnan(per[name])) or 0 <= per[name] <= 1
    weighted = sum(per[c]*n for c, n in zip(classes, counts) if n)/len(targets)
    assert weighted == pytest.approx(accuracy(preds, targets), abs=1e-12)
    table = confusion_table(preds, targets, classes)
    assert table.values.sum() == len(preds)
    assert np.trace(table.values)/len(preds) == pytest.approx(accuracy(preds, targets), abs=1e-12)
    assert table.sum(axis=1).tolist() == counts


@props
@given(preds=st.lists(st.booleans(), min_size=1, max_size=50), data=st.data())
def test_accuracy_of_booleans(preds, data):
    targets = data.draw(st.lists(st.booleans(), min_size=len(preds), max_size=len(preds)))
    acc = accuracy(torch.tensor(preds), torch.tensor(targets))
    assert acc == sum(p == t for p, t in zip(preds, targets))/len(preds)


# ------------------------------------------------------------------------------------ the classifier

@pytest.mark.parametrize('metric', ['l1', 'rmse'])
@props
@given(data=st.data())
def test_classifier_properties(metric, data):
    "Each ideal is labelled with its own class; score() agrees with accuracy(); predict() is the nearest ideal"
    k, h, w = data.draw(st.integers(2, 4)), data.draw(sides), data.draw(sides)
    stacks = {}
    for c in range(k):
        n = data.draw(st.integers(1, 4))
        stacks[f'c{c}'] = torch.from_numpy(data.draw(arrays(np.uint8, (n, h, w), elements=st.integers(0, 255)))).float()/255
    model = PixelSimilarity(metric).fit(stacks)
    distinct = all(not torch.equal(model.ideals[i], model.ideals[j]) for i in range(k) for j in range(i))
    if distinct: assert model.predict(model.ideals).tolist() == list(range(k))
    scores = model.score(stacks)
    for i, (c, s) in enumerate(stacks.items()):
        pred = model.predict(s)
        assert scores[c] == accuracy(pred, torch.full_like(pred, i))
        d = model.distances(s)
        assert torch.equal(d.gather(-1, pred[:, None])[:, 0], d.min(-1).values)
    assert scores['mean'] == pytest.approx(sum(scores[c] for c in stacks)/k)
