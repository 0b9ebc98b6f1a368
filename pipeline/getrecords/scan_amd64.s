#include "textflag.h"

DATA scanquote<>+0(SB)/8, $0x2222222222222222
DATA scanquote<>+8(SB)/8, $0x2222222222222222
DATA scanquote<>+16(SB)/8, $0x2222222222222222
DATA scanquote<>+24(SB)/8, $0x2222222222222222
GLOBL scanquote<>(SB), RODATA|NOPTR, $32

DATA scanslash<>+0(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA scanslash<>+8(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA scanslash<>+16(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA scanslash<>+24(SB)/8, $0x5c5c5c5c5c5c5c5c
GLOBL scanslash<>(SB), RODATA|NOPTR, $32

DATA scanctl<>+0(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA scanctl<>+8(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA scanctl<>+16(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA scanctl<>+24(SB)/8, $0x1f1f1f1f1f1f1f1f
GLOBL scanctl<>(SB), RODATA|NOPTR, $32

// func scanAVX2(b []byte) int
// Requires AVX2. The index of b's first quote, backslash or control
// character among its whole 32-byte blocks, or the end of the last whole
// block if none.
TEXT ·scanAVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	XORQ AX, AX
	VMOVDQU scanquote<>(SB), Y1
	VMOVDQU scanslash<>(SB), Y2
	VMOVDQU scanctl<>(SB), Y3

loop:
	MOVQ DX, CX
	SUBQ AX, CX
	CMPQ CX, $32
	JLT  done
	VMOVDQU   (SI)(AX*1), Y0
	VPCMPEQB  Y1, Y0, Y4
	VPCMPEQB  Y2, Y0, Y5
	VPMAXUB   Y3, Y0, Y6
	VPCMPEQB  Y3, Y6, Y6 // below 0x20: max(c, 0x1f) is 0x1f
	VPOR      Y4, Y5, Y4
	VPOR      Y4, Y6, Y4
	VPMOVMSKB Y4, CX
	TESTL     CX, CX
	JNZ       found
	ADDQ      $32, AX
	JMP       loop

found:
	BSFL CX, CX
	ADDQ CX, AX

done:
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET
