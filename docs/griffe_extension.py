"""A Griffe extension for the API reference (``extensions:`` in mkdocs.yml): the classes the
adapters generate from the preset table are inspected, and inspection lists the class
namespace's dunder attributes (``__doc__``, ``__annotations__``, ...) as members; they are
dropped, so that a class's page shows its docstring, signature and methods."""

from __future__ import annotations

from typing import Any

import griffe


class DropDunderAttributes(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name in [n for n, m in cls.members.items() if n.startswith("__") and n.endswith("__")
                     and not m.is_alias and m.is_attribute]:
            del cls.members[name]
