"""`python -m delivery.sandbox --port 8765`: run the sandbox without Django."""

import argparse

from delivery.sandbox import server

parser = argparse.ArgumentParser(
    prog="python -m delivery.sandbox",
    description="Run the service sandbox: Spotify's APIs under /spotify, the control API under /_sandbox/.",
)
server.add_arguments(parser)
server.run_with(vars(parser.parse_args()))
