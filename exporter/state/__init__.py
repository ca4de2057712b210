"""What survives a restart (``--storage.path``): the snapshot, the planner's plans and the request budget,
saved to one JSON file and loaded at start.

:mod:`.records` holds the typed state the components export and restore; :mod:`.fileformat` is the
file's shape (strict pydantic models: the file is untrusted input, parsed and validated at the edge),
:mod:`.identity` whose file it is (API host, salted token hash), :mod:`.codec` turns the typed state into
the file's bytes and back; :mod:`.store` writes it atomically, :mod:`.saver` decides when and
:mod:`.metrics` exposes failed saves and the time of the state on disk. Nothing is imported here, so that
the components can import :mod:`.records` without importing the codec.
"""
