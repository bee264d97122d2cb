#!/usr/bin/env python3
"""Independent reference for docs/migration.md: the three operation bodies, the binding
commitment, and the two migration records, written from the page alone (not from vc-chash).

    python3 docs/reference/migration_reference.py > crates/vc-chash/tests/vectors/migration-vectors.txt
"""
import hashlib
import struct


def u64(v):
    return struct.pack(">Q", v)


def commitment(h_a, ch_a, magic, genesis, anchor, salt):
    return hashlib.sha256(b"\x0d" + u64(h_a) + ch_a + magic + genesis + anchor + salt).digest()


def announce_body(h_a, magic, genesis, anchor):
    return b"\x01" + u64(h_a) + magic + genesis + anchor


def boundary(h_a, ch_a, magic, genesis, anchor, c, commit_txid, r, salt):
    return (b"\x00\x02" + u64(h_a) + ch_a + magic + genesis + anchor + u64(c) + commit_txid
            + u64(r) + salt)


def main():
    print("# Migration vectors (docs/migration.md), from docs/reference/migration_reference.py.")
    print("# One line per case: inputs, then every derived byte string in hex.")
    cases = [
        (250, bytes([1]) * 32, bytes.fromhex("fabfb5da"), bytes([6]) * 32, bytes([7]) * 32,
         bytes([9]) * 32, 300, bytes([4]) * 32, 302),
        (0, bytes(32), bytes.fromhex("f9beb4d9"), bytes(range(32)), bytes(range(32, 64)),
         bytes(range(64, 96)), 1, bytes(range(96, 128)), 2),
        (2 ** 64 - 2, hashlib.sha256(b"ch").digest(), bytes.fromhex("0b110907"),
         hashlib.sha256(b"genesis").digest(), hashlib.sha256(b"anchor").digest(),
         hashlib.sha256(b"salt").digest(), 123456, hashlib.sha256(b"txid").digest(), 123460),
    ]
    for h_a, ch_a, magic, genesis, anchor, salt, c, txid, r in cases:
        com = commitment(h_a, ch_a, magic, genesis, anchor, salt)
        ann = announce_body(h_a, magic, genesis, anchor)
        fields = [
            ("h_a", str(h_a)), ("ch_a", ch_a.hex()), ("magic", magic.hex()),
            ("genesis", genesis.hex()), ("anchor", anchor.hex()), ("salt", salt.hex()),
            ("commit_height", str(c)), ("commit_txid", txid.hex()), ("reveal_height", str(r)),
            ("commitment", com.hex()), ("announce", ann.hex()),
            ("commit", (b"\x01" + com).hex()), ("reveal", (b"\x01" + ch_a + salt).hex()),
            ("announce_record", (b"\x00\x01" + ann).hex()),
            ("boundary_record", boundary(h_a, ch_a, magic, genesis, anchor, c, txid, r, salt).hex()),
        ]
        print(" ".join(f"{k}={v}" for k, v in fields))


if __name__ == "__main__":
    main()
