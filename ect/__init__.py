"""ect: measures the energy cost of training deep-learning image classifiers."""

__version__ = "0.1.0"
