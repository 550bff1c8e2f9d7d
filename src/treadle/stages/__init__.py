"""The stages, one module each. A stage reads top to bottom: check its inputs, ask the
provider, wait, and return the fields of its result."""
