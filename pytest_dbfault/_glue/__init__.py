"""The pytest glue behind :mod:`pytest_dbfault.plugin` (internal; the logic lives in plain modules).

- :mod:`.options` registers the options table (:data:`pytest_dbfault.options.OPTIONS`) and reads it back;
- :mod:`.collection` the ``dbfault_paths``, the ``@pytest.mark.dbfault`` parametrization, scenario files;
- :mod:`.active_run` the hooks of a run with ``--dbfault`` (header, report) and pytest-xdist;
- :mod:`.chaos_run` chaos mode (``--dbfault-chaos``); :mod:`.coverage_run` coverage per fault;
- :mod:`.safety_roots` the fault path guard's session roots;
- :mod:`.stash` the stash keys and plugin names; :mod:`.pytest_internals` the only uses of pytest's
  private API.
"""
