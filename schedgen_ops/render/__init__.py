"""Render templates/ into a validated deployment tree."""

from schedgen_ops.render.engine import render_tree
from schedgen_ops.render.validate import Problem, validate_tree

__all__ = ["Problem", "render_tree", "validate_tree"]
