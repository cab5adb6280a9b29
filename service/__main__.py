"""``python -m service serve``: run the API with uvicorn on HOST:PORT."""

from __future__ import annotations

import argparse

import uvicorn

from service.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.add_argument("command", choices=["serve"])
    parser.parse_args()
    settings = get_settings()
    uvicorn.run("service.main:app", host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
