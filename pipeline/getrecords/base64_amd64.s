#include "textflag.h"

// Tables for decodeAVX2 (Muła and Lemire, "Faster Base64 Encoding and
// Decoding Using AVX2 Instructions", ACM TOMS 2018, section 4), each
// 16 bytes repeated for the two lanes VPSHUFB looks up in.

// lo: a bit set for each class of high nibble its low nibble is invalid in.
DATA b64lo<>+0(SB)/8, $0x1111111111111115
DATA b64lo<>+8(SB)/8, $0x1a1b1b1b1a131111
DATA b64lo<>+16(SB)/8, $0x1111111111111115
DATA b64lo<>+24(SB)/8, $0x1a1b1b1b1a131111
GLOBL b64lo<>(SB), RODATA|NOPTR, $32

// hi: the class of each high nibble (0x10: no valid character has it).
DATA b64hi<>+0(SB)/8, $0x0804080402011010
DATA b64hi<>+8(SB)/8, $0x1010101010101010
DATA b64hi<>+16(SB)/8, $0x0804080402011010
DATA b64hi<>+24(SB)/8, $0x1010101010101010
GLOBL b64hi<>(SB), RODATA|NOPTR, $32

// roll: what to add to a valid character, by its high nibble ('/' at 1).
DATA b64roll<>+0(SB)/8, $0xb9b9bfbf04131000
DATA b64roll<>+8(SB)/8, $0x0000000000000000
DATA b64roll<>+16(SB)/8, $0xb9b9bfbf04131000
DATA b64roll<>+24(SB)/8, $0x0000000000000000
GLOBL b64roll<>(SB), RODATA|NOPTR, $32

DATA b64mask<>+0(SB)/8, $0x2f2f2f2f2f2f2f2f
DATA b64mask<>+8(SB)/8, $0x2f2f2f2f2f2f2f2f
DATA b64mask<>+16(SB)/8, $0x2f2f2f2f2f2f2f2f
DATA b64mask<>+24(SB)/8, $0x2f2f2f2f2f2f2f2f
GLOBL b64mask<>(SB), RODATA|NOPTR, $32

// Four six-bit values a, b, c, d of a dword to a<<18|b<<12|c<<6|d: pairs
// first (a×64+b, c×64+d), then the pair.
DATA b64pairs<>+0(SB)/8, $0x0140014001400140
DATA b64pairs<>+8(SB)/8, $0x0140014001400140
DATA b64pairs<>+16(SB)/8, $0x0140014001400140
DATA b64pairs<>+24(SB)/8, $0x0140014001400140
GLOBL b64pairs<>(SB), RODATA|NOPTR, $32

DATA b64quad<>+0(SB)/8, $0x0001100000011000
DATA b64quad<>+8(SB)/8, $0x0001100000011000
DATA b64quad<>+16(SB)/8, $0x0001100000011000
DATA b64quad<>+24(SB)/8, $0x0001100000011000
GLOBL b64quad<>(SB), RODATA|NOPTR, $32

// Each dword's three bytes, most significant first, to the front of its lane.
DATA b64bytes<>+0(SB)/8, $0x090a040506000102
DATA b64bytes<>+8(SB)/8, $0xffffffff0c0d0e08
DATA b64bytes<>+16(SB)/8, $0x090a040506000102
DATA b64bytes<>+24(SB)/8, $0xffffffff0c0d0e08
GLOBL b64bytes<>(SB), RODATA|NOPTR, $32

// The two lanes' twelve bytes together.
DATA b64lanes<>+0(SB)/8, $0x0000000100000000
DATA b64lanes<>+8(SB)/8, $0x0000000400000002
DATA b64lanes<>+16(SB)/8, $0x0000000600000005
DATA b64lanes<>+24(SB)/8, $0x0000000700000007
GLOBL b64lanes<>(SB), RODATA|NOPTR, $32

// func decodeAVX2(dst, src []byte) (n, consumed int)
// Requires AVX2. Decodes 32 characters into 24 bytes a step while 32
// remain, and stops before the first step holding a character outside
// the alphabet (padding included).
TEXT ·decodeAVX2(SB), NOSPLIT, $0-64
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), DX
	XORQ AX, AX // bytes written
	XORQ BX, BX // characters consumed
	VMOVDQU b64mask<>(SB), Y8
	VMOVDQU b64lo<>(SB), Y9
	VMOVDQU b64hi<>(SB), Y10
	VMOVDQU b64roll<>(SB), Y11
	VMOVDQU b64pairs<>(SB), Y12
	VMOVDQU b64quad<>(SB), Y13
	VMOVDQU b64bytes<>(SB), Y14
	VMOVDQU b64lanes<>(SB), Y15

loop:
	MOVQ DX, CX
	SUBQ BX, CX
	CMPQ CX, $32
	JLT  done
	VMOVDQU (SI)(BX*1), Y0
	// Validate: a character is in the alphabet iff its nibbles' classes
	// share no bit.
	VPSRLD   $4, Y0, Y1
	VPAND    Y8, Y1, Y1 // high nibbles (VPSHUFB ignores bit 5)
	VPAND    Y8, Y0, Y2 // low nibbles
	VPSHUFB  Y2, Y9, Y2
	VPSHUFB  Y1, Y10, Y3
	VPTEST   Y3, Y2
	JNE      done
	// Translate to six-bit values.
	VPCMPEQB Y8, Y0, Y2 // '/' (0x2f) to -1
	VPADDB   Y2, Y1, Y1
	VPSHUFB  Y1, Y11, Y1
	VPADDB   Y1, Y0, Y0
	// Pack: 32 values to 24 bytes.
	VPMADDUBSW Y12, Y0, Y0
	VPMADDWD   Y13, Y0, Y0
	VPSHUFB    Y14, Y0, Y0
	VPERMD     Y0, Y15, Y0
	VMOVDQU      X0, (DI)(AX*1)
	VEXTRACTI128 $1, Y0, X1
	MOVQ         X1, 16(DI)(AX*1)
	ADDQ $24, AX
	ADDQ $32, BX
	JMP  loop

done:
	VZEROUPPER
	MOVQ AX, n+48(FP)
	MOVQ BX, consumed+56(FP)
	RET
