"""The turn package: everything that moves a turn from queued to its end.

`services.py` holds what other apps call (turn_start, turn_resume, turn_cancel, turn_wait);
`state.py` is the only code that writes `Turn.status`. See docs/architecture.md for the state
diagram and the modules.
"""
