"""Four float64 values in one SIMD register, for sums in a written order.

Without reassociation LLVM cannot vectorize a sum: it may not reorder the
additions of one accumulator. These intrinsics let a kernel state the order
itself, four independent accumulators side by side in one vector (LLVM's
``<4 x double>``). Every operation is elementwise and exactly rounded
(``llvm.fma`` rounds once), so the bytes do not depend on the CPU target:
where the target has no 256-bit vectors or no FMA instruction, LLVM splits
the vector or calls the C library's ``fma``, slower and the same.

Kernel-only: the functions below exist only inside compiled code.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

__all__ = ["vzero", "vload", "vfma", "vlane"]

_VEC = ir.VectorType(ir.DoubleType(), 4)
_I32 = ir.IntType(32)


class Vec4Type(types.Type):
    """Numba type of four float64 in a vector register."""

    def __init__(self) -> None:
        super().__init__(name="Vec4")


vec4 = Vec4Type()


@register_model(Vec4Type)
class _Vec4Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


@intrinsic
def vzero(typingctx):
    """(0, 0, 0, 0)."""

    def codegen(context, builder, signature, args):
        return ir.Constant(_VEC, [0.0] * 4)

    return vec4(), codegen


@intrinsic
def vload(typingctx, a, j):
    """a[j:j + 4] of a float64 vector a (no bounds check: j + 4 <= len(a))."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float64):
        return None

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        arr = context.make_array(aty)(context, builder, args[0])
        if aty.layout == "C":
            ptr = builder.bitcast(builder.gep(arr.data, [args[1]]), _VEC.as_pointer())
            return builder.load(ptr, align=8)
        v = ir.Constant(_VEC, ir.Undefined)
        for t in range(4):
            idx = builder.add(args[1], ir.Constant(args[1].type, t))
            ptr = cgutils.get_item_pointer(context, builder, aty, arr, [idx])
            v = builder.insert_element(v, builder.load(ptr), ir.Constant(_I32, t))
        return v

    return vec4(a, types.intp), codegen


@intrinsic
def vfma(typingctx, x, y, z):
    """x * y + z per element, each rounded once."""

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v4f64"
        )
        return builder.call(fn, args)

    return vec4(vec4, vec4, vec4), codegen


@intrinsic
def vlane(typingctx, v, t):
    """Element t (a literal 0..3) of v."""
    if not isinstance(t, types.IntegerLiteral):
        return None
    lane = t.literal_value

    def codegen(context, builder, signature, args):
        return builder.extract_element(args[0], ir.Constant(_I32, lane))

    return types.float64(vec4, t), codegen
