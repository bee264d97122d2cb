#!/usr/bin/env python3
"""Independent reference implementation of the legacy and v2 consensus hashes.

Written from DESIGN section 3.2 (legacy, in the style of the original Python code: hex strings,
sorted, pybitcoin-style Merkle tree) and from docs/consensus-hash-v2.md (v2), without looking at
the Rust code. The test command runs it against `virtualchain chash compute` on long random
chains; the two must agree line for line.

Usage:
  chash_reference.py compute --scheme legacy|v2 --first-block F [--input FILE]
  chash_reference.py generate --first-block F --blocks N --seed S
  chash_reference.py vectors      (prints crates/vc-chash/tests/vectors/v2-vectors.txt)
"""
import argparse
import hashlib
import json
import random
import sys


def sha256(b):
    return hashlib.sha256(b).digest()


def dsha256(b):
    return sha256(sha256(b))


def hash160(b):
    h = hashlib.new("ripemd160")
    h.update(sha256(b))
    return h.digest()


# ---------------------------------------------------------------- legacy (virtualchain v1)

def legacy_merkle_root_hex(hex_hashes):
    """pybitcoin MerkleTree(hex_hashes).root(): leaves are unhexlified and byte-reversed."""
    row = [bytes.fromhex(h)[::-1] for h in hex_hashes]
    while len(row) > 1:
        if len(row) % 2 == 1:
            row.append(row[-1])
        row = [dsha256(row[i] + row[i + 1]) for i in range(0, len(row), 2)]
    return row[0][::-1].hex()


def legacy_ops_hash(records):
    hashes = [dsha256(r).hex() for r in records]
    if not hashes:
        hashes.append(dsha256(b"").hex())
    hashes.sort()
    return legacy_merkle_root_hex(hashes)


def legacy_consensus_hash(ops_hash_hex, prior_hexes):
    all_hashes = sorted(prior_hexes + [ops_hash_hex])
    root = legacy_merkle_root_hex(all_hashes)
    return hash160(bytes.fromhex(root)).hex()[0:32]


def prior_heights(k, first):
    out, i = [], 1
    while k - (2 ** i - 1) >= first:
        out.append(k - (2 ** i - 1))
        i += 1
    return out


# ---------------------------------------------------------------- v2

def tagged(tag, *parts):
    return sha256(bytes([tag]) + b"".join(parts))


def u64(v):
    return v.to_bytes(8, "big")


def v2_ops_hash(records):
    def mth(leaves):
        if len(leaves) == 1:
            return leaves[0]
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        return tagged(0x01, mth(leaves[:k]), mth(leaves[k:]))

    leaves = [tagged(0x00, r) for r in records]
    root = mth(leaves) if leaves else bytes(32)
    return tagged(0x02, u64(len(records)), root)


class Mmr:
    def __init__(self):
        self.n = 0
        self.peaks = []  # list of (height, hash), largest first

    def root(self):
        if not self.peaks:
            bag = bytes(32)
        else:
            bag = self.peaks[-1][1]
            for _, p in reversed(self.peaks[:-1]):
                bag = tagged(0x04, p, bag)
        return tagged(0x05, u64(self.n), bag)

    def push(self, leaf):
        node, height = leaf, 0
        while self.peaks and self.peaks[-1][0] == height:
            _, left = self.peaks.pop()
            node = tagged(0x03, left, node)
            height += 1
        self.peaks.append((height, node))
        self.n += 1


# ---------------------------------------------------------------- chains and proofs

class Chain:
    """A whole chain kept in memory, with every MMR node, for building proofs."""

    def __init__(self, scheme, first):
        self.scheme, self.first = scheme, first
        self.blocks = []  # dicts: block_hash (internal), records, ops, priors, priors_hash, mmr_root, ch
        self.nodes = {}   # (level, index) -> hash (v2)
        self.mmr = Mmr()

    def push(self, block_hash, records):
        k = self.first + len(self.blocks)
        priors = [self.blocks[h - self.first]["ch"] for h in prior_heights(k, self.first)]
        b = {"block_hash": block_hash, "records": records, "priors": priors}
        if self.scheme == "legacy":
            b["ops"] = bytes.fromhex(legacy_ops_hash(records))
            b["ch"] = bytes.fromhex(legacy_consensus_hash(b["ops"].hex(), [p.hex() for p in priors]))
        else:
            b["ops"] = v2_ops_hash(records)
            b["priors_hash"] = tagged(0x06, *priors)
            b["mmr_root"] = self.mmr.root()
            b["ch"] = tagged(0x07, u64(k), block_hash, b["ops"], b["priors_hash"], b["mmr_root"])
            index = len(self.blocks)
            self.nodes[(0, index)] = b["ch"]
            level, node = 0, b["ch"]
            while index & 1:
                node = tagged(0x03, self.nodes[(level, index - 1)], node)
                level, index = level + 1, index >> 1
                self.nodes[(level, index)] = node
            self.mmr.push(b["ch"])
        self.blocks.append(b)

    def block(self, k):
        return self.blocks[k - self.first]

    def peaks(self, n_leaves):
        out, start = [], 0
        for level in range(63, -1, -1):
            if n_leaves >> level & 1:
                out.append((level, start >> level))
                start += 1 << level
        return out

    def prove(self, n, m):
        f = self.first
        out = b"vc" + bytes([1, 1 if self.scheme == "legacy" else 2]) + u64(f) + u64(n) + u64(m)
        target = self.block(m)
        if self.scheme == "legacy":
            walk, k = [n], n
            while k > m:
                i = 1
                while k - (2 ** (i + 1) - 1) >= m:
                    i += 1
                k -= 2 ** i - 1
                walk.append(k)
            out += bytes([len(walk) - 1])
            for k in walk[:-1]:
                b = self.block(k)
                out += b["ops"] + bytes([len(b["priors"])]) + b"".join(b["priors"])
            out += bytes([len(target["priors"])]) + b"".join(target["priors"])
        else:
            out += target["block_hash"] + target["priors_hash"] + target["mmr_root"]
        out += len(target["records"]).to_bytes(4, "big")
        for r in target["records"]:
            out += len(r).to_bytes(4, "big") + r
        if self.scheme == "v2" and m < n:
            t = self.block(n)
            out += t["block_hash"] + t["ops"] + t["priors_hash"]
            leaves, idx = n - f, m - f
            peaks = self.peaks(leaves)
            start, ordinal, height = 0, 0, 0
            for j, (level, _) in enumerate(peaks):
                if idx < start + (1 << level):
                    ordinal, height = j, level
                    break
                start += 1 << level
            siblings = [self.nodes[(l, (idx >> l) ^ 1)] for l in range(height)]
            left = [self.nodes[p] for p in peaks[:ordinal]]
            right = [self.nodes[p] for p in peaks[ordinal + 1:]]
            out += bytes([len(siblings)]) + b"".join(siblings)
            out += bytes([len(left)]) + b"".join(left)
            if right:
                bag = right[-1]
                for p in reversed(right[:-1]):
                    bag = tagged(0x04, p, bag)
                out += b"\x01" + bag
            else:
                out += b"\x00"
        return out


def vectors(out):
    w = out.write
    w("# v2 consensus-hash vectors (docs/consensus-hash-v2.md), generated by\n")
    w("# docs/reference/chash_reference.py vectors. Hashes are lowercase hex of the bytes as hashed,\n")
    w("# except block_hash, which is shown in Bitcoin's display order (reversed) as bitcoind prints it.\n")
    w("# Section A: ops hashes. records are hex, comma-separated, in block order; '-' for none\n")
    w("# (so 'records=' is one empty record).\n")
    for name, recs in [("none", []), ("empty-record", [b""]), ("one", [b"hello"]),
                       ("two", [b"abc", b"def"]), ("two-swapped", [b"def", b"abc"]),
                       ("three", [b"x", b"y", b"z"]), ("five", [b"1", b"2", b"3", b"4", b"5"])]:
        w("A %s records=%s ops_hash=%s\n" % (name, ",".join(r.hex() for r in recs) if recs else "-",
                                             v2_ops_hash(recs).hex()))
    w("# Section M: MMR roots over leaves SHA256(u64 i) for i < n.\n")
    m = Mmr()
    for n in range(0, 12):
        w("M leaves=%d root=%s\n" % (n, m.root().hex()))
        m.push(sha256(u64(n)))
    w("# Section B: a chain with F=100; block k has block_hash = SHA256(\"block-\" || decimal k) in internal\n")
    w("# order and holds the records op-k-0 .. op-k-(k%3 - 1) (ASCII).\n")
    chain = Chain("v2", 100)
    for k in range(100, 120):
        bh = sha256(b"block-%d" % k)
        chain.push(bh, [b"op-%d-%d" % (k, i) for i in range(k % 3)])
        b = chain.block(k)
        w("B height=%d block_hash=%s ops_hash=%s priors_hash=%s mmr_root=%s ch=%s\n" % (
            k, bh[::-1].hex(), b["ops"].hex(), b["priors_hash"].hex(), b["mmr_root"].hex(), b["ch"].hex()))
    w("# Section P: proofs (wire format version 1) on the section B chain, and the same for a legacy\n")
    w("# chain of the same records (scheme=legacy).\n")
    legacy = Chain("legacy", 100)
    for k in range(100, 120):
        legacy.push(b"", [b"op-%d-%d" % (k, i) for i in range(k % 3)])
    for c in (chain, legacy):
        for n, m in [(119, 119), (119, 118), (119, 101), (119, 100), (110, 103)]:
            w("P scheme=%s trusted=%d target=%d ch=%s proof=%s\n" % (
                c.scheme, n, m, c.block(n)["ch"].hex(), c.prove(n, m).hex()))


# ---------------------------------------------------------------- driver

def compute(scheme, first, lines, out):
    chs = []  # chs[k - first]
    mmr = Mmr()
    expected = first
    for line in lines:
        if not line.strip():
            continue
        block = json.loads(line)
        k = block["height"]
        if k != expected:
            raise SystemExit("height %d, expected %d" % (k, expected))
        expected += 1
        records = [bytes.fromhex(op) for op in block["ops"]]
        priors = [chs[h - first] for h in prior_heights(k, first)]
        if scheme == "legacy":
            ops = legacy_ops_hash(records)
            ch = legacy_consensus_hash(ops, priors)
        else:
            block_hash = bytes.fromhex(block["block_hash"])[::-1]  # display -> internal order
            ops_b = v2_ops_hash(records)
            priors_hash = tagged(0x06, *[bytes.fromhex(p) for p in priors])
            ch_b = tagged(0x07, u64(k), block_hash, ops_b, priors_hash, mmr.root())
            mmr.push(ch_b)
            ops, ch = ops_b.hex(), ch_b.hex()
        chs.append(ch)
        out.write("%d %s %s\n" % (k, ops, ch))


def generate(first, blocks, seed, out):
    rng = random.Random(seed)
    for k in range(first, first + blocks):
        n_ops = rng.choice([0, 0, 0, 1, 1, 2, 3, 7])
        ops = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))).hex()
               for _ in range(n_ops)]
        block_hash = bytes(rng.getrandbits(8) for _ in range(32)).hex()
        out.write(json.dumps({"height": k, "block_hash": block_hash, "ops": ops}) + "\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compute")
    c.add_argument("--scheme", choices=["legacy", "v2"], required=True)
    c.add_argument("--first-block", type=int, required=True)
    c.add_argument("--input")
    g = sub.add_parser("generate")
    g.add_argument("--first-block", type=int, required=True)
    g.add_argument("--blocks", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    sub.add_parser("vectors")
    a = p.parse_args()
    if a.cmd == "vectors":
        vectors(sys.stdout)
    elif a.cmd == "compute":
        src = open(a.input) if a.input and a.input != "-" else sys.stdin
        compute(a.scheme, a.first_block, src, sys.stdout)
    else:
        generate(a.first_block, a.blocks, a.seed, sys.stdout)


if __name__ == "__main__":
    main()
