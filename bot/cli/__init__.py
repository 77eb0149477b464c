"""`python -m bot ...`: the command-line adapter: the parser (main.py), one module per command group (search.py,
gallery.py, audit.py), what every command shares (common.py), and the command line under second-person controls
(controls.py: the queue, the approval, `status` and `cancel`)."""
