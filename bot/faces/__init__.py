"""Face engine: image decoding and guards (images.py), detection and encodings (engine.py)."""
