"""Code as what it computes: its syntax tree without docstrings or comments, the one normalisation that both the
cache keys (lib.cache.code_text) and the notebooks' fingerprints (lib.fingerprint) hash, so that editing a comment
or a docstring re-runs nothing and rebuilds nothing. Imports nothing heavy (the fingerprints are computed without torch).
"""
import ast
import textwrap


def normalised(source):
    """`source` (Python text) as ``ast.dump`` of its syntax tree (no line numbers) without docstrings or comments."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)

