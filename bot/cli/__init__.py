"""`python -m bot ...`: the command-line adapter (main.py), what every command shares (common.py), and the
command line under second-person controls (controls.py)."""
