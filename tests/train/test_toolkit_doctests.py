"""The examples in the toolkit's docstrings run and print what they show (grukit.train's light modules)."""

import doctest

import pytest

import grukit.train.module
import grukit.train.run
import grukit.train.seed


@pytest.mark.parametrize("mod", [grukit.train.run, grukit.train.seed, grukit.train.module])
def test_docstring_examples(mod):
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS, verbose=False)
    assert res.attempted > 0 and res.failed == 0, res
