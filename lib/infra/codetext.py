"""Code as what it computes: its syntax tree without docstrings or comments, written back by ``ast.unparse``. The
one normalisation that the notebooks' fingerprints (lib.reporting.fingerprint) and the artifacts' code hashes
(lib.infra.artifacts) use, so that editing a comment, a docstring or the layout re-runs nothing and records nothing, and
the text is the same on every Python version that parses the code. Imports nothing heavy (the fingerprints are
computed without torch).
"""
import ast
import inspect
import textwrap


def normalised(source):
    """`source` (Python text) as ``ast.unparse`` of its syntax tree without docstrings or comments."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def code_text(obj):
    """What a module, function or class computes, as normalised text of its source."""
    return normalised(inspect.getsource(obj))
