"""An example third-party thkit plugin: the `energy-zcr` encoder."""
