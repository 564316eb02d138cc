"""The daemon's terminal: the ollie> prompt, the approval prompt, and the ask view."""
