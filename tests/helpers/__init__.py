"""What several test files share, so that no test module imports another: the tiny dataset and
configs that train in seconds (``tiny``), EPIC-like trees and videos (``epic_tree``), small models
and batches (``small_models``), fpar's one-line errors (``output``) and a stand-in for ``train``
(``fake_train``). ``tests/conftest.py`` puts ``tests/`` on ``sys.path``."""
