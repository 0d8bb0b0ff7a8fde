"""Explicit vector code for hwsim's kernels, and which instruction set the kernels are compiled for.

``add_block64`` and ``add_block64_rel`` sum the columns of a dense projection's active inputs into one block of
64 targets held in vector registers for all the inputs (one load and one store of the accumulator per block, not
per column), the second with stream 1's release draws made in the same registers: the 8 words of the block are
one ``<8 x i64>`` vector, their 64 bytes are compared with the 64 release bytes into a mask, and the masked
weights are added.

``mask64`` and ``expand64`` turn bytes into index lists: 64 bytes become a 64-bit mask in one compare, and the
mask becomes indices with no branch per set bit: in AVX-512 code by compressing 16 lanes of indices per 16 bits
of the mask in a register (``vpcompressd``; compress-stores straight to memory were no faster than the table),
elsewhere through a table of the 256 byte values' bit positions, one 8-lane store per mask byte (3-5x faster
than a loop over the set bits).

All are written in LLVM's generic vector IR, so Numba compiles them for the CPU it runs on: 512-bit code where
the CPU has AVX-512 (``vpmullq`` for the words' 64-bit multiplies), 256-bit halves on AVX2 (LLVM emulates the
64-bit multiply with ``vpmuludq``). The results are the same integers on every CPU: the tests run the kernels
compiled for the host and, in a fresh process, compiled for an AVX2-only CPU, against the reference executor.
"""

from __future__ import annotations

import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def mask64(typingctx, row_ty, j0_ty):  # pragma: no cover - compiled
    """``mask64(row, j0) -> uint64``: bit b is set iff ``row[j0 + b] != 0``, b < 64 (bytes: bool or uint8). Reads
    ``row[j0:j0 + 64]``, which the caller guarantees to lie in the array."""
    sig = types.uint64(row_ty, types.int64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        row, j0 = args
        a = context.make_array(signature.args[0])(context, builder, row)
        v8 = ir.VectorType(ir.IntType(8), 64)
        data = builder.load(builder.bitcast(builder.gep(a.data, [j0]), v8.as_pointer()), align=1)
        return builder.bitcast(builder.icmp_unsigned("!=", data, ir.Constant(v8, [0] * 64)), ir.IntType(64))

    return sig, codegen


# _BITS[b] lists the positions of the set bits of the byte b, lowest first, padded to 8 lanes
_BITS = [[i for i in range(8) if b >> i & 1] + [0] * (8 - bin(b).count("1")) for b in range(256)]


#: elements past the last index written that expand64 may overwrite: its callers' lists need this much slack
EXPAND_SLACK = 16


@intrinsic
def expand64(typingctx, m_ty, j0_ty, out_ty, cnt_ty):  # pragma: no cover - compiled
    """``expand64(m, j0, out, cnt) -> cnt + popcount(m)``: writes ``j0 + b`` for every set bit b of the uint64
    ``m``, lowest first, to ``out[cnt], out[cnt + 1], ...`` (int32). In AVX-512 code each 16 bits of m compress
    the 16 lanes ``j0 + 16 k + (0 .. 15)`` into their set lanes' values (``vpcompressd`` on a register, one
    16-lane store; a quarter faster than the table at 5% density); elsewhere each of m's 8 bytes stores
    8 lanes (its bits' positions from a constant table, plus j0 + 8 k). Each store advances by its popcount, so up
    to :data:`EXPAND_SLACK` elements past the last index written are overwritten: ``out`` needs that much slack
    after its longest list."""
    sig = types.int64(types.uint64, types.int64, out_ty, types.int64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        m, j0, out, cnt = args
        o = context.make_array(signature.args[2])(context, builder, out)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        base = builder.trunc(j0, i32)  # indices below 2**31 (engine-checked sizes)
        pos = cnt
        if codegen_isa() == "avx512":
            i16, v16 = ir.IntType(16), ir.VectorType(i32, 16)
            vm = ir.VectorType(ir.IntType(1), 16)
            compress = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, vm, v16]),
                                                      "llvm.experimental.vector.compress.v16i32")  # fmt: skip
            pop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i16, [i16]), "llvm.ctpop.i16")
            for k in range(4):
                bits = builder.trunc(builder.lshr(m, ir.Constant(i64, 16 * k)), i16)
                lanes = builder.add(ir.Constant(v16, list(range(16))),
                                    _splat(builder, builder.add(base, ir.Constant(i32, 16 * k)), v16))  # fmt: skip
                packed = builder.call(compress, [lanes, builder.bitcast(bits, vm), ir.Constant(v16, ir.Undefined)])
                builder.store(packed, builder.bitcast(builder.gep(o.data, [pos]), v16.as_pointer()), align=4)
                pos = builder.add(pos, builder.zext(builder.call(pop, [bits]), i64))
            return pos
        i8, v8 = ir.IntType(8), ir.VectorType(i32, 8)
        table_ty = ir.ArrayType(v8, 256)
        table = cgutils.global_constant(builder, "quantal_hwsim_bit_positions",
                                        ir.Constant(table_ty, [ir.Constant(v8, r) for r in _BITS]))  # fmt: skip
        pop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i8, [i8]), "llvm.ctpop.i8")
        for k in range(8):
            byte = builder.trunc(builder.lshr(m, ir.Constant(i64, 8 * k)), i8)
            lanes = builder.load(builder.gep(table, [ir.Constant(i32, 0), builder.zext(byte, i32)]), align=32)
            idx = builder.add(lanes, _splat(builder, builder.add(base, ir.Constant(i32, 8 * k)), v8))
            builder.store(idx, builder.bitcast(builder.gep(o.data, [pos]), v8.as_pointer()), align=4)
            pos = builder.add(pos, builder.zext(builder.call(pop, [byte]), i64))
        return pos

    return sig, codegen


@functools.cache
def _has_vpmullq() -> bool:
    """Whether the code Numba generates has AVX-512 DQ's 64-bit multiply (see :func:`codegen_isa`)."""
    return "avx512dq" in _codegen_features()


# stream-1 constants (quantal.compile.streams): the golden-ratio increment and the SplitMix64 multipliers
_G = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _splat(builder: ir.IRBuilder, x: ir.Value, vt: ir.VectorType) -> ir.Value:
    i32 = ir.IntType(32)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(i32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(i32, vt.count),
                                                                                 [0] * vt.count))  # fmt: skip


def _opaque(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """x itself, through an empty inline-assembly statement: LLVM can no longer see how x was made, so it cannot
    move arithmetic on x's parts into a loop that uses it (as it otherwise folds splat(a) + (splat(b) + c) into
    splat(a + b) + c, a scalar add and a register-to-vector move per use, instead of a broadcast from memory)."""
    i32 = ir.IntType(32)
    n, q = x.type.count, 256 // x.type.element.width  # in 256-bit pieces: one register each on AVX2 and AVX-512
    vq = ir.VectorType(x.type.element, q)

    def lanes(k: int, c0: int = 0) -> ir.Constant:
        return ir.Constant(ir.VectorType(i32, k), list(range(c0, c0 + k)))

    parts = [builder.asm(ir.FunctionType(vq, [vq]), "", "=x,0", [builder.shuffle_vector(x, x, lanes(q, p))], False)
             for p in range(0, n, q)]  # fmt: skip
    while len(parts) > 1:  # back into one vector
        parts = [builder.shuffle_vector(a, b, lanes(2 * a.type.count)) for a, b in zip(parts[::2], parts[1::2])]
    return parts[0]


def _mul_const(builder: ir.IRBuilder, z: ir.Value, m: int) -> ir.Value:
    """``z * m`` modulo 2**64 on a vector of i64, m a constant. With AVX-512 (``vpmullq``) a plain multiply.
    Without it LLVM builds each product from three 32 x 32 -> 64-bit ``vpmuludq``; here it takes one of them
    and one 32-bit ``vpmulld``: with z = zh 2**32 + zl and m = mh 2**32 + ml,
    z m = zl ml + ((zh ml + zl mh) mod 2**32) 2**32 (mod 2**64). ``vpmulld`` on z's dwords (zl, zh) against
    (mh, ml) gives both cross products (mod 2**32) in one i64 lane t = (zh ml) 2**32 + (zl mh); their sum lands in
    the high half of (t << 32) + (t & 0xFFFFFFFF00000000). Measured faster on AVX2 (fewer multiplies, the
    slowest port), the same integers."""
    vt = z.type
    c = lambda x: ir.Constant(vt, [x] * vt.count)  # noqa: E731
    if _has_vpmullq():
        return builder.mul(z, c(m))
    v32 = ir.VectorType(ir.IntType(32), 2 * vt.count)
    lo, hi = m & 0xFFFFFFFF, m >> 32
    swapped = ir.Constant(v32, [hi, lo] * vt.count)  # dword 2q against zl, 2q + 1 against zh (little-endian)
    t = builder.bitcast(builder.mul(builder.bitcast(z, v32), swapped), vt)
    cross = builder.add(builder.shl(t, c(32)), builder.and_(t, c(0xFFFFFFFF00000000)))
    lolo = builder.mul(builder.and_(z, c(0xFFFFFFFF)), c(lo))  # both factors < 2**32: one vpmuludq
    return builder.add(lolo, cross)


def _mix(builder: ir.IRBuilder, z: ir.Value) -> ir.Value:
    """SplitMix64's finaliser on a vector of i64 (every multiply wraps modulo 2**64, as kernels.mix)."""
    return _mix_b(builder, _mix_a(builder, z))


def _mix_a(builder: ir.IRBuilder, z: ir.Value) -> ir.Value:
    """The first half of :func:`_mix`: ``(z ^ z >> 30) * M1``."""
    c = lambda x: ir.Constant(z.type, [x] * z.type.count)  # noqa: E731
    return _mul_const(builder, builder.xor(z, builder.lshr(z, c(30))), _M1)


def _mix_b(builder: ir.IRBuilder, z: ir.Value) -> ir.Value:
    """The second half of :func:`_mix`: ``z ^= z >> 27; z *= M2; z ^ z >> 31``."""
    c = lambda x: ir.Constant(z.type, [x] * z.type.count)  # noqa: E731
    z = _mul_const(builder, builder.xor(z, builder.lshr(z, c(27))), _M2)
    return builder.xor(z, builder.lshr(z, c(31)))


def _block_types(context, signature, n: int):  # noqa: ANN001, ANN202
    ta = context.get_value_type(signature.args[0].dtype)  # accumulator lanes: i16, i32 or i64
    tw = context.get_value_type(signature.args[1].dtype)  # weights: i8 (i64 for device weights)
    return ir.VectorType(ta, n), ir.VectorType(tw, n), ta.width // 8


def _check_block_types(acc_ty: types.Type, w_ty: types.Type) -> None:
    # Any integer pair types: run_kernel's int16 and int32 calls are also compiled, never run, with device weights
    ok = (isinstance(acc_ty, types.Array) and isinstance(acc_ty.dtype, types.Integer) and isinstance(w_ty, types.Array)
          and isinstance(w_ty.dtype, types.Integer))  # fmt: skip
    if not ok:
        raise TypeError("add_block: integer accumulators and integer weights")


def _to_lanes(builder: ir.IRBuilder, c: ir.Value, va: ir.VectorType) -> ir.Value:
    """Weights to the accumulator's lanes: sign-extended (int8 into int16 or int32), as is (int64 into int64), or
    truncated (a combination that run_kernel compiles but never runs)."""
    wa, wb = c.type.element.width, va.element.width
    return builder.sext(c, va) if wb > wa else builder.trunc(c, va) if wb < wa else c


def _make_add_block(n: int):  # noqa: ANN202
    """The intrinsic ``add_block<n>`` (n lanes, a multiple of 8)."""

    def add_block(typingctx, acc_ty, w_ty, idx_ty, i0_ty, cnt_ty, off_ty, sz_ty, blk_ty):  # pragma: no cover
        _check_block_types(acc_ty, w_ty)
        i64t = types.int64
        sig = types.void(acc_ty, w_ty, idx_ty, i64t, i64t, i64t, i64t, i64t)

        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            acc, w, idx, i0, cnt, off, sz, blk = args
            acca = context.make_array(signature.args[0])(context, builder, acc)
            wa = context.make_array(signature.args[1])(context, builder, w)
            ia = context.make_array(signature.args[2])(context, builder, idx)
            va, vw, align = _block_types(context, signature, n)
            dst = builder.bitcast(builder.gep(acca.data, [blk]), va.as_pointer())
            sum_p = cgutils.alloca_once_value(builder, builder.load(dst, align=align))  # promoted to registers
            base = builder.add(off, blk)
            with cgutils.for_range(builder, cnt) as loop:
                j = builder.sext(builder.load(builder.gep(ia.data, [builder.add(i0, loop.index)])), ir.IntType(64))
                col = builder.bitcast(builder.gep(wa.data, [builder.add(base, builder.mul(j, sz))]), vw.as_pointer())
                c = builder.load(col, align=1)
                builder.store(builder.add(builder.load(sum_p), _to_lanes(builder, c, va)), sum_p)
            builder.store(builder.load(sum_p), dst, align=align)
            return context.get_dummy_value()

        return sig, codegen

    add_block.__name__ = f"add_block{n}"
    add_block.__doc__ = f"""``add_block{n}(acc, w, idx, i0, cnt, off, sz, blk)``: ``acc[blk + i] += sum over a < cnt
    of w[off + idx[i0 + a] * sz + blk + i]`` for i < {n} (the weights sign-extended to the accumulator's lanes:
    int16 or int32 on int8 weights, int64 on device weights; the caller guarantees that the sums fit). Reads {n}
    weights per column (the arrays carry kernels.PAD trailing elements)."""
    return intrinsic(add_block)


def _madd_bytes(va: ir.VectorType, vw: ir.VectorType, n: int) -> int:
    """Bytes per ``vpmaddubsw`` for int8 weights summed into n int16 lanes: 32 in AVX2 code; 0 (no such path) for
    other lane types, and in AVX-512 code, which keeps the sign-extension from 256-bit halves."""
    if va.element.width != 16 or vw.element.width != 8 or n % 32 or codegen_isa() != "avx2":
        return 0
    return 32


class _MaddSums:
    """n int16 sums held as even and odd targets apart, in vectors of q // 2 lanes per q targets, widened from
    int8 by ``vpmaddubsw`` (``llvm.x86.avx2.pmadd.ub.sw``: lane i = a[2i] b[2i] + a[2i + 1] b[2i + 1], a unsigned,
    b signed, each product and the sum exact in int16 here): with a = (1, 0, 1, 0, ...) lane i is b[2i], with
    a = (0, 1, 0, 1, ...) it is b[2i + 1], both sign-extended. Two such instructions per 32 weights replace the
    four sign-extensions from 128-bit halves (``vpmovsxbw``, two ``vextracti128``) of the plain widening: in AVX2
    code these run on the multiplier ports, where the shuffle ports are busy with the words' shifts. The sums
    are split into even and odd targets once per block, and merged back once."""

    def __init__(self, builder: ir.IRBuilder, x: ir.Value, q: int) -> None:
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        self.b, self.q, n = builder, q, x.type.count
        half = ir.VectorType(i16, q // 2)
        self.fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(half, [ir.VectorType(i8, q)] * 2),
                                                 "llvm.x86.avx2.pmadd.ub.sw")  # fmt: skip
        self.ones = [ir.Constant(ir.VectorType(i8, q), [1 - p, p] * (q // 2)) for p in (0, 1)]
        idx = lambda vals: ir.Constant(ir.VectorType(i32, len(vals)), list(vals))  # noqa: E731
        self.idx = idx
        self.ptrs = []
        for c0 in range(0, n, q):
            for p in (0, 1):  # even targets c0, c0 + 2, ..., then odd c0 + 1, c0 + 3, ...
                v = builder.shuffle_vector(x, x, idx(range(c0 + p, c0 + q, 2)))
                self.ptrs.append(cgutils.alloca_once_value(builder, v))

    def add(self, m: ir.Value) -> None:
        """Adds the int8 vector m (n lanes, in target order) to the sums."""
        b, q = self.b, self.q
        for c in range(m.type.count // q):
            part = b.shuffle_vector(m, m, self.idx(range(c * q, (c + 1) * q)))
            for p in (0, 1):
                ptr = self.ptrs[2 * c + p]
                b.store(b.add(b.load(ptr), b.call(self.fn, [self.ones[p], part])), ptr)

    def value(self) -> ir.Value:
        """The sums, n int16 lanes in target order."""
        b, h = self.b, self.q // 2
        parts = []
        for c in range(len(self.ptrs) // 2):
            e, o = b.load(self.ptrs[2 * c]), b.load(self.ptrs[2 * c + 1])
            parts.append(b.shuffle_vector(e, o, self.idx([i // 2 + (h if i % 2 else 0) for i in range(2 * h)])))
        while len(parts) > 1:
            parts = [b.shuffle_vector(x, y, self.idx(range(2 * x.type.count))) for x, y in zip(parts[::2], parts[1::2])]
        return parts[0]


def _make_add_block_rel(n: int):  # noqa: ANN202
    """The intrinsic ``add_block<n>_rel`` (n lanes, a multiple of 8; blocks start at multiples of n)."""
    nw = n // 8  # words per block

    def add_block_rel(typingctx, acc_ty, w_ty, rel_ty, keys_ty, idx_ty, i0_ty, cnt_ty, off_ty, roff_ty, rcol_ty,
                      sz_ty, blk_ty):  # fmt: skip  # pragma: no cover - compiled
        _check_block_types(acc_ty, w_ty)
        i64t = types.int64
        sig = types.void(acc_ty, w_ty, rel_ty, keys_ty, idx_ty, i64t, i64t, i64t, i64t, i64t, i64t, i64t)

        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            acc, w, rel, keys, idx, i0, cnt, off, roff, rcol, sz, blk = args
            acca = context.make_array(signature.args[0])(context, builder, acc)
            wa = context.make_array(signature.args[1])(context, builder, w)
            ra = context.make_array(signature.args[2])(context, builder, rel)
            ka = context.make_array(signature.args[3])(context, builder, keys)
            ia = context.make_array(signature.args[4])(context, builder, idx)
            va, vw, align = _block_types(context, signature, n)
            i8, i64 = ir.IntType(8), ir.IntType(64)
            v8, vk = ir.VectorType(i8, n), ir.VectorType(i64, nw)
            dst = builder.bitcast(builder.gep(acca.data, [blk]), va.as_pointer())
            sum_p = cgutils.alloca_once_value(builder, builder.load(dst, align=align))
            # G (blk / 8 + 1), wrapping modulo 2**64, then + G l for the block's words l = 0 .. nw - 1
            g0 = builder.mul(builder.add(builder.udiv(blk, ir.Constant(i64, 8)), ir.Constant(i64, 1)),
                             ir.Constant(i64, _G))  # fmt: skip
            # made once per block: each column then adds its key, broadcast straight from memory (a load, no
            # vector instruction), to this vector
            g_lanes = _opaque(builder, builder.add(_splat(builder, g0, vk),
                                                   ir.Constant(vk, [(_G * m) % 2**64 for m in range(nw)])))
            zero = ir.Constant(va, [0] * n)
            q = _madd_bytes(va, vw, n)
            if q:  # int8 weights into int16 sums: even and odd targets apart, widened by vpmaddubsw (_MaddSums)
                sum_p = _MaddSums(builder, builder.load(sum_p), q)
            # Software-pipelined over the columns: the iteration of column a compares column a's bytes, finishes
            # column a + 1's words (_mix_b) and starts column a + 2's (_mix_a), each from values the previous
            # iteration made. A column's words are one chain of about 20 dependent instructions; this order gives
            # the scheduler instructions whose inputs are ready rather than the head of a new chain. Columns past
            # the last (a + 1, a + 2 >= cnt) use the last key, and their words go unused.
            last = builder.sub(cnt, ir.Constant(i64, 1))

            def start(a: ir.Value) -> ir.Value:  # _mix_a of column min(a, cnt - 1)
                a = builder.select(builder.icmp_signed("<", a, last), a, last)
                k = builder.load(builder.gep(ka.data, [a]))
                return _mix_a(builder, builder.add(_splat(builder, k, vk), g_lanes))

            zero64 = ir.Constant(i64, 0)
            with builder.if_then(builder.icmp_signed(">", cnt, zero64)):
                w_p = cgutils.alloca_once_value(builder, _mix_b(builder, start(zero64)))  # column 0's words
                z_p = cgutils.alloca_once_value(builder, start(ir.Constant(i64, 1)))  # column 1's first half
                with cgutils.for_range(builder, cnt) as loop:
                    j = builder.sext(builder.load(builder.gep(ia.data, [builder.add(i0, loop.index)])), i64)
                    e = builder.add(builder.mul(j, sz), blk)  # the column's element of target blk
                    words = builder.load(w_p)
                    builder.store(_mix_b(builder, builder.load(z_p)), w_p)
                    builder.store(start(builder.add(loop.index, ir.Constant(i64, 2))), z_p)
                    draws = builder.bitcast(words, v8)  # byte i of the block = byte i % 8 of word blk / 8 + i // 8
                    er = builder.add(builder.add(roff, builder.mul(j, rcol)), blk)  # the release column's (rcol 0: one)
                    r = builder.load(builder.bitcast(builder.gep(ra.data, [er]), v8.as_pointer()), align=1)
                    c = builder.load(builder.bitcast(builder.gep(wa.data, [builder.add(off, e)]), vw.as_pointer()),
                                     align=1)  # fmt: skip
                    keep = builder.icmp_unsigned("<=", draws, r)  # transmit iff byte <= release
                    if q:
                        sum_p.add(builder.select(keep, c, ir.Constant(vw, [0] * n)))
                    else:
                        sel = builder.select(keep, _to_lanes(builder, c, va), zero)
                        builder.store(builder.add(builder.load(sum_p), sel), sum_p)
            builder.store(sum_p.value() if q else builder.load(sum_p), dst, align=align)
            return context.get_dummy_value()

        return sig, codegen

    add_block_rel.__name__ = f"add_block{n}_rel"
    add_block_rel.__doc__ = f"""``add_block{n}_rel(acc, w, rel, keys, idx, i0, cnt, off, roff, rcol, sz, blk)``:
    as ``add_block{n}``, each weight counted iff its stream-1 byte is <= its release byte: for column a (input
    j = idx[i0 + a], key k = keys[a]) and target t = blk + i, byte t % 8 of word(k, t // 8) = mix(k + G (t // 8 + 1))
    against ``rel[roff + j * rcol + t]`` (``rcol`` = sz: a release byte per synapse; 0: one column of them, the
    same for every input). ``blk`` is a multiple of {n}, so the block's bytes are those of words
    blk / 8 .. blk / 8 + {nw - 1}, made as one vector ``mix(k + G (blk / 8 + 1) + G (0 .. {nw - 1}))`` and read as
    {n} bytes (little-endian: byte b of word m is ``(word >> 8 b) & 0xFF``, the specification's order)."""
    return intrinsic(add_block_rel)


def _lane_mask(builder: ir.IRBuilder, c0: int, n: ir.Value, lanes: int) -> ir.Value:
    """``<lanes x i1>``: lane l is set iff c0 + l < n (the tail of a run of n lanes)."""
    i64 = ir.IntType(64)
    iota = ir.Constant(ir.VectorType(i64, lanes), list(range(c0, c0 + lanes)))
    return builder.icmp_signed("<", iota, _splat(builder, n, ir.VectorType(i64, lanes)))


#: the most lanes per vector of add_taps / add_taps_rel: the slack their arrays need past the last element
LANES = 16


@functools.cache
def _lanes() -> int:
    """Lanes per vector of add_taps / add_taps_rel: 16 (a 512-bit vector of int32 sums) where the code is
    generated for AVX-512, 8 (256 bits) elsewhere; read when the intrinsics compile."""
    return 16 if codegen_isa() == "avx512" else 8


def _lane_runs(builder: ir.IRBuilder, n: ir.Value, body, one: bool = False, nl: int | None = None) -> None:  # noqa: ANN001
    """Call ``body(c0, width, tail)`` for the vectors that cover lanes 0 .. n - 1: whole vectors of :func:`_lanes`
    lanes (``tail`` None), then at most one tail vector whose lanes c0 + l >= n are masked off (``tail`` the
    number of lanes left). With 16-lane vectors a tail of at most 8 lanes takes an 8-lane vector: a conv2d
    layer of 8 output channels then costs one 256-bit vector per tap, as in AVX2 code, instead of a half-masked
    512-bit one (and, with stream 1, half the words). With ``one``, n equal to one whole vector of 16 or 8 lanes
    (a conv2d group of 16 or 8 channels) takes a path of its own, without the loop and the mask. ``nl`` overrides
    the lanes per whole vector (16 int16 lanes fill a 256-bit vector in AVX2 code too)."""
    i64 = ir.IntType(64)
    nl = nl or _lanes()
    if not one:
        _lane_runs_general(builder, n, body, nl)
        return
    with builder.if_else(builder.icmp_unsigned("==", n, ir.Constant(i64, nl))) as (whole, general):
        with whole:
            body(ir.Constant(i64, 0), nl, None)
        with general:
            if nl == 8:
                _lane_runs_general(builder, n, body, nl)
            else:
                with builder.if_else(builder.icmp_unsigned("==", n, ir.Constant(i64, 8))) as (half, other):
                    with half:
                        body(ir.Constant(i64, 0), 8, None)
                    with other:
                        _lane_runs_general(builder, n, body, nl)


def _lane_runs_general(builder: ir.IRBuilder, n: ir.Value, body, nl: int) -> None:  # noqa: ANN001
    i64 = ir.IntType(64)
    full = builder.udiv(n, ir.Constant(i64, nl))
    with cgutils.for_range(builder, full) as loop:
        body(builder.mul(loop.index, ir.Constant(i64, nl)), nl, None)
    c0 = builder.mul(full, ir.Constant(i64, nl))
    rest = builder.sub(n, c0)
    if nl == 8:
        with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(i64, 0)), likely=False):
            body(c0, 8, rest)
        return
    with builder.if_then(builder.icmp_signed(">", rest, ir.Constant(i64, 0))):
        with builder.if_else(builder.icmp_signed("<=", rest, ir.Constant(i64, 8))) as (narrow, wide):
            with narrow:
                body(c0, 8, rest)
            with wide:
                body(c0, nl, rest)


def _tap_loop(builder: ir.IRBuilder, context, signature, args, first: int, body, packed: bool = False) -> None:  # noqa: ANN001
    """The loop over the taps r0 .. r1 - 1 of :func:`add_taps` and :func:`add_taps_rel`: for each vector of lanes
    (:func:`_lane_runs`, chosen once per call, not per tap; 16 lanes for sums of at most 16 bits, so that int16
    sums fill a 256-bit vector in AVX2 code too), ``body(c0, nl, tail, to, o, s)`` once per tap with
    o = t_out[r] c and s = t_tap[r] c. Unpacked (add_taps_rel), the arguments t_out, t_tap, r0, r1, c are at
    ``args[first:first + 5]``, then n, and to = t_out[r]; packed (add_taps), pk, r0, r1, then n, with o and s the
    low and high 32 bits of pk[r] (one load per tap, no products) and to None. The tap loop is the innermost one,
    so that its values stay in registers."""
    i64 = ir.IntType(64)

    def entry(p, r):  # noqa: ANN001, ANN202  # a table entry as i64 (the tables' entries are >= 0)
        x = builder.load(builder.gep(p, [r]))
        return builder.sext(x, i64) if x.type.width < 64 else x

    if packed:
        pk_a = context.make_array(signature.args[first])(context, builder, args[first]).data
        r0, r1, n = args[first + 1], args[first + 2], args[first + 3]

        def offsets(r):  # noqa: ANN001, ANN202
            x = builder.load(builder.gep(pk_a, [r]))
            return None, builder.and_(x, ir.Constant(i64, 0xFFFFFFFF)), builder.lshr(x, ir.Constant(i64, 32))
    else:
        to_a, tt_a = (context.make_array(signature.args[first + q])(context, builder, args[first + q]).data
                      for q in (0, 1))  # fmt: skip
        r0, r1, c, n = args[first + 2], args[first + 3], args[first + 4], args[first + 5]

        def offsets(r):  # noqa: ANN001, ANN202
            to = entry(to_a, r)
            return to, builder.mul(to, c), builder.mul(entry(tt_a, r), c)

    def lanes(c0, nl, tail):  # noqa: ANN001, ANN202
        with cgutils.for_range(builder, builder.sub(r1, r0)) as loop:
            body(c0, nl, tail, *offsets(builder.add(r0, loop.index)))

    narrow = context.get_value_type(signature.args[0].dtype).width <= 16
    _lane_runs(builder, n, lanes, one=True, nl=16 if narrow else None)


def _check_tables(*tys: types.Type) -> None:
    if not all(isinstance(t, types.Array) and isinstance(t.dtype, types.Integer) and t.ndim == 1 for t in tys):
        raise TypeError("add_taps: 1-d integer tap tables")


@intrinsic
def add_taps(typingctx, dst_ty, doff_ty, src_ty, soff_ty, pk_ty, r0_ty, r1_ty, n_ty):  # pragma: no cover - compiled
    """``add_taps(dst, doff, src, soff, pk, r0, r1, n)``: for each tap r0 <= r < r1, with o and s the low and high
    32 bits of the packed table entry ``pk[r] = t_out[r] c | t_tap[r] c << 32`` (an int64 per tap, c the kernel's
    output channels: one load and no product per tap), ``dst[doff + o + l] += src[soff + s + l]`` for l < n (src
    sign-extended to dst's integer type), in vectors of 8 or 16 lanes (:func:`_lanes`, :func:`_lane_runs`): a
    conv2d input's taps, each adding the kernel's n output channels to the channel-last sums of one output
    position. The last vector of a tap reads and writes up to :data:`LANES` - 1 elements past n in both arrays
    and leaves the extra elements of dst unchanged (their lanes add zero), so both need that much slack and nothing
    else may write those elements meanwhile. The whole tap loop is one piece of vector code, the choice of vector
    width made once per call."""
    _check_block_types(dst_ty, src_ty)
    _check_tables(pk_ty)
    i64t = types.int64
    sig = types.void(dst_ty, i64t, src_ty, i64t, pk_ty, i64t, i64t, i64t)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        dst, doff, src, soff = args[:4]
        da = context.make_array(signature.args[0])(context, builder, dst)
        sa = context.make_array(signature.args[2])(context, builder, src)
        ta = context.get_value_type(signature.args[0].dtype)
        tw = context.get_value_type(signature.args[2].dtype)

        def body(c0, nl, tail, to, o, s):  # noqa: ANN001, ANN202
            va, vw = ir.VectorType(ta, nl), ir.VectorType(tw, nl)
            d = builder.bitcast(builder.gep(da.data, [builder.add(builder.add(doff, o), c0)]), va.as_pointer())
            w = builder.load(builder.bitcast(builder.gep(sa.data, [builder.add(builder.add(soff, s), c0)]),
                                             vw.as_pointer()), align=1)  # fmt: skip
            add = _to_lanes(builder, w, va)
            if tail is not None:
                add = builder.select(_lane_mask(builder, 0, tail, nl), add, ir.Constant(va, [0] * nl))
            builder.store(builder.add(builder.load(d, align=1), add), d, align=1)

        _tap_loop(builder, context, signature, args, 4, body, packed=True)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def add_taps_rel(typingctx, dst_ty, doff_ty, src_ty, soff_ty, rel_ty, roff_ty, k_ty, to_ty, tt_ty, r0_ty, r1_ty, c_ty,
                 n_ty, i0_ty, stride_ty):  # fmt: skip  # pragma: no cover - compiled
    """``add_taps_rel(dst, doff, src, soff, rel, roff, k, t_out, t_tap, r0, r1, c, n, i0, stride)``: as
    :func:`add_taps`, element l of tap r counted iff the stream-1 byte of its target
    i = i0 + t_out[r] + l stride of key k is <= ``rel[roff + t_tap[r] c + l]``: byte i % 8 of
    word(k, i // 8) = mix(k + G (i // 8 + 1)), one word per lane, made in vector registers (a conv2d tap's output
    channels lie a plane apart, in different words). rel needs the same slack as src."""
    _check_block_types(dst_ty, src_ty)
    _check_tables(to_ty, tt_ty)
    i64t = types.int64
    sig = types.void(dst_ty, i64t, src_ty, i64t, rel_ty, i64t, types.uint64, to_ty, tt_ty, i64t, i64t, i64t, i64t,
                     i64t, i64t)  # fmt: skip

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        dst, doff, src, soff, rel, roff, k = args[:7]
        i0, stride = args[13], args[14]
        da = context.make_array(signature.args[0])(context, builder, dst)
        sa = context.make_array(signature.args[2])(context, builder, src)
        ra = context.make_array(signature.args[4])(context, builder, rel)
        ta = context.get_value_type(signature.args[0].dtype)
        tw = context.get_value_type(signature.args[2].dtype)
        i8, i64 = ir.IntType(8), ir.IntType(64)

        # the words last made for each vector width, and the word index of their lane 0 (-1: none yet)
        cache = {}
        for nl in (8, 16):
            wp = cgutils.alloca_once(builder, ir.VectorType(i64, nl))
            mp = cgutils.alloca_once_value(builder, ir.Constant(i64, -1))
            cache[nl] = (wp, mp)

        def body(c0, nl, tail, to, o, s, uniform):  # noqa: ANN001, ANN202
            va, vw = ir.VectorType(ta, nl), ir.VectorType(tw, nl)
            vk, v8 = ir.VectorType(i64, nl), ir.VectorType(i8, nl)
            c = lambda x: ir.Constant(vk, [x] * nl)  # noqa: E731
            # the lanes' targets i = i0 + t_out[r] + (c0 + l) stride
            first = builder.add(builder.add(i0, to), builder.mul(c0, stride))
            iota = ir.Constant(vk, list(range(nl)))

            def make_words(t):  # noqa: ANN001, ANN202
                # word(k, i // 8) = mix(k + G (i // 8 + 1)); i >= 0, so the shift is floor division; products
                # wrap. i // 8 + 1 < 2**32 (engine-checked sizes): the mask says so to LLVM, which then multiplies
                # by G with two 32-bit products instead of three on AVX2 (it changes no value)
                m = builder.and_(builder.add(builder.lshr(t, c(3)), c(1)), c(0xFFFFFFFF))
                return _mix(builder, builder.add(_splat(builder, k, vk), builder.mul(m, c(_G))))

            if uniform:
                # stride % 8 == 0: every lane's i % 8 is first % 8 and its word index first // 8 + l stride / 8,
                # so the taps of one kernel row, whose targets first are consecutive, mostly read the same words:
                # made again only when first // 8 changes (the same values, fewer made)
                wp, mp = cache[nl]
                m0 = builder.lshr(first, ir.Constant(i64, 3))
                with builder.if_then(builder.icmp_unsigned("!=", m0, builder.load(mp)), likely=False):
                    t = builder.add(_splat(builder, first, vk), builder.mul(_splat(builder, stride, vk), iota))
                    builder.store(make_words(t), wp)
                    builder.store(m0, mp)
                shift = _splat(builder, builder.shl(builder.and_(first, ir.Constant(i64, 7)), ir.Constant(i64, 3)),
                               vk)  # fmt: skip
                byte = builder.trunc(builder.lshr(builder.load(wp), shift), v8)  # byte i % 8, the same for all
            else:
                t = builder.add(_splat(builder, first, vk), builder.mul(_splat(builder, stride, vk), iota))
                byte = builder.trunc(builder.lshr(make_words(t), builder.shl(builder.and_(t, c(7)), c(3))), v8)
            so = builder.add(builder.add(soff, s), c0)
            ro = builder.add(builder.add(roff, s), c0)
            r = builder.load(builder.bitcast(builder.gep(ra.data, [ro]), v8.as_pointer()), align=1)
            w = builder.load(builder.bitcast(builder.gep(sa.data, [so]), vw.as_pointer()), align=1)
            keep = builder.icmp_unsigned("<=", byte, r)
            if tail is not None:
                keep = builder.and_(_lane_mask(builder, 0, tail, nl), keep)
            d = builder.bitcast(builder.gep(da.data, [builder.add(builder.add(doff, o), c0)]), va.as_pointer())
            add = builder.select(keep, _to_lanes(builder, w, va), ir.Constant(va, [0] * nl))
            builder.store(builder.add(builder.load(d, align=1), add), d, align=1)

        aligned = builder.icmp_unsigned("==", builder.and_(stride, ir.Constant(i64, 7)), ir.Constant(i64, 0))
        with builder.if_else(aligned) as (yes, no):
            with yes:
                _tap_loop(builder, context, signature, args, 7, lambda *a: body(*a, True))
            with no:
                _tap_loop(builder, context, signature, args, 7, lambda *a: body(*a, False))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def transpose8(typingctx, dst_ty, src_ty, c_ty, p_ty):  # pragma: no cover - compiled
    """``transpose8(dst, src, c, p)``: ``dst[k * p + i] = src[i * c + k]`` for k < c, i < p (channel-last sums to
    channel-first), c and p multiples of 8 (the caller checks), in blocks of 8 x 8 elements: 8 vector loads of 8
    channels, a transpose by 24 two-vector shuffles, 8 vector stores of 8 positions, instead of a strided scalar
    copy. The elements of src it reads are left zero (one more store per vector loaded), so that a caller that
    keeps src all zero between uses needs no clearing pass. dst and src have the same integer type."""
    if dst_ty != src_ty:
        raise TypeError("transpose8: dst and src of one type")
    i64t = types.int64
    sig = types.void(dst_ty, src_ty, i64t, i64t)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        dst, src, c, p = args
        da = context.make_array(signature.args[0])(context, builder, dst)
        sa = context.make_array(signature.args[1])(context, builder, src)
        vt = ir.VectorType(context.get_value_type(signature.args[0].dtype), 8)
        i64 = ir.IntType(64)
        eight = ir.Constant(i64, 8)

        def shuf(a, b, mask):  # noqa: ANN001, ANN202
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

        with cgutils.for_range(builder, builder.udiv(c, eight)) as cl:
            c0 = builder.mul(cl.index, eight)
            with cgutils.for_range(builder, builder.udiv(p, eight)) as pl:
                p0 = builder.mul(pl.index, eight)
                # r[k]: channels c0 .. c0 + 7 of position p0 + k
                rp = [builder.bitcast(builder.gep(sa.data, [builder.add(builder.mul(
                    builder.add(p0, ir.Constant(i64, k)), c), c0)]), vt.as_pointer()) for k in range(8)]
                r = [builder.load(q, align=1) for q in rp]
                for q in rp:
                    builder.store(ir.Constant(vt, [0] * 8), q, align=1)
                # rows 2j, 2j + 1 interleaved: a0 b0 a1 b1 a2 b2 a3 b3 and a4 b4 .. a7 b7
                l1 = [(shuf(r[2 * j], r[2 * j + 1], [0, 8, 1, 9, 2, 10, 3, 11]),
                       shuf(r[2 * j], r[2 * j + 1], [4, 12, 5, 13, 6, 14, 7, 15])) for j in range(4)]
                # rows 4g .. 4g + 3 of channels (4h, 4h + 1) and (4h + 2, 4h + 3)
                l2 = [[(shuf(l1[2 * g][h], l1[2 * g + 1][h], [0, 1, 8, 9, 2, 3, 10, 11]),
                        shuf(l1[2 * g][h], l1[2 * g + 1][h], [4, 5, 12, 13, 6, 7, 14, 15])) for h in range(2)]
                      for g in range(2)]  # fmt: skip
                for h in range(2):
                    for e in range(2):
                        m = 4 * h + 2 * e
                        x, y = l2[0][h][e], l2[1][h][e]  # rows 0-3 and 4-7 of channels m, m + 1
                        for q, mask in ((0, [0, 1, 2, 3, 8, 9, 10, 11]), (1, [4, 5, 6, 7, 12, 13, 14, 15])):
                            at = builder.add(builder.mul(builder.add(c0, ir.Constant(i64, m + q)), p), p0)
                            builder.store(shuf(x, y, mask), builder.bitcast(builder.gep(da.data, [at]),
                                                                             vt.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


def _rz_scale(builder: ir.IRBuilder, x: ir.Value, f: ir.Value) -> ir.Value:
    """rz(x * f / 4096) on int32 lanes with |x| < 2**23 and 0 <= f <= 4096, exact without a 64-bit product (as
    the reference): |x| f / 4096 = (|x| >> 12) f + (|x| & 4095) f / 4096, whose integer part is the first term
    plus the second's floor (>> 12: both factors are >= 0); the sign is restored after (round toward zero)."""
    vt = x.type
    c = lambda k: ir.Constant(vt, [k] * vt.count)  # noqa: E731
    neg = builder.icmp_signed("<", x, c(0))
    ax = builder.select(neg, builder.sub(c(0), x), x)  # |x| < 2**23: no overflow
    t = builder.add(builder.mul(builder.ashr(ax, c(12)), f), builder.ashr(builder.mul(builder.and_(ax, c(4095)), f),
                                                                         c(12)))  # fmt: skip
    return builder.select(neg, builder.sub(c(0), t), t)


def _make_lif_lanes(subtract: bool, spiking: bool, escape: bool = False, leak: bool = True):  # noqa: ANN202
    """The intrinsic that updates a layer's neurons in int32 lanes (see :data:`lif_sub_lanes`); without ``leak``
    for a layer of integrate-and-fire neurons (see :data:`lif_sub_if_lanes`)."""

    def typed(a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty, s_ty, esc_ty):  # noqa: ANN001, ANN202  # pragma: no cover
        for ty in (a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty):
            if not (isinstance(ty, types.Array) and ty.dtype == types.int32 and ty.ndim == 1):
                raise TypeError("lif lanes: 1-d int32 arrays")
        if not (isinstance(s_ty, types.Array) and s_ty.dtype in (types.uint8, types.boolean)):
            raise TypeError("lif lanes: a uint8 or bool spike buffer")
        if escape and not (len(esc_ty) == 3 and esc_ty[0].dtype == types.int64 and esc_ty[2].dtype == types.uint16):
            raise TypeError("lif lanes with escape noise: an int64 table, its offset and uint16 lanes")
        i64t = types.int64
        sig = types.void(a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty, s_ty, i64t, i64t,
                         *((esc_ty[0], i64t, esc_ty[2]) if escape else ()))  # fmt: skip

        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            arrs = [context.make_array(signature.args[q])(context, builder, args[q]).data for q in range(8)]
            a, u, v, dc, dv, th, bias, sbuf = arrs
            base = args[8]
            if escape:
                theta = builder.gep(context.make_array(signature.args[10])(context, builder, args[10]).data,
                                    [args[11]])  # fmt: skip
                wl = context.make_array(signature.args[12])(context, builder, args[12]).data

            def lanes(c0, nl, tail):  # noqa: ANN001, ANN202
                vt = ir.VectorType(ir.IntType(32), nl)
                c = lambda k: ir.Constant(vt, [k] * nl)  # noqa: E731

                def at(p, off):  # noqa: ANN001, ANN202
                    return builder.bitcast(builder.gep(p, [off]), vt.as_pointer())

                k0 = builder.add(base, c0)  # neuron base + c0: state and parameters; a and sbuf are the layer's own
                uk, vk = builder.load(at(u, k0), align=4), builder.load(at(v, k0), align=4)
                # d = rz(u * (4096 - cd)) + (a << 6), wrapped once into (-2**23, 2**23] (kernels._wrap24); an IF
                # layer's cd = 4096 makes the first term rz(u * 0) = 0
                d = builder.shl(builder.load(at(a, c0), align=4), c(6))
                if leak:
                    d = builder.add(_rz_scale(builder, uk, builder.load(at(dc, k0), align=4)), d)
                d = builder.select(builder.icmp_signed(">", d, c(8388608)), builder.sub(d, c(16777216)), d)
                d = builder.select(builder.icmp_signed("<=", d, c(-8388608)), builder.add(d, c(16777216)), d)
                # v = clip(rz(v * (4096 - vd)) + u + bias, -(2**23 - 1), 2**23 - 1); an IF layer's vd = 0 makes
                # rz(v * 4096 / 4096) = v (|v| < 2**23: exact)
                vl = _rz_scale(builder, vk, builder.load(at(dv, k0), align=4)) if leak else vk
                x = builder.add(builder.add(vl, d), builder.load(at(bias, k0), align=4))
                x = builder.select(builder.icmp_signed("<", x, c(-8388607)), c(-8388607), x)
                x = builder.select(builder.icmp_signed(">", x, c(8388607)), c(8388607), x)
                if spiking:
                    thk = builder.load(at(th, k0), align=4)
                    if escape:  # v > (threshold << 6) + theta[U_i], in 64 bits (theta below 2**36)
                        v64 = ir.VectorType(ir.IntType(64), nl)
                        add = ir.Constant(v64, ir.Undefined)
                        for q in range(nl):  # theta[U_i] per lane, U_i the neuron's 16-bit stream-2 lane
                            ui = builder.zext(builder.load(builder.gep(wl, [builder.add(c0, ir.Constant(
                                ir.IntType(64), q))])), ir.IntType(64))
                            add = builder.insert_element(add, builder.load(builder.gep(theta, [ui])),
                                                         ir.Constant(ir.IntType(32), q))  # fmt: skip
                        fire = builder.icmp_signed(">", builder.sext(x, v64), builder.add(builder.sext(thk, v64), add))
                    else:
                        fire = builder.icmp_signed(">", x, thk)  # v > threshold << 6
                    x = builder.select(fire, builder.sub(x, thk) if subtract else c(0), x)
                else:
                    fire = ir.Constant(ir.VectorType(ir.IntType(1), nl), [0] * nl)
                if tail is not None:  # lanes past the layer keep the next layer's u and v
                    keep = _lane_mask(builder, 0, tail, nl)
                    d, x = builder.select(keep, d, uk), builder.select(keep, x, vk)
                builder.store(d, at(u, k0), align=4)
                builder.store(x, at(v, k0), align=4)
                v8 = ir.VectorType(ir.IntType(8), nl)
                builder.store(builder.zext(fire, v8), builder.bitcast(builder.gep(sbuf, [c0]), v8.as_pointer()),
                              align=1)  # fmt: skip

            _lane_runs(builder, args[9], lanes)
            return context.get_dummy_value()

        return sig, codegen

    if escape:

        def lif_lanes_escape(typingctx, a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty, s_ty, base_ty, sz_ty, tab_ty,
                             t0_ty, wl_ty):  # noqa: ANN001, ANN202  # pragma: no cover
            return typed(a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty, s_ty, (tab_ty, t0_ty, wl_ty))

        return intrinsic(lif_lanes_escape)

    def lif_lanes(typingctx, a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty, s_ty, base_ty, sz_ty):  # noqa: ANN001, ANN202  # pragma: no cover
        return typed(a_ty, u_ty, v_ty, dc_ty, dv_ty, th_ty, b_ty, s_ty, ())

    return intrinsic(lif_lanes)


#: ``lif_sub_lanes(a, u, v, dc, dv, th, bias, sbuf, base, sz)``: the int32 update of the neurons base .. base + sz - 1
#: of a layer that cannot wrap 32 bits (the reference's arithmetic, bit for bit), its input a[0 .. sz - 1] and
#: its spikes into sbuf[0 .. sz - 1], in vectors of 8 or 16 lanes (:func:`_lanes`) with a masked last one. u, v and
#: the parameters are read (not written) up to :data:`LANES` - 1 elements past the layer, a and sbuf up to
#: ``roundup(sz, LANES)``: those arrays need that slack. No per-call checks for overlapping arrays and no scalar
#: remainder, which cost the compiled loop a quarter of its time on a 20-neuron layer. ``lif_zero_lanes`` resets
#: to zero, ``readout_lanes`` never spikes.
lif_sub_lanes = _make_lif_lanes(subtract=True, spiking=True)
lif_zero_lanes = _make_lif_lanes(subtract=False, spiking=True)
readout_lanes = _make_lif_lanes(subtract=False, spiking=False)
#: ``lif_sub_escape_lanes(a, u, v, dc, dv, th, bias, sbuf, base, sz, theta, t0, wl)``: the same with escape noise:
#: neuron i spikes iff v > (threshold << 6) + theta[t0 + U_i], U_i = wl[i] its 16-bit stream-2 lane (any of the
#: table's 2**16 entries, so the lanes past the layer read valid ones); wl needs :data:`LANES` lanes of slack.
lif_sub_escape_lanes = _make_lif_lanes(subtract=True, spiking=True, escape=True)
lif_zero_escape_lanes = _make_lif_lanes(subtract=False, spiking=True, escape=True)
#: ``lif_sub_if_lanes(a, u, v, dc, dv, th, bias, sbuf, base, sz)``: :data:`lif_sub_lanes` for a layer of
#: integrate-and-fire neurons, every one with current decay 4096 (u = a << 6, wrapped) and voltage decay 0 (v keeps
#: all of itself): the same values without the two decay products (dc and dv are not read). ``lif_zero_if_lanes``
#: and ``readout_if_lanes`` likewise.
lif_sub_if_lanes = _make_lif_lanes(subtract=True, spiking=True, leak=False)
lif_zero_if_lanes = _make_lif_lanes(subtract=False, spiking=True, leak=False)
readout_if_lanes = _make_lif_lanes(subtract=False, spiking=False, leak=False)

#: 64 targets per block; 32 for layers of at most 32 targets (half the work of a 64-lane block for readouts)
add_block64 = _make_add_block(64)
add_block32 = _make_add_block(32)
add_block64_rel = _make_add_block_rel(64)
add_block32_rel = _make_add_block_rel(32)


@intrinsic
def prefetch(typingctx, arr_ty, i_ty):  # pragma: no cover - compiled
    """``prefetch(arr, i)``: ask the CPU to bring the cache line of ``arr[i]`` (a 1-d array) into its caches
    (``llvm.prefetch``: a hint that never faults and changes no value; the kernels use it for the next sample's
    input while the current one runs)."""
    sig = types.void(arr_ty, types.int64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        arr, i = args
        a = context.make_array(signature.args[0])(context, builder, arr)
        i8, i32 = ir.IntType(8), ir.IntType(32)
        ptr = builder.bitcast(builder.gep(a.data, [i]), i8.as_pointer())
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i32, i32, i32]), "llvm.prefetch.p0i8")
        # read (0), high temporal locality (3), data cache (1)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: Numba's ``NUMBA_CPU_FEATURES`` for an AVX2-only x86-64 CPU (Haswell to Zen 3), with ``NUMBA_CPU_NAME=haswell``:
#: the code such machines run, generated on any x86-64 host (the tests and benchmarks/run.py use it)
AVX2_FEATURES = "+avx2,+avx,+fma,+bmi,+bmi2,+popcnt,+sse4.2,+sse4.1,+ssse3,+sse3,+f16c,+lzcnt,+movbe"


def _codegen_features() -> set[str]:
    """The CPU features Numba generates code for: the host's, unless ``NUMBA_CPU_FEATURES`` names them."""
    from numba.core import config

    if config.CPU_FEATURES:
        return {f[1:] for f in str(config.CPU_FEATURES).split(",") if f.startswith("+")}
    import llvmlite.binding as ll

    return {k for k, v in ll.get_host_cpu_features().items() if v}


def codegen_isa() -> str:
    """The vector instruction set Numba generates code for: ``"avx512"`` (AVX-512 F, BW and VL), ``"avx2"`` or
    ``"other"``. Numba compiles for the host unless ``NUMBA_CPU_FEATURES`` names the features; then those count."""
    feats = _codegen_features()
    isa = "avx512" if {"avx512f", "avx512bw", "avx512vl"} <= feats else "avx2" if "avx2" in feats else "other"
    return isa
