package windows

import (
	"fmt"
	"strings"
	"time"
)

// Spec is one window definition. Windows are aligned to the Unix epoch:
// they start at multiples of Slide and last Size. Tumbling windows have
// Slide == Size; hopping (sliding) windows have Slide < Size. Session
// windows (Gap > 0, Size and Slide 0) are not aligned: a series' session
// lasts while its records come less than Gap apart (see session.go).
type Spec struct {
	Name  string // as written: "1m", "15m/1m" or "session:5m"
	Size  time.Duration
	Slide time.Duration
	Gap   time.Duration
}

// sessionPrefix starts the name of a session spec.
const sessionPrefix = "session:"

// ParseSpec parses "SIZE" (tumbling), "SIZE/SLIDE" (hopping) or
// "session:GAP", durations in time.ParseDuration form, whole
// milliseconds, and SIZE a multiple of SLIDE.
func ParseSpec(s string) (Spec, error) {
	if gap, ok := strings.CutPrefix(s, sessionPrefix); ok {
		d, err := time.ParseDuration(gap)
		if err != nil {
			return Spec{}, fmt.Errorf("window %q: gap: %w", s, err)
		}
		sp := Spec{Name: s, Gap: d}
		return sp, sp.Validate()
	}
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
	if s.Session() {
		switch {
		case s.Size != 0 || s.Slide != 0:
			return fmt.Errorf("window %q: a session has a gap, not a size or slide", s.Name)
		case s.Gap < time.Millisecond || s.Gap%time.Millisecond != 0:
			return fmt.Errorf("window %q: the gap must be whole milliseconds, at least one", s.Name)
		case s.Gap > 24*time.Hour:
			return fmt.Errorf("window %q: the gap may be at most 24h", s.Name)
		}
		return nil
	}
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

// Session reports whether this is a session spec.
func (s Spec) Session() bool { return s.Gap > 0 }

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
