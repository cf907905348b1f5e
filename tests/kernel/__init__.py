import pytest

# checks shared by several test modules: their failed asserts show the compared values too
pytest.register_assert_rewrite("tests.kernel.lossy_tcp")
