"""``python -m bridge.addon`` (the add-on image's CMD).

Until the bridge installs its own handler, SIGTERM (the add-on being stopped while it still
waits for the Supervisor or the broker) ends the process with exit code 0 rather than by the
default handler, which the Supervisor logs as an add-on that does not handle SIGTERM.
"""

import signal
import sys
from types import FrameType

from bridge.addon.entry import main


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


signal.signal(signal.SIGTERM, _stop)
sys.exit(main())
