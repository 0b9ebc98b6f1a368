package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies keeps the Lambda small and its cold start short:
// the commander reads alert messages (package schemas) and must not link
// the stream-processing side (Arrow, DDSketch, the windows).
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/apache/arrow-go", "github.com/DataDog/sketches-go", "github.com/tapline/tapline/windows"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the commander links %s", dep)
			}
		}
	}
}
