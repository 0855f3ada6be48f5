"""Fixtures of the visualisation tests."""
from __future__ import annotations

import pytest
from _viz_helpers import build_graph, scene_images


@pytest.fixture(scope="module")
def images():
    return scene_images()


@pytest.fixture(scope="module")
def graph(images):
    return build_graph(images)
