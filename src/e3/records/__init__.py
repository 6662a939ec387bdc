"""Repository records as East types: one module per record kind.

Every structured file e3 writes (package objects, task objects, dataset refs,
workspace state, execution status, lock state, dataflow runs) is Beast2 of an
East type defined here, with the reference implementation's field names and
field order, so the bytes (and therefore hashes) are a stable format. Each
module pairs the East type with a frozen dataclass and ``encode``/``decode``
functions; golden tests freeze the bytes.
"""
