//go:build !amd64

package getrecords

// decodeVector: none on this architecture; decodeQuanta decodes it all.
var decodeVector func(dst, src []byte) (int, int)
