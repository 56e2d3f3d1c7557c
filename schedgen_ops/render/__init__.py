"""Render templates/ into a validated deployment tree."""

from schedgen_ops.render.engine import render_tree
from schedgen_ops.render.problems import Problem
from schedgen_ops.render.validate import validate_tree

__all__ = ["Problem", "render_tree", "validate_tree"]
