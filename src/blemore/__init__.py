"""blemore: blended emotion recognition with relative salience."""
__version__ = "0.1.0"
