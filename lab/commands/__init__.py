"""One module per `lab` command, each with a plain `run()` that tests call.

Argument parsing lives in lab/cli.py, apart from the work.
"""
