package getrecords

import "golang.org/x/sys/cpu"

// decodeAVX2 decodes 32 characters of src into 24 bytes of dst a step
// while 32 remain, and stops before the first step holding anything but
// the alphabet (padding included): n bytes written for the first consumed
// characters. dst must hold len(src)/4*3 bytes. base64_amd64.s.
//
//go:noescape
func decodeAVX2(dst, src []byte) (n, consumed int)

// decodeVector is decodeAVX2 where the CPU has AVX2.
var decodeVector = func() func(dst, src []byte) (int, int) {
	if cpu.X86.HasAVX2 {
		return decodeAVX2
	}
	return nil
}()

// scanAVX2 is the index of b's first quote, backslash or control
// character among its whole 32-byte blocks, or the end of the last whole
// block if there is none. scan_amd64.s.
//
//go:noescape
func scanAVX2(b []byte) int

// scanVector is scanAVX2 where the CPU has AVX2.
var scanVector = func() func(b []byte) int {
	if cpu.X86.HasAVX2 {
		return scanAVX2
	}
	return nil
}()
