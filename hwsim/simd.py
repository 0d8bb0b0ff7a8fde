"""Explicit vector code for hwsim's kernels, and which instruction set the kernels are compiled for.

``add_block64`` and ``add_block64_rel`` sum the columns of a dense projection's active inputs into one block of
64 targets held in vector registers for all the inputs (one load and one store of the accumulator per block, not
per column), the second with stream 1's release draws made in the same registers: the 8 words of the block are
one ``<8 x i64>`` vector, their 64 bytes are compared with the 64 release bytes into a mask, and the masked
weights are added.

``mask64`` and ``expand64`` turn bytes into index lists: 64 bytes become a 64-bit mask in one compare, and the
mask becomes indices through a table of the 256 byte values' bit positions, one 8-lane store per mask byte and
no branch per set bit (measured as fast as AVX-512's compress-stores, and 3-5x faster than a loop over the set
bits, on AVX2 and AVX-512 code alike).

All are written in LLVM's generic vector IR, so Numba compiles them for the CPU it runs on: 512-bit code where
the CPU has AVX-512 (``vpmullq`` for the words' 64-bit multiplies), 256-bit halves on AVX2 (LLVM emulates the
64-bit multiply with ``vpmuludq``). The results are the same integers on every CPU: the tests run the kernels
compiled for the host and, in a fresh process, compiled for an AVX2-only CPU, against the reference executor.
"""

from __future__ import annotations

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


@intrinsic
def expand64(typingctx, m_ty, j0_ty, out_ty, cnt_ty):  # pragma: no cover - compiled
    """``expand64(m, j0, out, cnt) -> cnt + popcount(m)``: writes ``j0 + b`` for every set bit b of the uint64
    ``m``, lowest first, to ``out[cnt], out[cnt + 1], ...`` (int32). Each of m's 8 bytes stores 8 lanes (its
    bits' positions from a constant table, plus j0 + 8 k) and advances by its popcount, so up to 8 elements
    past the last index written are overwritten: ``out`` needs 8 elements of slack after its longest list."""
    sig = types.int64(types.uint64, types.int64, out_ty, types.int64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        m, j0, out, cnt = args
        o = context.make_array(signature.args[2])(context, builder, out)
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        v8 = ir.VectorType(i32, 8)
        table_ty = ir.ArrayType(v8, 256)
        table = cgutils.global_constant(builder, "quantal_hwsim_bit_positions",
                                        ir.Constant(table_ty, [ir.Constant(v8, r) for r in _BITS]))  # fmt: skip
        pop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i8, [i8]), "llvm.ctpop.i8")
        base = builder.trunc(j0, i32)  # indices below 2**31 (engine-checked sizes)
        pos = cnt
        for k in range(8):
            byte = builder.trunc(builder.lshr(m, ir.Constant(i64, 8 * k)), i8)
            lanes = builder.load(builder.gep(table, [ir.Constant(i32, 0), builder.zext(byte, i32)]), align=32)
            idx = builder.add(lanes, _splat(builder, builder.add(base, ir.Constant(i32, 8 * k)), v8))
            builder.store(idx, builder.bitcast(builder.gep(o.data, [pos]), v8.as_pointer()), align=4)
            pos = builder.add(pos, builder.zext(builder.call(pop, [byte]), i64))
        return pos

    return sig, codegen


# stream-1 constants (quantal.compile.streams): the golden-ratio increment and the SplitMix64 multipliers
_G = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _splat(builder: ir.IRBuilder, x: ir.Value, vt: ir.VectorType) -> ir.Value:
    i32 = ir.IntType(32)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(i32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(i32, vt.count),
                                                                                 [0] * vt.count))  # fmt: skip


def _mix(builder: ir.IRBuilder, z: ir.Value) -> ir.Value:
    """SplitMix64's finaliser on a vector of i64 (every multiply wraps modulo 2**64, as kernels.mix)."""
    vt = z.type
    c = lambda x: ir.Constant(vt, [x] * vt.count)  # noqa: E731
    z = builder.xor(z, builder.lshr(z, c(30)))
    z = builder.mul(z, c(_M1))
    z = builder.xor(z, builder.lshr(z, c(27)))
    z = builder.mul(z, c(_M2))
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

    def add_block(typingctx, acc_ty, w_ty, idx_ty, cnt_ty, off_ty, sz_ty, blk_ty):  # pragma: no cover - compiled
        _check_block_types(acc_ty, w_ty)
        i64t = types.int64
        sig = types.void(acc_ty, w_ty, idx_ty, i64t, i64t, i64t, i64t)

        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            acc, w, idx, cnt, off, sz, blk = args
            acca = context.make_array(signature.args[0])(context, builder, acc)
            wa = context.make_array(signature.args[1])(context, builder, w)
            ia = context.make_array(signature.args[2])(context, builder, idx)
            va, vw, align = _block_types(context, signature, n)
            dst = builder.bitcast(builder.gep(acca.data, [blk]), va.as_pointer())
            sum_p = cgutils.alloca_once_value(builder, builder.load(dst, align=align))  # promoted to registers
            base = builder.add(off, blk)
            with cgutils.for_range(builder, cnt) as loop:
                j = builder.sext(builder.load(builder.gep(ia.data, [loop.index])), ir.IntType(64))
                col = builder.bitcast(builder.gep(wa.data, [builder.add(base, builder.mul(j, sz))]), vw.as_pointer())
                c = builder.load(col, align=1)
                builder.store(builder.add(builder.load(sum_p), _to_lanes(builder, c, va)), sum_p)
            builder.store(builder.load(sum_p), dst, align=align)
            return context.get_dummy_value()

        return sig, codegen

    add_block.__name__ = f"add_block{n}"
    add_block.__doc__ = f"""``add_block{n}(acc, w, idx, cnt, off, sz, blk)``: ``acc[blk + i] += sum over a < cnt of
    w[off + idx[a] * sz + blk + i]`` for i < {n} (the weights sign-extended to the accumulator's lanes: int16 or int32
    on int8 weights, int64 on device weights; the caller guarantees that the sums fit). Reads {n} weights per
    column (the arrays carry kernels.PAD trailing elements)."""
    return intrinsic(add_block)


def _make_add_block_rel(n: int):  # noqa: ANN202
    """The intrinsic ``add_block<n>_rel`` (n lanes, a multiple of 8; blocks start at multiples of n)."""
    nw = n // 8  # words per block

    def add_block_rel(typingctx, acc_ty, w_ty, rel_ty, keys_ty, idx_ty, cnt_ty, off_ty, roff_ty, sz_ty,
                      blk_ty):  # fmt: skip  # pragma: no cover - compiled
        _check_block_types(acc_ty, w_ty)
        i64t = types.int64
        sig = types.void(acc_ty, w_ty, rel_ty, keys_ty, idx_ty, i64t, i64t, i64t, i64t, i64t)

        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            acc, w, rel, keys, idx, cnt, off, roff, sz, blk = args
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
            g_lanes = ir.Constant(vk, [(_G * m) % 2**64 for m in range(nw)])
            zero = ir.Constant(va, [0] * n)
            with cgutils.for_range(builder, cnt) as loop:
                j = builder.sext(builder.load(builder.gep(ia.data, [loop.index])), i64)
                e = builder.add(builder.mul(j, sz), blk)  # the column's element of target blk
                k = builder.add(builder.load(builder.gep(ka.data, [loop.index])), g0)
                words = _mix(builder, builder.add(_splat(builder, k, vk), g_lanes))
                draws = builder.bitcast(words, v8)  # byte i of the block = byte i % 8 of word blk / 8 + i // 8
                r = builder.load(builder.bitcast(builder.gep(ra.data, [builder.add(roff, e)]), v8.as_pointer()),
                                 align=1)  # fmt: skip
                c = builder.load(builder.bitcast(builder.gep(wa.data, [builder.add(off, e)]), vw.as_pointer()),
                                 align=1)  # fmt: skip
                c = _to_lanes(builder, c, va)
                sel = builder.select(builder.icmp_unsigned("<=", draws, r), c, zero)  # transmit iff byte <= release
                builder.store(builder.add(builder.load(sum_p), sel), sum_p)
            builder.store(builder.load(sum_p), dst, align=align)
            return context.get_dummy_value()

        return sig, codegen

    add_block_rel.__name__ = f"add_block{n}_rel"
    add_block_rel.__doc__ = f"""``add_block{n}_rel(acc, w, rel, keys, idx, cnt, off, roff, sz, blk)``: as
    ``add_block{n}``, each weight counted iff its stream-1 byte is <= its release byte: for column a (input
    j = idx[a], key k = keys[a]) and target t = blk + i, byte t % 8 of word(k, t // 8) = mix(k + G (t // 8 + 1))
    against ``rel[roff + j * sz + t]``. ``blk`` is a multiple of {n}, so the block's bytes are those of words
    blk / 8 .. blk / 8 + {nw - 1}, made as one vector ``mix(k + G (blk / 8 + 1) + G (0 .. {nw - 1}))`` and read as
    {n} bytes (little-endian: byte b of word m is ``(word >> 8 b) & 0xFF``, the specification's order)."""
    return intrinsic(add_block_rel)


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


def codegen_isa() -> str:
    """The vector instruction set Numba generates code for: ``"avx512"`` (AVX-512 F, BW and VL), ``"avx2"`` or
    ``"other"``. Numba compiles for the host unless ``NUMBA_CPU_FEATURES`` names the features; then those count."""
    from numba.core import config

    if config.CPU_FEATURES:
        feats = {f[1:] for f in str(config.CPU_FEATURES).split(",") if f.startswith("+")}
    else:
        import llvmlite.binding as ll

        feats = {k for k, v in ll.get_host_cpu_features().items() if v}
    isa = "avx512" if {"avx512f", "avx512bw", "avx512vl"} <= feats else "avx2" if "avx2" in feats else "other"
    return isa
