"""What a reader sees on a rendered page, and what must never be there: Python reprs (a dict, an array, an object's
address), "nan" or "inf" where a number belongs, tracebacks. Code inputs, scripts and styles are not what a reader
reads: they are left out. Used by the tests on every page of the smoke report."""
import re
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HIDDEN_TAGS = {"script", "style", "head"}
HIDDEN_CLASSES = ("jp-InputArea", "jp-InputPrompt", "jp-OutputPrompt")  # nbconvert's code cells and prompts

LEAKS = (
    (re.compile(r"\{'[^']*': "), "a Python dict"),
    (re.compile(r"\b(?:nan|NaN)\b"), "nan"),
    (re.compile(r"(?<![\w.\-])-?inf\b"), "inf"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"object at 0x[0-9a-f]+"), "an object's repr"),
    (re.compile(r"<IPython\.|<Figure size"), "a display object's repr"),
    (re.compile(r"\b(?:array|tensor)\(|np\.float\d*\(|dtype="), "an array's repr"),
)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hidden, self.parts = [], []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        cls = dict(attrs).get("class") or ""
        inherited = self.hidden[-1] if self.hidden else False
        self.hidden.append(inherited or tag in HIDDEN_TAGS or any(c in cls.split() for c in HIDDEN_CLASSES))

    def handle_endtag(self, tag):
        if tag not in VOID and self.hidden:
            self.hidden.pop()

    def handle_data(self, data):
        if not (self.hidden and self.hidden[-1]):
            self.parts.append(data)


def visible_text(page: str) -> str:
    """The text of an HTML page as a reader meets it: no code inputs, scripts, styles or head."""
    parser = _Text()
    parser.feed(page)
    return " ".join(parser.parts)


def leaks(page: str, context: int = 60) -> list[tuple[str, str]]:
    """(what, where) for every repr, nan, inf or traceback in the page's visible text."""
    text = visible_text(page)
    return [(what, text[max(0, m.start() - context):m.end() + context].replace("\n", " "))
            for pattern, what in LEAKS for m in pattern.finditer(text)]
