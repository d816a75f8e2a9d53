"""Tasks run through invoke itself, as `invoke ...` on the command line runs them."""

from __future__ import annotations

import copy

from invoke import Program

import tasks


def run_invoke(*argv: str, exit: bool = True) -> None:
    """`invoke ARGV` in this process. On a copy of the collection: invoke pops each flag's help
    off the task while it parses (invoke/tasks.py, `arg_opts`), and the shared tasks must keep
    theirs for the tests that read them."""
    program = Program(namespace=copy.deepcopy(tasks.ns), version="test")
    program.run(["invoke", *argv], exit=exit)
