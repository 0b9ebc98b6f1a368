//go:build !amd64

package getrecords

// decodeVector: none on this architecture (base64_amd64.s, scan_amd64.s
// are amd64's); decodeQuanta decodes it all.
var decodeVector func(dst, src []byte) (int, int)

// scanVector: none on this architecture; quoted scans eight bytes a step.
var scanVector func(b []byte) int
