"""The help format of qkv's commands."""

from __future__ import annotations

import argparse

__all__ = ["DefaultsFormatter", "describe"]


def describe(docstring: str | None) -> str:
    """A module docstring as a command's ``--help`` description: reST's ``double backticks``
    dropped."""
    return (docstring or "").replace("``", "")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default after its help, unless there is none to show (``None``,
    ``False``) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if action.default in (None, False) or "default" in help:
            return help
        return super()._get_help_string(action)
