package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// InForce says which policy a process runs under, so that an absent one is
// seen, not discovered: the daemon logs it at start, `kanto-can status`
// shows it, the CANManager feature and the metrics carry it.
type InForce struct {
	// Path is the file looked for.
	Path string `json:"path"`
	// Present is false when there is no file: every container may use
	// every bus, both ways, every id, with no rate limit.
	Present bool `json:"present"`
	// SHA256 is the hex digest of the file's bytes (a fleet compares it
	// across devices); "" without a file.
	SHA256 string `json:"sha256,omitempty"`
	// Buses, Containers: how many entries of each the file has;
	// Default: whether it grants anything to containers no entry matches.
	Buses      int  `json:"buses"`
	Containers int  `json:"containers"`
	Default    bool `json:"default"`
}

// Describe reads the policy at path as Open would (explicit: the admin
// named the file, which then must exist) and says what is in force. An
// invalid file is an error, as it is for Open; Present then says whether
// the file exists (unreadable or invalid) or not (named but missing).
func Describe(path string, explicit bool) (InForce, error) {
	in := InForce{Path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return in, nil
	}
	in.Present = !errors.Is(err, fs.ErrNotExist)
	if err != nil {
		return in, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return in, fmt.Errorf("policy: %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	in.SHA256 = hex.EncodeToString(sum[:])
	in.Buses, in.Containers, in.Default = len(p.Buses), len(p.Containers), p.Default != nil
	return in, nil
}

// String is one line for logs and status: the file and its entries, or
// that there is none and what that allows.
func (in InForce) String() string {
	if !in.Present {
		return fmt.Sprintf("none (no %s): any container may use any bus, both ways, every id, no rate limit", in.Path)
	}
	def := "no default (containers no entry matches get nothing)"
	if in.Default {
		def = "a default for containers no entry matches"
	}
	return fmt.Sprintf("%s (sha256 %.12s): %s, %s, %s", in.Path, in.SHA256,
		count(in.Buses, "bus", "buses"), count(in.Containers, "container entry", "container entries"), def)
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
