"""net.save(path, backup=True) (filesystems without atomic rename, docs/reliability.md) on
the real filesystem of the port: generations, the backup, and load's fallback."""

import os

from check import TMPDIR, eq, ok, raises
from nanonn import Dense, ModelFormatError, Network, load
from nanonn.nnm import backup
from nanonn.nnm.write import dumps

TMP = TMPDIR + "/backup.nnm"
TEMP_FILES = (TMP, TMP + ".bak", TMP + ".tmp")  # removed by the runner after each test
NEEDS_FILESYSTEM = (
    "test_a_model_saved_without_a_backup_is_not_shadowed_by_an_old_backup",
    "test_backup_keeps_the_previous_model_and_counts_generations",
    "test_both_damaged_raises_the_primary_error",
    "test_load_falls_back_to_the_backup",
    "test_plain_save_has_the_canonical_32_byte_header",
)


def _nets():
    return [Network(Dense(3, inputs=2, activation="relu"), Dense(k + 1), seed=k) for k in range(3)]


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def test_backup_keeps_the_previous_model_and_counts_generations():
    a, b, c = _nets()
    a.save(TMP, backup=True)
    eq(backup.generation(TMP), 1, "first generation")
    ok(not _exists(TMP + ".bak"), "no backup before there was a model")
    b.save(TMP, backup=True)
    c.save(TMP, backup=True)
    eq(backup.generation(TMP), 3, "generation after three saves")
    eq(backup.generation(TMP + ".bak"), 2, "the backup's generation")
    eq(dumps(load(TMP)), dumps(c), "the newest model loads")
    eq(sorted(os.listdir(TMPDIR)), ["backup.nnm", "backup.nnm.bak"], "the files after three saves")


def test_load_falls_back_to_the_backup():
    a, b, _ = _nets()
    a.save(TMP, backup=True)
    b.save(TMP, backup=True)
    with open(TMP, "rb") as f:
        data = bytearray(f.read())
    data[40] ^= 0xFF  # the primary is damaged: the CRC no longer matches
    with open(TMP, "wb") as f:
        f.write(data)
    eq(dumps(load(TMP)), dumps(a), "damaged primary: the backup loads")
    os.remove(TMP)
    eq(dumps(load(TMP)), dumps(a), "missing primary: the backup loads")
    # the next save keeps the backup (the primary was missing) and loads as the newest
    b.save(TMP, backup=True)
    eq(dumps(load(TMP)), dumps(b), "the next save")
    eq(backup.generation(TMP), 2, "one more than the backup (the newest left)")


def test_both_damaged_raises_the_primary_error():
    a, b, _ = _nets()
    a.save(TMP, backup=True)
    b.save(TMP, backup=True)
    for path in (TMP, TMP + ".bak"):
        with open(path, "wb") as f:
            f.write(b"NNM\x1a not a model")
    raises(ModelFormatError, load, TMP, contains=("expected",))


def test_plain_save_has_the_canonical_32_byte_header():
    a = _nets()[0]
    a.save(TMP)  # backup=None: no FAT mount here
    with open(TMP, "rb") as f:
        eq(f.read(), dumps(a), "plain save is byte-identical to dumps")
    eq(os.listdir(TMPDIR), ["backup.nnm"], "the files: no backup on a filesystem with atomic rename")


def test_a_model_saved_without_a_backup_is_not_shadowed_by_an_old_backup():
    # A model saved (or copied, e.g. by `nanonn deploy`) without a generation number
    # loads as it is, even beside the backup of earlier saves with a higher generation.
    a, b, c = _nets()
    a.save(TMP, backup=True)
    b.save(TMP, backup=True)
    eq(backup.generation(TMP + ".bak"), 1, "a backup is kept")
    c.save(TMP, backup=False)
    eq(backup.generation(TMP), 0, "the plain save has no generation")
    eq(dumps(load(TMP)), dumps(c), "the plain model loads, not the backup")
