"""What an H100 would execute in our kernels' inner loops, seen from a machine without a GPU (bench
layer): the launchers compile for sm_90 as in bench/gpu_ir_probe.py, nvdisasm (shipped with Triton)
turns each cubin into SASS, and every loop body is counted: its instructions, how many of them
multiply (FFMA, or tensor-core MMA), shared-memory loads, and calls (a 64-bit integer division
compiles to a call of about 90 instructions). Counts are static, one pass of each loop body (a
nested loop's instructions count in its outer loop's too).
Usage: python -m bench.gpu_sass_loops   (TRITON_INTERPRET must be unset)
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

_LABEL = re.compile(r"^(\.L_x_\d+):")
_BRANCH_TARGET = re.compile(r"\bBRA\b.*?`?\(?(\.L_x_\d+)")
# An instruction line: /*address*/, an optional predicate (@P0, @!UP1), the opcode.
_INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]+\*/\s+(@!?U?P[T\d]+\s+)?([A-Z][A-Z0-9_.]*)")


def loop_bodies(sass):
    """Each loop of a SASS listing (`nvdisasm -c`) as the opcodes from its head label to the
    branch that jumps back to it, in the order the branches appear. Not loops: a branch back over
    an unconditional EXIT or RET (out-of-line code placed after the kernel's end returning into
    it), and the branch to itself that ends every listing."""
    lines = sass.splitlines()
    heads = {}
    bodies = []
    for number, line in enumerate(lines):
        label = _LABEL.match(line)
        if label:
            heads[label.group(1)] = number
        branch = _BRANCH_TARGET.search(line)
        if branch and branch.group(1) in heads:
            body = [m.groups() for m in map(_INSTRUCTION.match,
                                             lines[heads[branch.group(1)]:number + 1]) if m]
            leaves = any(not predicate and opcode.startswith(("EXIT", "RET"))
                         for predicate, opcode in body)
            if len(body) > 1 and not leaves:
                bodies.append([opcode for _, opcode in body])
    return bodies


def loop_mix(opcodes):
    """Counts that say where a loop's issue slots go."""
    ops = collections.Counter(opcodes)

    def count(*prefixes):
        return sum(n for op, n in ops.items() if op.startswith(prefixes))

    return {"instructions": sum(ops.values()), "ffma": count("FFMA"),
            "mma": count("HMMA", "HGMMA"), "shared_loads": count("LDS"),
            "calls": count("CALL"), "spill_loads": count("LDL")}


def disassemble(cubin):
    """SASS text of a cubin, by the nvdisasm Triton uses (its own copy, unless
    TRITON_NVDISASM_PATH names another)."""
    import triton

    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        return subprocess.run([triton.knobs.nvidia.nvdisasm.path, "-c", handle.name],
                              capture_output=True, text=True, check=True).stdout


def compiled_loops(probe, *args):
    """[(kernel name, meta-parameters, [loop_mix of each loop])] of every autotune configuration
    that `probe(*args)` (a bench.gpu_ir_probe probe) launches, compiled for sm_90."""
    from bench.gpu_ir_probe import capture_launches

    records = []
    with capture_launches(records, describe=lambda compiled: {
            "loops": [loop_mix(body) for body in loop_bodies(disassemble(
                compiled.asm["cubin"]))]}):
        probe(*args)
    return [(name, meta, summary["loops"]) for name, meta, summary in records]


def _label(meta):
    parts = ["x".join(str(meta[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if k in meta)]
    parts += [f"{key[0]}{meta[f'num_{key}']}" for key in ("warps", "stages")
              if meta.get(f"num_{key}") is not None]
    parts += [flag.lower() for flag in ("PERSISTENT", "TMA", "SPLIT_EPILOGUE", "WARP_SPECIALIZE")
              if meta.get(flag)]
    return " ".join(part for part in parts if part)


def main():
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: this compiles the GPU variants")
    from bench.gpu_ir_probe import probe_conv, probe_matmul

    cases = [(f"conv {p} staging={s}", probe_conv, (p, s)) for p in ("ieee", "tf32")
             for s in ("never", "always")]
    cases += [(f"matmul nn {p}", probe_matmul, ("nn", p, "never")) for p in ("ieee", "tf32")]
    print("per loop: instructions, FFMA and their share (IEEE) or tensor-core MMA (one each per "
          "tile step), shared-memory loads, calls, spill loads")
    for label, probe, args in cases:
        for name, meta, loops in compiled_loops(probe, *args):
            cells = []
            for mix in loops:
                share = mix["ffma"] / mix["instructions"]
                multiplies = (f"{mix['ffma']} ffma ({share:.0%})" if mix["ffma"]
                              else f"{mix['mma']} mma")
                cells.append(f"{mix['instructions']} instr, {multiplies}, "
                             f"{mix['shared_loads']} lds, {mix['calls']} calls, "
                             f"{mix['spill_loads']} ldl")
            print(f"{label} | {name} {_label(meta)} | {'; '.join(cells) or 'no loop'}")


if __name__ == "__main__":
    main()
