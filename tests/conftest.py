import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_data():
    from smplify.body.tiny import make_tiny_model

    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_model(tiny_data):
    from smplify.body import BodyModel

    return BodyModel(tiny_data)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SMPLIFY_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow opt-in test: set SMPLIFY_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
