"""The SASS loop counter of bench/gpu_sass_loops.py (bench layer) on hand-written listings in
nvdisasm's format: loop bodies run from the head label to the branch back to it, predicated
instructions count, out-of-line code returning into a loop and the closing self-branch are no
loops, and the counts sort opcodes by family."""

from bench.gpu_sass_loops import loop_bodies, loop_mix

LISTING = """\
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   FFMA R2, R3.reuse, R4, R2 ;
        /*0020*/               @P0 LDS.128 R4, [R5+0x100] ;
        /*0030*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_s64) ;
        /*0040*/                   LDL.LU R6, [R1+0x4] ;
        /*0050*/              @!P1 BRA `(.L_x_0) ;
        /*0060*/                   HGMMA.64x128x8.F32.TF32 R24, gdesc[UR4], R24 ;
        /*0070*/                   BRA `(.L_x_2) ;
.L_x_2:
        /*0080*/                   EXIT ;
.L_x_3:
        /*0090*/                   BRA `(.L_x_3);
"""

# A loop whose divergent path is placed after the kernel's end and branches back into the loop,
# and a loop nested in another.
OUT_OF_LINE = """\
.L_x_0:
        /*0000*/                   FADD R2, R2, R3 ;
.L_x_6:
        /*0010*/                   FFMA R4, R4, R5, R4 ;
        /*0020*/               @P2 BRA `(.L_x_6) ;
        /*0030*/              @!P0 BRA.DIV `(.L_x_5) ;
        /*0040*/               @P1 BRA `(.L_x_0) ;
        /*0050*/               @P3 EXIT ;
        /*0060*/                   EXIT ;
.L_x_5:
        /*0070*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_s64) ;
        /*0080*/                   BRA `(.L_x_6) ;
"""


def test_loop_bodies_run_from_the_head_to_the_branch_back():
    # The forward branch to .L_x_2 and the closing self-branch are no loops.
    assert loop_bodies(LISTING) == [["FFMA", "LDS.128", "CALL.REL.NOINC", "LDL.LU", "BRA"]]


def test_out_of_line_code_is_no_loop_and_nested_loops_count_twice():
    assert loop_bodies(OUT_OF_LINE) == [
        ["FFMA", "BRA"], ["FADD", "FFMA", "BRA", "BRA.DIV", "BRA"]]


def test_loop_mix_counts_by_family():
    assert loop_mix(loop_bodies(LISTING)[0]) == {
        "instructions": 5, "ffma": 1, "mma": 0, "shared_loads": 1, "calls": 1,
        "spill_loads": 1}
    assert loop_mix(["HGMMA.64x128x8.F32.TF32", "HMMA.1688.F32.TF32", "LDSM.16.M88.4"])[
        "mma"] == 2
