"""nbrisk."""
