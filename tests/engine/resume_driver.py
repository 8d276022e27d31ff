"""`fpar` in a subprocess that SIGKILLs itself when training reaches global step
$FPAR_TEST_KILL_AT_STEP: a `kill -9` at a known point, after the checkpoints before it were saved."""

import os
import signal
import sys

import fpar.engine.module as module_code
from fpar.cli import main

KILL_AT = int(os.environ.get("FPAR_TEST_KILL_AT_STEP", "-1"))
real_training_step = module_code.FparModule.training_step


def training_step(self, batch, batch_idx):
    if self.global_step == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_training_step(self, batch, batch_idx)


module_code.FparModule.training_step = training_step
sys.exit(main(sys.argv[1:]))
