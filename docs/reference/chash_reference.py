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
  chash_reference.py selftest     (checks the pure-Python RIPEMD-160 against published vectors)
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


# RIPEMD-160 (Dobbertin, Bosselaers, Preneel), for Pythons whose OpenSSL 3 hides it in the
# legacy provider. Written from the published specification.
_RL = list(range(16)) + [7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
      3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12,
      1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
      4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13]
_RR = [5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12,
       6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
       15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13,
       8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
       12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11]
_SL = [11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8,
       7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
       11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5,
       11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
       9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6]
_SR = [8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6,
       9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
       9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5,
       15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
       8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11]
_KL = [0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E]
_KR = [0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000]
_M = 0xFFFFFFFF


def _f(j, x, y, z):
    if j < 16:
        return x ^ y ^ z
    if j < 32:
        return (x & y) | (~x & z)
    if j < 48:
        return (x | ~y) ^ z
    if j < 64:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z)


def _rol(x, n):
    x &= _M
    return ((x << n) | (x >> (32 - n))) & _M


def ripemd160_pure(data):
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + (8 * len(data)).to_bytes(8, "little")
    for off in range(0, len(msg), 64):
        x = [int.from_bytes(msg[off + 4 * i:off + 4 * i + 4], "little") for i in range(16)]
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(80):
            t = _rol(al + _f(j, bl, cl, dl) + x[_RL[j]] + _KL[j // 16], _SL[j]) + el
            al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, t & _M
            t = _rol(ar + _f(79 - j, br, cr, dr) + x[_RR[j]] + _KR[j // 16], _SR[j]) + er
            ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, t & _M
        t = (h[1] + cl + dr) & _M
        h[1] = (h[2] + dl + er) & _M
        h[2] = (h[3] + el + ar) & _M
        h[3] = (h[4] + al + br) & _M
        h[4] = (h[0] + bl + cr) & _M
        h[0] = t
    return b"".join(v.to_bytes(4, "little") for v in h)


def ripemd160(data):
    try:
        h = hashlib.new("ripemd160")
    except ValueError:
        return ripemd160_pure(data)
    h.update(data)
    return h.digest()


def hash160(b):
    return ripemd160(sha256(b))


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
    sub.add_parser("selftest")
    a = p.parse_args()
    if a.cmd == "selftest":
        # Published RIPEMD-160 test vectors (Dobbertin, Bosselaers, Preneel).
        for msg, want in [(b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
                          (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
                          (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
                          (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb")]:
            got = ripemd160_pure(msg).hex()
            if got != want:
                raise SystemExit("ripemd160(%r) = %s, expected %s" % (msg, got, want))
        print("selftest: 4 passed, 0 failed")
    elif a.cmd == "vectors":
        vectors(sys.stdout)
    elif a.cmd == "compute":
        src = open(a.input) if a.input and a.input != "-" else sys.stdin
        compute(a.scheme, a.first_block, src, sys.stdout)
    else:
        generate(a.first_block, a.blocks, a.seed, sys.stdout)


if __name__ == "__main__":
    main()
