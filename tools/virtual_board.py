"""Start a virtual MicroPython board (the unix port behind a pty) for mpremote.

    python tools/virtual_board.py [--root DIR] [--flash-size BYTES] [--heap 256K] [--arch N]
        [--mpy 6.1 --version 1.22.2] [--disconnect-after N [--disconnect-marker TEXT]]
        [--port-file FILE]

Prints `PORT /dev/pts/N` and runs until SIGTERM/SIGINT; then e.g.
`mpremote connect /dev/pts/N fs ls`. The bridge lives in
`host/nanonn_tools/virtualboard.py` (also used by `--port unix`).
"""

import sys

from nanonn_tools.virtualboard import main

if __name__ == "__main__":
    sys.exit(main())
