"""Hugging Face Space entry point: the HMR Studio web app on the embedded open body (CPU).

Spaces run ``python app.py``; locally ``python app.py`` works too (same as ``python -m studio``).
Environment variables: ``PORT``/``GRADIO_SERVER_PORT`` (port), ``HMR_STUDIO_HOST`` (default
0.0.0.0 on a Space, 127.0.0.1 elsewhere), ``HMR_STUDIO_ITERATIONS`` (default SMPLify
iterations per stage offered in the UI).
"""
import os

from studio.app import launch_app
from studio.config import StudioConfig


def main() -> None:
    on_space = bool(os.environ.get("SPACE_ID"))
    port = os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT")
    config = StudioConfig(host=os.environ.get("HMR_STUDIO_HOST", "0.0.0.0" if on_space else "127.0.0.1"),
                          port=int(port) if port else None,
                          default_iterations=int(os.environ.get("HMR_STUDIO_ITERATIONS", "200")),
                          # behind the Space's proxy every request comes from the proxy's address;
                          # the proxy's X-Forwarded-For names the visitor (API fairness per visitor)
                          trust_forwarded_for=on_space)
    launch_app(config)


if __name__ == "__main__":
    main()
