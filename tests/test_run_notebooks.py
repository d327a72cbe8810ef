"""The comparison of fresh outputs with committed ones (tools/run_notebooks.py) and the heading anchors of the site
(tools/build_site.py): what they tolerate, and what they must still catch."""
from __future__ import annotations
import base64, io, sys, tempfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

sys.path.insert(0, str(ROOT/'tools'))
import build_site as bs  # noqa: E402
import run_notebooks as rn  # noqa: E402


def stream(text, name='stdout'): return {'output_type': 'stream', 'name': name, 'text': text}
def plain(text): return {'output_type': 'execute_result', 'data': {'text/plain': text}, 'metadata': {}, 'execution_count': None}
def png(arr) -> dict:
    b = io.BytesIO(); Image.fromarray(arr).save(b, 'PNG')
    return {'output_type': 'display_data', 'data': {'image/png': base64.b64encode(b.getvalue()).decode(), 'text/plain': '<Figure>'}, 'metadata': {}}


def test_masks_hide_what_varies_not_results():
    m = rn.mask
    assert m("'0.45 s'") == "'<time>'" and m('12.3 ms') == '<time>' and m('took 3.2s') == 'took <time>'
    assert m('00:01') == '<clock>' and m('0:00:01') == '<clock>' and m('<function f at 0x7f3a2b1c>') == '<function f>'
    assert m(f'{tempfile.gettempdir()}/tmpab12/x.png') == '<tmp>'
    assert m("'broadcasting is 264 times faster'") == "'broadcasting is <ratio> times faster'"
    assert m("mnist_sample: fastai's downloaded copy at ~/.fastai/data/mnist_sample") == m(
        'mnist_sample: the real MNIST digits shipped with mnist_basics, at ~/.fastai/data/mnist_sample')
    for kept in ['0.9168', 'tensor(0.1114)', 'torch.Size([6131, 28, 28])', "{'train/3': 6131}", 'accuracy 0.95',
                 'the 3s and 7s', 'epoch 3', '[4:10, 4:10]', 'x[:, 2:5]', '10.png']:
        assert m(kept) == kept, kept


@pytest.mark.parametrize('a,b,same', [
    ('0.9168', '0.9168', True), ('0.9168', '0.9169', True),      # one unit in the last printed digit
    ('0.034567', '0.034590', True),                               # within a relative 1e-3
    ('0.9168', '0.9178', False), ('0.0345', '0.0355', False),      # a changed result
    ('6131', '6132', False), ('2038', '2038', True),               # whole numbers: equal or not
])
def test_numbers_between_machines(a, b, same):
    assert rn.numbers_agree(a, b) is same


def test_text_outputs():
    d = rn.outputs_differ
    assert d([plain('tensor([0.1234, 0.5000])')], [plain('tensor([0.1235, 0.5000])')]) is None
    assert 'committed' in d([plain('tensor([0.1234, 0.5000])')], [plain('tensor([0.1334, 0.5000])')])
    assert d([plain('(6131, 28, 28)')], [plain('(6265, 28, 28)')])
    assert d([stream('loss 1.0\n')], [stream('loss 1.0\n'), plain('x')])               # another output
    assert d([stream('a\n'), stream('b\n')], [stream('a\nb\n')]) is None              # split streams are one
    assert d([stream('x\n')], [stream('x\n'), stream('a warning\n', 'stderr')]) is None  # warnings are not compared
    assert d([stream('e 1 |██--| 50.00% [1/2 00:01<00:01]\re 1 |████| 100.00% [2/2 00:02<00:00]\n')],
             [stream('e 1 |████| 100.00% [2/2 00:03<00:00]\n')]) is None               # progress redraws
    assert d([plain('<T_abc12_row0 id="T_abc12">')], [plain('<T_99f0e_row0 id="T_99f0e">')]) is None  # pandas Styler ids
    timing = d([plain('loop 16.62 vs 0.06')], [plain('loop 25.11 vs 0.16')], timing=True)
    assert timing is None


def test_pictures():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    b = a.copy(); b[0, :5] = 255 - b[0, :5]                      # a few pixels: anti-aliasing of another build
    c = a.copy(); c[:20, :30] = 0                                 # a part of the picture changed
    assert rn.outputs_differ([png(a)], [png(b)]) is None
    assert 'picture differs' in rn.outputs_differ([png(a)], [png(c)])
    assert 'size' in rn.outputs_differ([png(a)], [png(a[:50])])


def test_first_difference_names_the_cell():
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# T'), nbformat.v4.new_code_cell('acc = 1\nacc')])
    nb.cells[1].outputs = [nbformat.from_dict(plain('0.9168'))]
    assert rn.first_difference(nb, {1: [plain('0.9168')]}) is None
    msg = rn.first_difference(nb, {1: [plain('0.9500')]})
    assert msg.startswith("cell 1 ('acc = 1')") and '0.9168' in msg and '0.9500' in msg


def test_link_anchors():
    cases = {'The seven steps': 'the-seven-steps', "fastai's `SGD` and `Learner`": 'fastais-sgd-and-learner',
             'The layout of `MNIST_SAMPLE`': 'the-layout-of-mnist_sample', 'L1 or RMSE?': 'l1-or-rmse',
             '3 ways to crop': 'ways-to-crop', 'Version 2.0 notes': 'version-2.0-notes',
             '[The docs](https://example.com) *now*': 'the-docs-now'}
    for heading, anchor in cases.items(): assert bs.heading_anchor(heading) == anchor, heading
