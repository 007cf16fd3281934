"""``python -m kta ...``: the ``kta`` command (how the supervisor starts its children, and the tests the
command). A finished command ends without the interpreter's teardown — freeing every module and object costs
~0.25 CPU-s a process — once its output is flushed; an exception other than SystemExit leaves as ever."""

import logging
import os
import sys

from kta.cli import main

try:
    main()
    code = 0
except SystemExit as e:
    if e.code is None or isinstance(e.code, int):
        code = e.code or 0
    else:  # sys.exit("message"): the message on stderr, status 1
        print(e.code, file=sys.stderr)
        code = 1
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
