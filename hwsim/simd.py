"""Explicit vector code for hwsim's kernels, and which instruction set the kernels are compiled for.

``compress64`` writes the indices of the nonzero bytes of a 64-byte block in one masked compress-store (LLVM's
``llvm.masked.compressstore``), which AVX-512 executes as a few ``vpcompressd`` instructions, independent of how
many bytes are set. Without AVX-512 LLVM lowers the same intrinsic to scalar code with a branch per lane, slower
than the portable loop in ``kernels.compact``; the engine therefore passes ``simd_compress`` to the kernels only
when the code is generated for AVX-512 (``codegen_isa``). The results are identical on either path (the tests
run both, and an AVX2-only code generation, against the reference executor).
"""

from __future__ import annotations

import os

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def compress64(typingctx, row_ty, j0_ty, nb_ty, out_ty, cnt_ty):  # pragma: no cover - compiled
    """``compress64(row, j0, nb, out, cnt) -> cnt + k``: for b = 0 .. nb - 1 in order, every ``j0 + b`` with
    ``row[j0 + b] != 0`` is written to ``out[cnt], out[cnt + 1], ...`` (int32); k is their number. ``row`` holds
    bytes (bool or uint8); only ``row[j0:j0 + nb]`` is read (a masked load, so a block at the end of an array is
    safe) and only ``out[cnt:cnt + k]`` is written. ``nb <= 64`` is the caller's to guarantee."""
    sig = types.int64(row_ty, types.int64, types.int64, out_ty, types.int64)

    def codegen(context, builder, signature, args):
        row, j0, nb, out, cnt = args
        rowa = context.make_array(signature.args[0])(context, builder, row)
        outa = context.make_array(signature.args[3])(context, builder, out)
        i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
        v8, v32, vm = ir.VectorType(i8, 64), ir.VectorType(i32, 64), ir.VectorType(i1, 64)
        lanes = ir.Constant(v32, list(range(64)))

        def splat(x: ir.Value) -> ir.Value:
            v = builder.insert_element(ir.Constant(v32, ir.Undefined), x, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, ir.Constant(v32, ir.Undefined), ir.Constant(v32, [0] * 64))

        # lanes b < nb are read; the others load as 0 and never count
        valid = builder.icmp_unsigned("<", lanes, splat(builder.trunc(nb, i32)))
        src = builder.bitcast(builder.gep(rowa.data, [j0]), v8.as_pointer())
        load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v8, [v8.as_pointer(), i32, vm, v8]), "llvm.masked.load.v64i8.p0v64i8")
        data = builder.call(load, [src, ir.Constant(i32, 1), valid, ir.Constant(v8, [0] * 64)])
        mask = builder.icmp_unsigned("!=", data, ir.Constant(v8, [0] * 64))
        vals = builder.add(splat(builder.trunc(j0, i32)), lanes)  # j0 + b (indices below 2**31: engine-checked)
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [v32, i32.as_pointer(), vm]),
            "llvm.masked.compressstore.v64i32")
        builder.call(store, [vals, builder.gep(outa.data, [cnt]), mask])
        pop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64]), "llvm.ctpop.i64")
        return builder.add(cnt, builder.call(pop, [builder.bitcast(mask, i64)]))

    return sig, codegen


def codegen_isa() -> str:
    """The vector instruction set Numba generates code for: ``"avx512"`` (AVX-512 F, BW and VL), ``"avx2"`` or
    ``"other"``. Numba compiles for the host unless ``NUMBA_CPU_FEATURES`` names the features; then those count.
    ``QUANTAL_HWSIM_ISA=avx2`` makes the kernels take the portable path on an AVX-512 machine too (for tests and
    benchmarks; the results are the same)."""
    forced = os.environ.get("QUANTAL_HWSIM_ISA", "").strip().lower()
    from numba.core import config

    if config.CPU_FEATURES:
        feats = {f[1:] for f in str(config.CPU_FEATURES).split(",") if f.startswith("+")}
    else:
        import llvmlite.binding as ll

        feats = {k for k, v in ll.get_host_cpu_features().items() if v}
    isa = "avx512" if {"avx512f", "avx512bw", "avx512vl"} <= feats else "avx2" if "avx2" in feats else "other"
    return "avx2" if forced == "avx2" and isa == "avx512" else isa
