package windows

import (
	"fmt"
	"strings"
	"time"
)

// Spec is one window definition. Windows are aligned to the Unix epoch:
// they start at multiples of Slide and last Size. Tumbling windows have
// Slide == Size; hopping (sliding) windows have Slide < Size.
type Spec struct {
	Name  string // as written: "1m" or "15m/1m"
	Size  time.Duration
	Slide time.Duration
}

// ParseSpec parses "SIZE" (tumbling) or "SIZE/SLIDE" (hopping), durations
// in time.ParseDuration form, whole milliseconds, and SIZE a multiple of
// SLIDE.
func ParseSpec(s string) (Spec, error) {
	sizeStr, slideStr, hopping := strings.Cut(s, "/")
	size, err := time.ParseDuration(sizeStr)
	if err != nil {
		return Spec{}, fmt.Errorf("window %q: size: %w", s, err)
	}
	slide := size
	if hopping {
		if slide, err = time.ParseDuration(slideStr); err != nil {
			return Spec{}, fmt.Errorf("window %q: slide: %w", s, err)
		}
	}
	sp := Spec{Name: s, Size: size, Slide: slide}
	return sp, sp.Validate()
}

// Validate reports whether the spec can be computed.
func (s Spec) Validate() error {
	switch {
	case s.Size <= 0 || s.Slide <= 0:
		return fmt.Errorf("window %q: size and slide must be positive", s.Name)
	case s.Size%time.Millisecond != 0 || s.Slide%time.Millisecond != 0:
		return fmt.Errorf("window %q: size and slide must be whole milliseconds", s.Name)
	case s.Slide > s.Size:
		return fmt.Errorf("window %q: slide %v is longer than size %v (gaps between windows)", s.Name, s.Slide, s.Size)
	case s.Size%s.Slide != 0:
		return fmt.Errorf("window %q: size %v is not a multiple of slide %v", s.Name, s.Size, s.Slide)
	case s.Size/s.Slide > 1440:
		return fmt.Errorf("window %q: more than 1440 windows overlap", s.Name)
	}
	return nil
}

// Tumbling reports whether windows of this spec do not overlap.
func (s Spec) Tumbling() bool { return s.Size == s.Slide }

func (s Spec) String() string { return s.Name }

// UnmarshalText parses a spec as ParseSpec does, so configuration files
// and environment variables decode straight into Specs.
func (s *Spec) UnmarshalText(b []byte) error {
	sp, err := ParseSpec(string(b))
	if err != nil {
		return err
	}
	*s = sp
	return nil
}

// MarshalText returns the spec as written.
func (s Spec) MarshalText() ([]byte, error) { return []byte(s.Name), nil }

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
