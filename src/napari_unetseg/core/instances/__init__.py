"""From probability maps to objects and back to numbers: the seeded watershed, linking ids
through stacks, editing operations on labels, and matching metrics."""
