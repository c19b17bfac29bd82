"""Task recipes: each subpackage has the same shape: data → model → train → evaluate → cli."""
