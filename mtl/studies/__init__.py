"""Section logic of the book: one module per section (``mtl.studies.<section>``)."""
