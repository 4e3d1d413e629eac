"""Section logic of the book: one module per section (``mtl.studies.<section>``, opening with its
``Params`` and ``setup``), beside its page ``book/sections/<section>.md`` and its profiles
``book/sections/<section>.yaml``. Modules whose name starts with ``_`` are helpers shared by sections."""
