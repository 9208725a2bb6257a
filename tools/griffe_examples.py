"""A griffe extension for the docs build (mkdocs.yml): read ``Example:`` as ``Examples:``.

lakehouse's docstrings head their doctests ``Example:``; griffe's Google parser only knows the
plural as an examples section and would render the singular as an admonition of markdown, where
``>>>`` lines become block quotes. Renaming the heading at load time keeps the sources as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", flags=re.M)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
