"""The eight strategies; ``registry`` maps their names to classes."""
