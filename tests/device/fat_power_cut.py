"""Power cuts during `net.save` on a real FAT filesystem (MicroPython's VfsFat: the FatFs
C code of the boards) on a RAM block device, under the unix port.

    micropython tests/device/fat_power_cut.py

For every k, the block device stops persisting after k block writes (the write in
progress raises, as a failing flash would; with `torn`, a multi-block write keeps its
first half), then a fresh VfsFat is mounted on the persisted blocks and the model is
loaded: it must be the old or the new model, byte for byte. The save uses the default
`backup=None`, which must detect the FAT mount. A control run with `backup=False`
counts the cuts that leave no model. Prints one JSON line.
"""

import json

import vfs

from nanonn import Dense, Network, load
from nanonn.float32.activations import LeakyReLU
from nanonn.nnm import backup
from nanonn.nnm.write import dumps

MOUNT = "/fatcut"
PATH = MOUNT + "/model.nnm"
BS = 512


class Flash:
    def __init__(self, data, budget=None, torn=False):
        self.data = bytearray(data)
        self.budget = budget
        self.torn = torn
        self.writes = 0

    def readblocks(self, n, buf):
        buf[:] = self.data[n * BS : n * BS + len(buf)]

    def writeblocks(self, n, buf):
        self.writes += 1
        if self.budget is not None and self.writes > self.budget:
            if self.torn and self.writes == self.budget + 1 and len(buf) > BS:
                half = (len(buf) // BS // 2) * BS
                self.data[n * BS : n * BS + half] = buf[0:half]
            raise OSError(5)  # EIO: the power is gone
        self.data[n * BS : n * BS + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // BS
        if op == 5:
            return BS
        return 0


def mounted(flash):
    vfs.mount(vfs.VfsFat(flash), MOUNT)


def unmount():
    try:
        vfs.umount(MOUNT)
    except OSError:
        pass


def main():
    old = Network(Dense(5, inputs=4, activation="tanh"), Dense(3, activation="softmax"), seed=1)
    new = Network(
        Dense(60, inputs=40, activation="relu"), Dense(20, activation=LeakyReLU(0.1)), Dense(4), seed=2
    )
    result = {"failures": [], "cases": {}}
    for first, second, name in ((old, new, "small-to-big"), (new, old, "big-to-small")):
        want = {"old": dumps(first), "new": dumps(second)}
        flash = Flash(bytes(256 * BS))
        # The stubs type block_dev as their AbstractBlockDev class; vfs takes any object with
        # readblocks/writeblocks/ioctl (MicroPython has no such class to subclass).
        vfs.VfsFat.mkfs(flash)  # pyright: ignore[reportArgumentType]
        mounted(flash)
        first.save(PATH)
        unmount()
        base = bytes(flash.data)
        dry = Flash(base)
        mounted(dry)
        second.save(PATH)
        result["backup_detected_" + name] = backup.generation(PATH) > 0
        unmount()
        total = dry.writes
        for torn in (False, True):
            seen = {"old": 0, "new": 0}
            for k in range(total + 1):
                flash = Flash(base, k, torn)
                mounted(flash)
                try:
                    second.save(PATH)
                except OSError:
                    pass
                unmount()
                mounted(Flash(flash.data))
                try:
                    got = dumps(load(PATH))
                    which = "new" if got == want["new"] else "old" if got == want["old"] else None
                    if which is None:
                        result["failures"].append([name, torn, k, "a model that is neither old nor new"])
                    else:
                        seen[which] += 1
                except Exception as exc:  # any error is the failure reported
                    result["failures"].append([name, torn, k, "%s: %s" % (type(exc).__name__, exc)])
                unmount()
            result["cases"]["%s%s" % (name, " torn" if torn else "")] = [total + 1, seen]
        # The control: without the backup, FAT's rename (delete the target, then rename)
        # leaves cuts with no model at all.
        lost = 0
        for k in range(total + 1):
            flash = Flash(base, k)
            mounted(flash)
            try:
                second.save(PATH, backup=False)
            except OSError:
                pass
            unmount()
            mounted(Flash(flash.data))
            try:
                load(PATH)
            except OSError:
                lost += 1
            unmount()
        result["control_lost_" + name] = lost
    print(json.dumps(result))


main()
