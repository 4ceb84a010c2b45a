"""PaPy core: Worker, Piper, Dagger, Plumber."""
