"""Walk a PDF's page tree within a node budget (pdfminer's `PDFPage.create_pages`, bounded).

pdfminer walks every ``/Kids`` entry recursively, with a generator per level, and when the tree yields no
page it scans every object in the file. A tree without ``/Count`` whose Kids list holds a million
entries, or a chain of thousands of ``/Pages`` nodes, is walked to the end. Here the walk is iterative,
visits at most `Budget.max_tree_nodes` entries and `Limits.max_depth` levels, and yields pages in the same
(document) order with the same inherited attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pdfminer.pdfdocument import PDFDocument
from pdfminer.pdfpage import PDFPage
from pdfminer.pdftypes import PDFObjRef, dict_value, list_value
from pdfminer.psparser import LIT

from schedgen_ops.parsing.limits import Budget

_PAGES, _PAGE = LIT("Pages"), LIT("Page")


def walk_pages(doc: PDFDocument, budget: Budget) -> Iterator[PDFPage]:
    """Yield the document's pages in order; raise `parse_limit_exceeded` past the node or depth limit."""
    found = False
    if "Pages" in doc.catalog:
        for objid, attrs in _walk(doc, budget):
            found = True
            yield PDFPage(doc, objid, attrs, None)
    if found:
        return
    # No usable tree: pdfminer's fallback (every object of type /Page), under the same node budget.
    nodes = 0
    for xref in doc.xrefs:
        for objid in xref.get_objids():
            nodes += 1
            budget.tree_nodes(nodes)
            try:
                obj = doc.getobj(objid)
            except Exception:  # a damaged object is skipped, as pdfminer does
                budget.raise_if_breached()
                continue
            if isinstance(obj, dict) and obj.get("Type") is _PAGE:
                yield PDFPage(doc, objid, obj, None)


def _walk(doc: PDFDocument, budget: Budget) -> Iterator[tuple[Any, dict[str, Any]]]:
    stack: list[tuple[Any, dict[str, Any], int]] = [(doc.catalog["Pages"], doc.catalog, 1)]
    visited: set[Any] = set()
    nodes = 0
    while stack:
        obj, parent, depth = stack.pop()
        nodes += 1
        budget.tree_nodes(nodes)
        budget.depth(depth, "the page tree")
        if isinstance(obj, int):
            objid, attrs = obj, dict_value(doc.getobj(obj)).copy()
        elif isinstance(obj, PDFObjRef):
            objid, attrs = obj.objid, dict_value(obj).copy()
        else:
            continue  # a direct object as a kid: pdfminer cannot walk it either
        if objid in visited:
            continue
        visited.add(objid)
        for key, value in parent.items():
            if key in PDFPage.INHERITABLE_ATTRS and key not in attrs:
                attrs[key] = value
        kind = attrs.get("Type", attrs.get("type"))
        if kind is _PAGES and "Kids" in attrs:
            kids = list_value(attrs["Kids"])
            budget.tree_nodes(nodes + len(stack) + len(kids))  # refuse a huge Kids list before walking it
            stack.extend((kid, attrs, depth + 1) for kid in reversed(kids))
        elif kind is _PAGE:
            yield objid, attrs
