"""Capturing traces with nsys: command lines, preflight checks, guards, presets, the run itself, sessions.

``command`` (pure: options -> nsys argv, output-name patterns, command files), ``preflight`` (``check``),
``guards`` (debug builds, graph tracing), ``workload`` (presets and the project's workload template), ``plan``
(all of it resolved into one capture), ``run`` (baseline, nsys, validation, sidecar JSON), ``session``
(``nsys launch/start/stop``). Imports only ``trace`` below it; the CLI prints the report afterwards.
"""
