"""Reads an HTML file with Python's own parser (an independent reader) and prints
one JSON object: the start tags seen, nesting errors, attribute values that point
elsewhere, and every piece of text (entities decoded), for report_test to assert on."""
import html.parser
import json
import sys

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Elements that may close implicitly in HTML; the report closes them anyway.
SVG_SELF_CLOSING = {"line", "circle", "rect", "polyline", "path"}


class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.external, self.text = [], [], {}, [], []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            v = (value or "").strip().lower()
            # Links within the page (#id) are fine; anything that loads or goes elsewhere is not.
            if (name in ("src", "href", "xlink:href", "action", "srcset") and not v.startswith("#")) \
                    or name.startswith("on") or "://" in v or v.startswith("javascript:") or "url(" in v:
                self.external.append(f"{tag} {name}={value}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


c = Checker()
with open(sys.argv[1], encoding="utf-8") as f:
    c.feed(f.read())
c.close()
if c.stack:
    c.errors.append("unclosed: " + " ".join(c.stack))
print(json.dumps({"errors": c.errors, "tags": c.tags, "external": c.external, "text": "\n".join(c.text)}))
