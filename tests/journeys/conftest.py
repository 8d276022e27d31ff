"""Journey tests run single-threaded (the test machine's cores are shared), from the tests' own helpers."""

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
