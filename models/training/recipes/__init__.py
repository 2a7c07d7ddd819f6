"""Training recipes: every stage that makes a model, in order, for ``qem train --recipe NAME`` (the runner is
``models.training.recipe``). One module per model; ``RECIPES`` names them."""
from __future__ import annotations

from models.training.recipes.coco import CROWDPOSE_DEKR_QEM_W32, DEKR_QEM_W32, HRNET_W32, REALTIME
from models.training.recipes.stages import Recipe, smoke
from models.training.recipes.tiny_synth import RECIPE as TINY_SYNTH

RECIPES: dict[str, Recipe] = {r.name: r for r in (TINY_SYNTH, HRNET_W32, REALTIME, DEKR_QEM_W32,
                                                CROWDPOSE_DEKR_QEM_W32)}


def get_recipe(name: str, smoke_scale: bool = False) -> Recipe:
    """The recipe called ``name`` (at smoke scale when asked); ``KeyError`` with the known names otherwise."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return smoke(RECIPES[name]) if smoke_scale else RECIPES[name]
