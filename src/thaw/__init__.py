"""thaw: a recommender that is good from the first minute, for new users and new items."""

__version__ = "0.1.0"
