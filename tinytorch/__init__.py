"""TinyTorch: the finished foundation the optimization katas (modules 15-20) build on."""
