"""layerlab's terminal user interface, built on Textual."""
