"""Helper arguments a learner gets wrong: dtypes, shapes, empty stacks, NaNs, an unfitted classifier, a distance name.

Each mistake gets an error that names the function, the argument and what was wrong (shape, dtype, class), or is
handled in a documented way (ties go to the first class).
"""
from __future__ import annotations

import pytest
import torch

from mnist_basics.baseline import PixelSimilarity, centre_of_mass, l1_distance, per_class_accuracy, rmse_distance
from mnist_basics.draw import EXAMPLE_STROKES, DrawDigit, digit_explorer, explore_digit, mnist_style, strokes_image
from mnist_basics.exercises import Verdict, verdict

DISTANCES = [l1_distance, rmse_distance]
ids = lambda f: f.__name__


@pytest.fixture(scope='module')
def stacks():
    "Real 3s and 7s of the shipped MNIST test set as float stacks in [0, 1]: 300 to fit, 100 to score, per class"
    from mnist_basics.data import mnist_arrays
    X, y = mnist_arrays('test')
    out = {c: torch.from_numpy(X[y == int(c)][:400].copy()).float()/255 for c in ('3', '7')}
    return {'train': {c: s[:300] for c, s in out.items()}, 'valid': {c: s[300:] for c, s in out.items()}}


@pytest.fixture(scope='module')
def model(stacks): return PixelSimilarity().fit(stacks['train'])


@pytest.fixture(scope='module')
def ideals(model): return dict(zip(model.classes, model.ideals))


# ------------------------------------------------------------------------------------------- distances

@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@pytest.mark.parametrize('sa,sb', [((28, 28), (32, 32)), ((28, 28), (28, 27)), ((5, 28, 28), (4, 28, 28)),
                                   ((2, 3, 28, 28), (3, 2, 28, 28)), ((784,), (28, 28)), ((), (28, 28))])
def test_mismatched_shapes_name_both(dist, sa, sb):
    with pytest.raises(ValueError) as e: dist(torch.zeros(sa), torch.zeros(sb))
    msg = str(e.value)
    assert msg.startswith(dist.__name__) and (str(sa) in msg or str(sb) in msg), msg
    if len(sa) >= 2: assert str(sa) in msg and str(sb) in msg, msg


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
@pytest.mark.parametrize('dtype', [torch.uint8, torch.int64, torch.bool])
def test_distances_refuse_non_float_pixels(dist, dtype):
    "0-255 pixels against an ideal in [0, 1] would measure nonsense: refused, naming the argument and the conversion"
    for a, b, name in ((torch.zeros(28, 28, dtype=dtype), torch.zeros(28, 28), 'a'), (torch.zeros(28, 28), torch.zeros(28, 28, dtype=dtype), 'b')):
        with pytest.raises(TypeError) as e: dist(a, b)
        msg = str(e.value)
        assert f'{name} has dtype {dtype}' in msg and f'{name}.float()/255' in msg, msg


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
def test_distances_accept_arrays_and_mixed_precision(dist):
    x = torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(dist(x.numpy(), x[0].numpy()), dist(x, x[0]))
    torch.testing.assert_close(dist(x.double(), x[0]).float(), dist(x, x[0]))


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
def test_empty_stacks_in_distances(dist):
    for a, b in [((0, 28, 28), (28, 28)), ((28, 28), (0, 28, 28)), ((0, 0), (0, 0))]:
        with pytest.raises(ValueError, match='empty'): dist(torch.zeros(a), torch.zeros(b))


@pytest.mark.parametrize('dist', DISTANCES, ids=ids)
def test_nan_propagates_per_image(dist):
    "Like F.l1_loss and F.mse_loss, a NaN pixel makes that image's distance NaN, and only that image's"
    x, ideal = torch.rand(4, 28, 28), torch.rand(28, 28)
    x[1, 5, 5] = float('nan')
    assert torch.isnan(dist(x, ideal)).tolist() == [False, True, False, False]


def test_distances_are_torch_losses():
    import torch.nn.functional as F
    a, b = torch.rand(28, 28), torch.rand(28, 28)
    torch.testing.assert_close(l1_distance(a, b), F.l1_loss(a, b))
    torch.testing.assert_close(rmse_distance(a, b), F.mse_loss(a, b).sqrt())


# ------------------------------------------------------------------------------------------ accuracy

def test_per_class_accuracy_refuses_broadcasting():
    "The issue's case: (4,) against (4, 1) would broadcast to (4, 4) and give a number; it is refused"
    with pytest.raises(ValueError) as e: per_class_accuracy(torch.zeros(4, dtype=torch.long), torch.ones(4, 1, dtype=torch.long), ['3', '7'])
    assert '(4,)' in str(e.value) and '(4, 1)' in str(e.value) and 'per_class_accuracy' in str(e.value)


@pytest.mark.parametrize('preds,targs,match', [
    (torch.randn(4), torch.ones(4, dtype=torch.long), r'preds has dtype torch\.float32.*argmax'),
    (torch.ones(4, dtype=torch.long), torch.ones(4), r'targs has dtype torch\.float32'),
    (torch.tensor([True, False]), torch.tensor([0, 1]), r'preds has dtype torch\.bool'),
    ([0, 3], [0, 1], r'preds holds 0 to 3; class indices go from 0 to 1'),
    ([0, 1], [-1, 1], r'targs holds -1 to 1'),
    ([], [], 'empty'),
])
def test_per_class_accuracy_bad_input(preds, targs, match):
    with pytest.raises((ValueError, TypeError), match=match): per_class_accuracy(preds, targs, ['3', '7'])


def test_per_class_accuracy_values():
    acc = per_class_accuracy([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], ['3', '7'])
    assert acc == {'3': 0.5, '7': 2/3}
    nan = per_class_accuracy([1], [1], ['3', '7'])['3']
    assert nan != nan
    with pytest.raises(ValueError, match='classes is empty'): per_class_accuracy([0], [0], [])


# ------------------------------------------------------------------------------------------ classifier

@pytest.mark.parametrize('name', ['l3', 'L1', 'mse', '', None])
def test_unknown_distance(name):
    with pytest.raises(ValueError) as e: PixelSimilarity(name)
    msg = str(e.value)
    assert f'distance={name!r}' in msg and "'l1'" in msg and "'rmse'" in msg, msg
    with pytest.raises(ValueError, match='distance='): PixelSimilarity.from_ideals({'3': torch.zeros(28, 28)}, name)


def test_fit_bad_stacks(stacks):
    s3 = stacks['train']['3']
    cases = [({}, 'non-empty dict'), ([s3], 'non-empty dict'),
             ({'3': (s3*255).byte()}, r"stacks\['3'\] has dtype torch\.uint8.*float\(\)/255"),
             ({'3': s3[0]}, r"stacks\['3'\] has shape \(28, 28\)"),
             ({'3': s3, '7': torch.zeros(0, 28, 28)}, r"stacks\['7'\] has shape \(0, 28, 28\)"),
             ({'3': s3, '7': torch.rand(2, 32, 32)}, 'different sizes')]
    for bad, match in cases:
        with pytest.raises((ValueError, TypeError), match=match): PixelSimilarity().fit(bad)


def test_fit_refuses_nan_stacks(stacks):
    "One NaN pixel in training makes that ideal all NaN: every prediction would silently become class 0"
    train = {c: s.clone() for c, s in stacks['train'].items()}
    train['7'][0, 0, 0] = float('nan')
    with pytest.raises(ValueError) as e: PixelSimilarity().fit(train)
    assert 'NaN' in str(e.value) and "'7'" in str(e.value)


def test_failed_fit_leaves_the_classifier_as_it_was(model):
    m = PixelSimilarity()
    with pytest.raises(ValueError): m.fit({'3': torch.rand(2, 28, 28), '7': torch.rand(2, 32, 32)})
    with pytest.raises(RuntimeError, match='not fitted'): m.predict(torch.zeros(28, 28))
    before = model.ideals.clone()
    with pytest.raises(ValueError): model.fit({'3': torch.rand(2, 28, 28), '7': torch.zeros(0, 28, 28)})
    assert torch.equal(model.ideals, before) and model.classes == ['3', '7']


def test_used_before_fit():
    m = PixelSimilarity()
    assert 'not fitted' in repr(m)
    for call in (lambda: m.predict(torch.zeros(28, 28)), lambda: m.distances(torch.zeros(28, 28)),
                 lambda: m.score({'3': torch.zeros(1, 28, 28)})):
        with pytest.raises(RuntimeError, match=r'not fitted yet: call \.fit'): call()


def test_classifier_refuses_integer_images(model, stacks):
    x = (stacks['valid']['3']*255).round().byte()
    for call in (model.predict, model.distances, lambda t: model.score({'3': t})):
        with pytest.raises(TypeError) as e: call(x)
        assert 'torch.uint8' in str(e.value) and '/255' in str(e.value), str(e.value)
    assert torch.equal(model.predict(x.float()/255), model.predict(stacks['valid']['3']))


def test_classifier_wrong_image_size_and_empty(model):
    with pytest.raises(ValueError) as e: model.predict(torch.zeros(5, 32, 32))
    assert '(28, 28)' in str(e.value) and '(5, 32, 32)' in str(e.value)
    with pytest.raises(ValueError, match='empty'): model.predict(torch.zeros(0, 28, 28))


def test_classifier_refuses_nan_images(model, stacks):
    x = stacks['valid']['7'][:5].clone(); x[3, 10, 10] = float('nan')
    with pytest.raises(ValueError, match=r'x holds NaN pixels in 1 image'): model.predict(x)
    with pytest.raises(ValueError) as e: model.score({'7': x})
    assert 'NaN' in str(e.value) and "'7'" in str(e.value)


def test_score_on_an_unknown_class(model, stacks):
    with pytest.raises(ValueError) as e: model.score({'8': stacks['valid']['3']})
    assert "'8'" in str(e.value) and "'3'" in str(e.value)


def test_ties_go_to_the_first_class():
    "The issue: on a tie PixelSimilarity said '3' and is_3 said 7. Now the one nearest-ideal function says the first class"
    m = PixelSimilarity.from_ideals({'3': torch.ones(4, 4), '7': torch.zeros(4, 4)})
    grey = torch.full((3, 4, 4), 0.5)
    assert m.distances(grey).tolist() == [[0.5, 0.5]]*3
    assert m.predict(grey).tolist() == [0, 0, 0]
    assert PixelSimilarity.from_ideals({'7': torch.zeros(4, 4), '3': torch.ones(4, 4)}).predict(grey[0]).item() == 0


def test_chapter_is_3_agrees_with_the_classifier(model, stacks):
    "The chapter's is_3 (nearer mean3 than mean7 by L1) gives the classifier's answer wherever there is no tie"
    mean3, mean7 = model.ideals
    for s in stacks['valid'].values():
        assert torch.equal(l1_distance(s, mean3) < l1_distance(s, mean7), model.predict(s) == 0)


def test_from_ideals(model):
    with pytest.raises(ValueError, match=r"ideals\['3'\] has shape \(784,\)"): PixelSimilarity.from_ideals({'3': torch.zeros(784)})
    m = PixelSimilarity.from_ideals(dict(zip(model.classes, model.ideals)), 'rmse')
    assert m.classes == model.classes and torch.equal(m.ideals, model.ideals) and m.distance == 'rmse'


# ------------------------------------------------------------------------------------- centre of mass

def test_centre_of_mass():
    x = torch.zeros(2, 28, 28); x[0, 3, 20] = 1; x[1, 10, 4] = 1; x[1, 10, 8] = 3
    torch.testing.assert_close(centre_of_mass(x), torch.tensor([[3., 20.], [10., 7.]]))
    torch.testing.assert_close(centre_of_mass((x*50).byte()), centre_of_mass(x))
    with pytest.raises(ValueError, match='1 image'): centre_of_mass(torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match=r'shape \(784,\)'): centre_of_mass(torch.ones(784))


# ------------------------------------------------------------------------------------------------ draw

def test_drawn_examples_are_recognised(ideals):
    for d, s in EXAMPLE_STROKES.items():
        w = DrawDigit(ideals=ideals, strokes=s)
        assert f'nearest ideal: <b>{d}</b>' in w.report
        assert w.digit.shape == (28, 28) and w.digit.max() == 1


def test_draw_uses_the_classifier(ideals, monkeypatch):
    "The canvas's nearest ideal is PixelSimilarity.predict, not a copy of it"
    from mnist_basics import baseline
    calls = []
    real = baseline.PixelSimilarity.predict
    monkeypatch.setattr(baseline.PixelSimilarity, 'predict', lambda self, x: calls.append(x) or real(self, x))
    DrawDigit(ideals=ideals, strokes=EXAMPLE_STROKES['7'])
    explore_digit(0, {'3': torch.stack(list(ideals.values()))}, ideals)
    assert len(calls) == 2


def test_draw_models(ideals):
    sure7 = lambda xb: torch.tensor([[-1., 4.]])
    chapter = lambda xb: torch.tensor([[3.]])  # one score: the chapter's model, 3 when positive
    w = DrawDigit(ideals=ideals, models={'net': sure7, 'linear': chapter, 'bad': lambda xb: xb @ torch.ones(3)}, strokes=EXAMPLE_STROKES['7'])
    assert 'net: <b>7 (99%), 3 (1%)</b>' in w.report
    assert 'linear: <b>3 (95%), 7 (5%)</b>' in w.report
    assert 'bad: <b>error: RuntimeError' in w.report
    with pytest.raises(TypeError, match='models must be a dict'): DrawDigit(models=sure7)


def test_mnist_style_and_strokes():
    assert strokes_image([], canvas=50).size == (50, 50)
    assert torch.equal(mnist_style(strokes_image([])), torch.zeros(28, 28))
    assert mnist_style(torch.ones(5, 5), side=20).shape == (20, 20)
    with pytest.raises(ValueError, match=r'img has shape \(28, 28, 3\)'): mnist_style(torch.zeros(28, 28, 3))


def test_explorer(stacks, ideals):
    info = explore_digit(100, stacks['valid'], ideals, 'rmse')
    assert info['label'] == '7' and list(info['distances']) == ['3', '7'] and info['verdict'] in ('right', 'wrong')
    with pytest.raises(IndexError, match='choose 0 to 199'): explore_digit(200, stacks['valid'], ideals)
    controls, picture, text = digit_explorer(stacks['valid'], ideals, distance='rmse', start=3).children
    back, on, number, slider = controls.children
    first = bytes(picture.value)
    slider.value = 150
    assert number.value == 150 and bytes(picture.value) != first and 'image 150</span> is a <b>7</b>' in text.value
    on.click(); on.click(); back.click()
    assert (number.value, slider.value) == (151, 151) and 'image 151</span> is a' in text.value
    with pytest.raises(IndexError): digit_explorer(stacks['valid'], ideals, start=500)


# ------------------------------------------------------------------------------------------- verdicts

def test_verdict_marks_need_no_emoji():
    for ok in (True, False):
        md = Verdict(ok, 'why.')._repr_markdown_()
        assert md.startswith('**Right**' if ok else '**Not yet**') and all(ord(ch) < 128 for ch in md), md


def test_verdict_counts_items_as_a_learner_does():
    assert verdict((3, 27, 28), (3, 28, 28), 'shape').why == 'the second item of the shape you gave is off.'
    assert verdict([9, 2, 9], [1, 2, 3], 'list').why == 'the first and third items of the list you gave are off.'
    assert verdict(list(range(12)), list(range(11)) + [0], 'list').why == 'the 12th item of the list you gave is off.'
    assert 'replace the placeholder' in verdict(..., 3, 'count').why
