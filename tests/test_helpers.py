"""Helper arguments a learner gets wrong: shapes, dtypes, empty stacks, NaNs, an unfitted classifier, a metric name.

Each mistake gets an error that names what was wrong (shapes, argument, class), or is handled in a documented way.
"""
from __future__ import annotations
import re

import pytest
import torch

from mnist_basics.data import load_digits
from mnist_basics.mean_images import ideal_digits, mean_image
from mnist_basics.accuracy import PixelSimilarity, accuracy, baseline, confidence, is_3, per_class_accuracy
from mnist_basics.similarity import l1_distance, rmse_distance

DISTANCES = [l1_distance, rmse_distance]


@pytest.fixture(scope='module')
def stacks():
    "Real 3s and 7s as float stacks in [0, 1]: 300 to make the ideals, 100 to test, per class"
    from mnist_basics.sources import mnist_arrays
    X, y = mnist_arrays('test')
    out = {}
    for c in ('3', '7'):
        s = torch.from_numpy(X[y == int(c)][:400].copy()).float()/255
        out[c] = s
    return {'train': {c: s[:300] for c, s in out.items()}, 'valid': {c: s[300:] for c, s in out.items()}}


@pytest.fixture(scope='module')
def model(stacks): return PixelSimilarity().fit(stacks['train'])


# ------------------------------------------------------------------------------------------- shapes

@pytest.mark.parametrize('dist', DISTANCES, ids=lambda f: f.__name__)
@pytest.mark.parametrize('sa,sb', [((28, 28), (32, 32)), ((28, 28), (28, 27)), ((5, 28, 28), (4, 28, 28)),
                                   ((2, 3, 28, 28), (3, 2, 28, 28)), ((784,), (28, 28)), ((), (28, 28))])
def test_mismatched_shapes_name_both(dist, sa, sb):
    with pytest.raises(ValueError) as e: dist(torch.zeros(sa), torch.zeros(sb))
    msg = str(e.value)
    assert dist.__name__ in msg and str(sa) in msg and str(sb) in msg, msg


def test_classifier_wrong_image_size(model):
    with pytest.raises(ValueError) as e: model.predict(torch.zeros(5, 32, 32))
    assert '(28, 28)' in str(e.value) and '(5, 32, 32)' in str(e.value)


def test_accuracy_mismatched_shapes_name_both():
    with pytest.raises(ValueError) as e: accuracy(torch.zeros(5), torch.zeros(6))
    assert '(5,)' in str(e.value) and '(6,)' in str(e.value)


def test_mean_image_wants_a_stack():
    with pytest.raises(ValueError, match=r'\(28, 28\)'): mean_image(torch.zeros(28, 28))


# ------------------------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize('dist', DISTANCES, ids=lambda f: f.__name__)
def test_integer_pixels_are_converted_without_wrapping(dist):
    "uint8 images: 0 - 255 must not wrap around to 1, and the result is the float result"
    a, b = torch.zeros(28, 28, dtype=torch.uint8), torch.full((28, 28), 255, dtype=torch.uint8)
    assert dist(a, b).item() == 255.0 and dist(b, a).item() == 255.0
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, 256, (3, 28, 28), generator=g, dtype=torch.uint8) for _ in range(2))
    expected = dist(x.float(), y.float())
    for conv in (lambda t: t, lambda t: t.long(), lambda t: t.numpy(), lambda t: t.tolist(), lambda t: t.int()):
        got = dist(conv(x), conv(y))
        assert got.is_floating_point()
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize('dist', DISTANCES, ids=lambda f: f.__name__)
def test_bool_and_mixed_float_precision(dist):
    a = torch.zeros(28, 28, dtype=torch.bool); b = torch.ones(28, 28, dtype=torch.bool)
    assert dist(a, b).item() == 1.0
    x = torch.rand(28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(dist(x.double(), x.float()*0).float(), dist(x, torch.zeros(28, 28)))


def test_mean_image_of_integers_says_how_to_convert():
    "mean_image refuses integer stacks with a hint (torch's own mean would fail with a cryptic message)"
    with pytest.raises(TypeError) as e: mean_image(torch.zeros(3, 28, 28, dtype=torch.uint8))
    assert 'uint8' in str(e.value) and '/255' in str(e.value)


def test_classifier_on_integer_images(model, stacks):
    """Raw 0-255 pixels given to a classifier whose ideals are in [0, 1] would be silently misjudged: every way in
    (predict, predict_names, distances, score) refuses them with a TypeError naming the dtype and the conversion"""
    floats = torch.cat([stacks[split][c] for split in ('train', 'valid') for c in ('3', '7')])
    for dtype in (torch.uint8, torch.int64):
        x = (floats*255).round().to(dtype)
        for call in (model.predict, model.predict_names, model.distances, lambda t: model.score({'3': t})):
            with pytest.raises(TypeError) as e: call(x)
            assert str(dtype).removeprefix('torch.') in str(e.value) and '/255' in str(e.value), str(e.value)
    # converted as the message says, the same images get the float images' predictions
    assert torch.equal(model.predict((floats*255).round().to(torch.uint8).float()/255), model.predict(floats))


# --------------------------------------------------------------------------------------- empty input

@pytest.mark.parametrize('dist', DISTANCES, ids=lambda f: f.__name__)
def test_empty_stack_in_distances(dist):
    for a, b in [((0, 28, 28), (28, 28)), ((28, 28), (0, 28, 28)), ((0, 28, 28), (0, 28, 28)), ((0, 0), (0, 0))]:
        with pytest.raises(ValueError, match='empty'): dist(torch.zeros(a), torch.zeros(b))


def test_empty_stacks_elsewhere(tmp_path, model):
    with pytest.raises(ValueError, match='empty'): mean_image(torch.zeros(0, 28, 28))
    with pytest.raises(ValueError, match='no stacks'): ideal_digits({})
    with pytest.raises(ValueError): PixelSimilarity().fit({})
    with pytest.raises(ValueError, match='empty'): PixelSimilarity().fit({'3': torch.zeros(0, 28, 28), '7': torch.rand(2, 28, 28)})
    with pytest.raises(ValueError, match='no classes'): model.score({})
    with pytest.raises(ValueError, match='empty'): accuracy([], [])
    with pytest.raises(ValueError, match='empty'): per_class_accuracy([], [], ['3', '7'])
    with pytest.raises(ValueError, match='2 ideals'): confidence(torch.zeros(5, 1))
    (tmp_path/'3').mkdir()
    with pytest.raises(ValueError) as e: load_digits(tmp_path/'3')
    assert str(tmp_path/'3') in str(e.value) and 'no images' in str(e.value)


def test_predicting_an_empty_stack(model):
    "Zero images to predict is refused with a message that says the stack is empty"
    with pytest.raises(ValueError, match='empty'): model.predict(torch.zeros(0, 28, 28))


# ---------------------------------------------------------------------------------------------- NaN

@pytest.mark.parametrize('dist', DISTANCES, ids=lambda f: f.__name__)
def test_nan_in_distances_propagates_per_image(dist):
    """The distance helpers follow torch (F.l1_loss, F.mse_loss): a NaN pixel makes that image's distance NaN,
    and only that image's."""
    g = torch.Generator().manual_seed(2)
    x, ideal = torch.rand(4, 28, 28, generator=g), torch.rand(28, 28, generator=g)
    x[1, 5, 5] = float('nan')
    d = dist(x, ideal)
    assert torch.isnan(d).tolist() == [False, True, False, False]


def test_classifier_refuses_nan_images(model, stacks):
    "A NaN image has no nearest ideal: predicting it must fail naming the argument, not quietly say class 0"
    x = stacks['valid']['7'][:5].clone(); x[3, 10, 10] = float('nan')
    for call in (model.predict, model.predict_names):
        with pytest.raises(ValueError) as e: call(x)
        assert 'NaN' in str(e.value) and re.search(r'\bx\b', str(e.value)), str(e.value)
    with pytest.raises(ValueError) as e: model.score({'7': x})
    assert 'NaN' in str(e.value) and "'7'" in str(e.value), str(e.value)


def test_fit_refuses_nan_stacks(stacks):
    "One NaN pixel in training makes that ideal all-NaN: every prediction would silently become class 0"
    train = {c: s.clone() for c, s in stacks['train'].items()}
    train['7'][0, 0, 0] = float('nan')
    with pytest.raises(ValueError) as e: PixelSimilarity().fit(train)
    assert 'NaN' in str(e.value) and "'7'" in str(e.value), str(e.value)


# ------------------------------------------------------------------------------------- not fitted yet

def test_classifier_used_before_fit():
    m = PixelSimilarity()
    assert 'not fitted' in repr(m)
    for call in (lambda: m.predict(torch.zeros(28, 28)), lambda: m.distances(torch.zeros(28, 28)),
                 lambda: m.predict_names(torch.zeros(28, 28)), lambda: m.score({'3': torch.zeros(1, 28, 28)})):
        with pytest.raises(RuntimeError) as e: call()
        assert 'not fitted' in str(e.value) and '.fit' in str(e.value)


def test_failed_fit_leaves_the_classifier_unfitted(model, stacks):
    "A fit that fails half way must not leave a half-fitted classifier, nor spoil a fitted one"
    m = PixelSimilarity()
    with pytest.raises(ValueError): m.fit({'3': torch.rand(2, 28, 28), '7': torch.rand(2, 32, 32)})
    with pytest.raises(RuntimeError): m.predict(torch.zeros(28, 28))
    before = model.ideals.clone()
    with pytest.raises(ValueError): model.fit({'3': torch.rand(2, 28, 28), '7': torch.zeros(0, 28, 28)})
    assert torch.equal(model.ideals, before) and model.classes == ['3', '7']


# ------------------------------------------------------------------------------------ metric names

@pytest.mark.parametrize('name', ['l3', 'L1', 'mse', '', None])
def test_unknown_metric(name, sample):
    with pytest.raises(ValueError) as e: PixelSimilarity(name)
    msg = str(e.value)
    assert repr(name) in msg and "'l1'" in msg and "'rmse'" in msg, msg
    with pytest.raises(ValueError) as e: baseline(sample, metric=name)
    assert repr(name) in str(e.value)


def test_score_on_an_unknown_class(model, stacks):
    with pytest.raises(ValueError) as e: model.score({'8': stacks['valid']['3']})
    assert "'8'" in str(e.value) and "'3'" in str(e.value)


def test_is_3_agrees_with_the_classifier(model, stacks):
    mean3, mean7 = model.ideals
    for c, s in stacks['valid'].items():
        assert torch.equal(is_3(s, mean3, mean7), model.predict(s) == 0)
