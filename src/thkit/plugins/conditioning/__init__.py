"""Built-in components, registered through thkit's pyproject.toml like any plugin."""
